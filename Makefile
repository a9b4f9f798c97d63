# rayc build. `make` builds everything into build/; see README.md for targets.
#
# Layout rules (no edits needed when adding files):
#   common/*.c + generated protobuf code   -> build/lib/libcommon.a
#   gcs/*.c     (gcs_main.c is the binary)  -> build/lib/libgcs.a,    build/bin/gcs_server
#   raylet/*.c  (raylet_main.c)             -> build/lib/libraylet.a, build/bin/raylet
#   worker/*.c  (worker_main.c)             -> build/lib/librayc.{a,so}, build/bin/rayc_worker
#   scripts/rayc_ctl.c + rayc_supervise.c   -> build/bin/rayc_ctl (used by scripts/rayc)
#   tests/unit/test_*.c                     -> build/tests/unit/test_*   (criterion)
#   tests/integration/test_*.c + harness.c  -> build/tests/integration/test_*
#   examples/<name>/{driver,tasks}.c        -> build/examples/<name>, lib<name>_tasks.so
#   bench/*.c                               -> build/bench/*

BUILD   ?= build
V       ?= 0
Q       := $(if $(filter 1,$(V)),,@)
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
OPT     ?= -O2
SAN     ?=
PKGS    := libevent libprotobuf-c hiredis
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers -Wno-format-truncation \
           -g $(OPT) -fPIC -MMD -MP -fvisibility=hidden $(SAN) \
           -Iinclude -Icommon -I$(BUILD)/gen $(shell pkg-config --cflags $(PKGS))
LDFLAGS := $(SAN)
LIBS    := $(shell pkg-config --libs $(PKGS)) -levent_pthreads -lpthread -ldl -lm
TESTLIBS:= $(shell pkg-config --libs criterion)

GEN_C   := $(BUILD)/gen/rayc.pb-c.c
GEN_H   := $(BUILD)/gen/rayc.pb-c.h

COMMON_SRC := $(wildcard common/*.c)
GCS_SRC    := $(filter-out gcs/gcs_main.c,$(wildcard gcs/*.c))
RAYLET_SRC := $(filter-out raylet/raylet_main.c,$(wildcard raylet/*.c))
RAYC_SRC   := $(filter-out worker/worker_main.c,$(wildcard worker/*.c))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
ITEST_SRC  := $(wildcard tests/integration/test_*.c)
ITEST_LIB  := $(filter-out $(ITEST_SRC),$(wildcard tests/integration/*.c))
EXAMPLES   := $(notdir $(patsubst %/,%,$(dir $(wildcard examples/*/driver.c))))
BENCH_SRC  := $(wildcard bench/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

COMMON_OBJ := $(call obj,$(COMMON_SRC)) $(BUILD)/obj/gen/rayc.pb-c.o
GCS_OBJ    := $(call obj,$(GCS_SRC))
RAYLET_OBJ := $(call obj,$(RAYLET_SRC))
RAYC_OBJ   := $(call obj,$(RAYC_SRC))

LIBCOMMON := $(BUILD)/lib/libcommon.a
LIBGCS    := $(BUILD)/lib/libgcs.a
LIBRAYLET := $(BUILD)/lib/libraylet.a
LIBRAYC_A := $(BUILD)/lib/librayc.a
LIBRAYC_SO:= $(BUILD)/lib/librayc.so

BINS := $(if $(wildcard gcs/gcs_main.c),$(BUILD)/bin/gcs_server) $(BUILD)/bin/raylet \
        $(if $(wildcard scripts/rayc_ctl.c),$(BUILD)/bin/rayc_ctl) \
        $(if $(wildcard scripts/rayc_state.c),$(BUILD)/bin/rayc_state) \
        $(if $(wildcard worker/worker_main.c),$(BUILD)/bin/rayc_worker)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
ITEST_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(ITEST_SRC))
EXAMPLE_BINS := $(foreach e,$(EXAMPLES),$(BUILD)/examples/$(e) $(BUILD)/examples/lib$(e)_tasks.so)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
BENCH_LIBS := $(patsubst bench/lib/%.c,$(BUILD)/bench/lib%.so,$(wildcard bench/lib/*.c))
ALL_LIBS := $(LIBGCS) $(LIBRAYLET) $(LIBRAYC_A) $(LIBCOMMON)

.PHONY: all deps demo test test-deploy unit integration test-slow asan fuzz bench bench-scale install format format-check clean valgrind
.DEFAULT_GOAL := all

all: $(BINS) $(LIBRAYC_SO) $(LIBRAYC_A) $(UNIT_BINS) $(ITEST_BINS) $(EXAMPLE_BINS) $(BENCH_BINS) $(BENCH_LIBS) \
     $(BUILD)/rayc.pc

# ---------------------------------------------------------------- codegen
$(GEN_C) $(GEN_H): proto/rayc.proto
	@mkdir -p $(BUILD)/gen
	@echo "  GEN  $@"
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILD)/gen proto/rayc.proto

$(BUILD)/obj/gen/rayc.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	@echo "  CC   $@"
	$(Q)$(CC) $(CFLAGS) -Wno-unused-parameter -c $< -o $@

# Dashboard page (issue 15): gcs/dashboard/* compiled into gcs_server as
# static C arrays (xxd -i), so the head needs no files and no CDN.
DASH_ASSETS := $(sort $(wildcard gcs/dashboard/*))
$(BUILD)/gen/gcs_dashboard_assets.h: $(DASH_ASSETS)
	@mkdir -p $(dir $@)
	@echo "  GEN  $@"
	$(Q)for f in $(DASH_ASSETS); do xxd -i $$f | sed 's/^unsigned/static const unsigned/'; done > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/gcs/gcs_http.o: $(BUILD)/gen/gcs_dashboard_assets.h

# Every object may include the generated header.
$(BUILD)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC   $@"
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# ---------------------------------------------------------------- libraries
$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	@echo "  AR   $@"
	$(Q)rm -f $@ && ar rcs $@ $^
$(LIBGCS): $(GCS_OBJ) | $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  AR   $@"
	$(Q)rm -f $@ && ar rcs $@ $^ $(BUILD)/obj/gen/rayc.pb-c.o
$(LIBRAYLET): $(RAYLET_OBJ) | $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  AR   $@"
	$(Q)rm -f $@ && ar rcs $@ $^ $(BUILD)/obj/gen/rayc.pb-c.o
$(LIBRAYC_A): $(RAYC_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	@echo "  AR   $@"
	$(Q)rm -f $@ && ar rcs $@ $^
$(LIBRAYC_SO): $(RAYC_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) -shared $(LDFLAGS) -Wl,-soname,librayc.so -o $@ $^ $(LIBS)

# ---------------------------------------------------------------- binaries
$(BUILD)/bin/gcs_server: $(BUILD)/obj/gcs/gcs_main.o $(LIBGCS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/bin/raylet: $(BUILD)/obj/raylet/raylet_main.o $(LIBRAYLET) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/bin/rayc_worker: $(BUILD)/obj/worker/worker_main.o $(LIBRAYC_A)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(LDFLAGS) -rdynamic -Wl,-soname,librayc.so -o $@ $^ $(LIBS)
$(BUILD)/bin/rayc_ctl: $(BUILD)/obj/scripts/rayc_ctl.o $(BUILD)/obj/scripts/rayc_supervise.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# `rayc list|summary|memory|job` (issue 15): an HTTP client of the dashboard.
$(BUILD)/bin/rayc_state: $(BUILD)/obj/scripts/rayc_state.o $(LIBGCS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# ---------------------------------------------------------------- tests
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $< -Wl,--start-group $(ALL_LIBS) -Wl,--end-group $(LIBS) $(TESTLIBS)
$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(call obj,$(ITEST_LIB)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(call obj,$(ITEST_LIB)) -Wl,--start-group $(ALL_LIBS) -Wl,--end-group $(LIBS) $(TESTLIBS)

# ---------------------------------------------------------------- examples, bench
$(BUILD)/examples/lib%_tasks.so: examples/%/tasks.c include/rayc.h
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(CFLAGS) -shared -o $@ $< -L$(BUILD)/lib
$(BUILD)/examples/%: examples/%/driver.c $(LIBRAYC_SO)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -L$(BUILD)/lib -lrayc -Wl,-rpath,'$$ORIGIN/../lib'
# Task libraries of the benchmarks (built, never run by `make bench`).
$(BUILD)/bench/lib%.so: bench/lib/%.c include/rayc.h
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(CFLAGS) -shared -o $@ $<
# Benchmarks may read a raylet's statistics over its socket (the framing of
# libcommon, linked statically: librayc.so exports only rayc_*).
$(BUILD)/bench/%: bench/%.c $(LIBRAYC_SO) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@echo "  LD   $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -L$(BUILD)/lib -lrayc -Wl,-rpath,'$$ORIGIN/../lib' -Wl,-rpath,'$$ORIGIN/../../lib' $(LIBCOMMON) $(LIBS) -lm

# rayc.pc for a prefix: $(call rayc_pc,PREFIX,FILE). Libs carry an rpath so
# that a driver linked with `pkg-config --libs rayc` finds librayc.so at run
# time without LD_LIBRARY_PATH. The build tree's copy names $(PREFIX) as of
# `make`; `make install` writes its own for the PREFIX it installs to.
rayc_pc = printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: rayc\nDescription: rayc distributed execution engine client library\nVersion: 0.1.0\nLibs: -L$${libdir} -Wl,-rpath,$${libdir} -lrayc\nLibs.private: -levent -lprotobuf-c -lhiredis -lpthread -ldl -lm\nCflags: -I$${includedir}\n' '$(1)' > $(2)

$(BUILD)/rayc.pc: Makefile
	@mkdir -p $(BUILD)
	@echo "  GEN  $@"
	$(Q)$(call rayc_pc,$(PREFIX),$@)

# ---------------------------------------------------------------- running
# Integration tests share the machine's ports and CPUs: run them one by one.
CRITERION_OPTS ?= --jobs=2
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t $(CRITERION_OPTS); done

integration: all
	@set -e; for t in $(ITEST_BINS); do echo "== $$t"; RAYC_BUILD=$(abspath $(BUILD)) $$t --jobs=1; done

# `make demo` and `make test` each set up a fresh machine themselves: install
# the Debian packages (a no-op when they are there), then build in a sub-make
# (which reads pkg-config's answers after the install), in parallel unless a
# -j was given.
NPROC := $(shell nproc 2>/dev/null || echo 2)
SUBMAKE = $(MAKE) --no-print-directory $(if $(findstring j,$(firstword $(MAKEFLAGS))),,-j$(NPROC))
deps:
	@scripts/install-deps.sh

demo: deps
	@$(SUBMAKE) all
	@echo "== hello: c(a(), b()) on a private embedded cluster"
	$(BUILD)/examples/hello
	@echo "== pi: Monte Carlo over 1,000 tasks"
	$(BUILD)/examples/pi
	@echo "== wordcount: map/reduce over objects in the shared store"
	$(BUILD)/examples/wordcount
	@echo "== bank: accounts as actors (ordered calls, a refused overdraft, a named actor)"
	$(BUILD)/examples/bank

test: deps
	@$(SUBMAKE) all
	@$(MAKE) --no-print-directory unit integration $(if $(SAN),,test-deploy)

# deploy/ (docs/deploy.md): yamllint, the manifests and the Dockerfile
# cross-checked against this tree, and the manifests' node commands run for
# real (SIGTERM drains, a dead daemon fails the container).
test-deploy: all
	@echo "== deploy (tests/deploy/test_deploy.py)"
	@yamllint -s -d '{extends: default, rules: {line-length: {max: 100}, document-start: disable}}' deploy/k8s
	@RAYC_BUILD=$(abspath $(BUILD)) python3 tests/deploy/test_deploy.py

# The slow integration tests (names slow_*: the 200k-task stress, the 1 GiB
# transfers, the 2,000-task node kill) skip themselves in `make test`; this
# runs only them (docs/testing.md). CI runs it once, not under ASan.
test-slow: all
	@set -e; for t in $(ITEST_BINS); do echo "== $$t (slow tests)"; \
	  RAYC_TEST_SLOW=1 RAYC_BUILD=$(abspath $(BUILD)) $$t --jobs=1 --filter='*/slow_*'; done

# Sanitized daemons are slower: give nodes a longer health timeout in tests.
# The harness points every daemon's and worker's sanitizer log at the test's
# dir and fails the test on any report (docs/testing.md). Slow tests skip
# themselves here (RAYC_TEST_SLOW unset): `make test-slow` runs them once.
asan:
	RAYC_TEST_HEALTH_TIMEOUT_MS=10000 RAYC_TEST_SANITIZER=1 LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) $(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

# Criterion runs each test in a re-executed child, so valgrind must trace
# children, and a leak only shows in the log: every process writes its own
# log and the target fails if any log reports an error or a definite leak.
valgrind: all
	@rm -rf $(BUILD)/valgrind && mkdir -p $(BUILD)/valgrind
	@set -e; for t in $(UNIT_BINS); do echo "== valgrind $$t"; \
	  valgrind -q --trace-children=yes --trace-children-skip="*redis-server*" --leak-check=full --errors-for-leak-kinds=definite \
	    --log-file=$(abspath $(BUILD))/valgrind/$$(basename $$t).%p.log $$t --jobs=1 >/dev/null; done
	@if grep -lE "ERROR SUMMARY: [1-9]|definitely lost: [1-9]|Invalid (read|write)" $(BUILD)/valgrind/*.log; then \
	  echo "valgrind: errors above (logs in $(BUILD)/valgrind)"; exit 1; fi
	@echo "valgrind: clean"

# libFuzzer targets (tests/fuzz/fuzz_<name>.c), each built with clang from
# the sources it needs, sanitized. `make fuzz FUZZ_SECONDS=N` runs every
# target for N seconds from its committed seeds (tests/fuzz/corpus_<name>/,
# read only) plus a working corpus in build/fuzz/corpus_<name>/.
FUZZ_SECONDS ?= 20
FUZZ_CFLAGS  := -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -Iinclude -Icommon -I$(BUILD)/gen $(shell pkg-config --cflags $(PKGS))
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_MAXLEN_fuzz_frame := 4096
FUZZ_MAXLEN_fuzz_gcs   := 8192
FUZZ_MAXLEN_fuzz_store := 4096
FUZZ_MAXLEN_fuzz_om    := 4096
$(BUILD)/fuzz/fuzz_frame: tests/fuzz/fuzz_frame.c common/frame.c common/msg.c common/log.c $(GEN_C)
	@mkdir -p $(dir $@)
	@echo "  FUZZ $@"
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ $(shell pkg-config --libs libprotobuf-c)
$(BUILD)/fuzz/fuzz_gcs: tests/fuzz/fuzz_gcs.c $(COMMON_SRC) $(GCS_SRC) $(GEN_C) $(BUILD)/gen/gcs_dashboard_assets.h
	@mkdir -p $(dir $@)
	@echo "  FUZZ $@"
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(LIBS)
$(BUILD)/fuzz/fuzz_store: tests/fuzz/fuzz_store.c $(COMMON_SRC) $(wildcard raylet/plasma_*.c) $(GEN_C)
	@mkdir -p $(dir $@)
	@echo "  FUZZ $@"
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(LIBS)
$(BUILD)/fuzz/fuzz_om: tests/fuzz/fuzz_om.c $(COMMON_SRC) $(wildcard raylet/plasma_*.c) raylet/object_manager.c raylet/object_serving.c $(GEN_C)
	@mkdir -p $(dir $@)
	@echo "  FUZZ $@"
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(LIBS)
fuzz: $(patsubst %,$(BUILD)/fuzz/%,$(FUZZ_TARGETS))
	@set -e; $(foreach t,$(FUZZ_TARGETS),\
	  echo "== $(t) ($(FUZZ_SECONDS) s)"; mkdir -p $(BUILD)/fuzz/corpus_$(t:fuzz_%=%); \
	  $(BUILD)/fuzz/$(t) -max_total_time=$(FUZZ_SECONDS) -max_len=$(or $(FUZZ_MAXLEN_$(t)),4096) \
	    -print_final_stats=1 $(BUILD)/fuzz/corpus_$(t:fuzz_%=%) $(wildcard tests/fuzz/corpus_$(t:fuzz_%=%));)

bench: all
	@set -e; for b in $(BENCH_BINS); do $$b; done

# The scale envelope (issue 17, docs/benchmarks.md): heavy, so not part of
# `make bench` (scale without a case runs nothing). SCALE_ARGS picks cases and sizes.
SCALE_ARGS ?= all
bench-scale: all
	$(BUILD)/bench/scale $(SCALE_ARGS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/libexec/rayc
	install -m 0644 include/rayc.h $(DESTDIR)$(PREFIX)/include/rayc.h
	install -m 0755 $(LIBRAYC_SO) $(DESTDIR)$(PREFIX)/lib/librayc.so
	install -m 0644 $(LIBRAYC_A) $(DESTDIR)$(PREFIX)/lib/librayc.a
	$(call rayc_pc,$(PREFIX),$(DESTDIR)$(PREFIX)/lib/pkgconfig/rayc.pc)
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/rayc.pc
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/libexec/rayc/
	install -m 0755 $(BENCH_BINS) $(BENCH_LIBS) $(DESTDIR)$(PREFIX)/libexec/rayc/
	install -m 0755 scripts/rayc $(DESTDIR)$(PREFIX)/bin/rayc

FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
