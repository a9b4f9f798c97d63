/* test_task_submitter.c -- the pure parts of librayc's task submitter
 * (worker/task_submitter.h): argument resolution, retry bookkeeping, and the
 * paths of a submit that send nothing (an argument failed, deferral until
 * arguments are known, cancel and completion of deferred tasks). No raylet:
 * nothing here may reach the connection. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "rayc.h"
#include "../../worker/task_submitter.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static ref_table refs;
static job_id_t job;
static task_submitter *ts;
static size_t ngone;

static void count_gone(void *arg, const object_id_t *id)
{
    (void)arg;
    (void)id;
    ngone++;
}

static void setup(void)
{
    reft_hooks h = {.owned_gone = count_gone};
    cr_assert_eq(reft_init(&refs, &h), 0);
    job = job_id_from_int(7);
    ngone = 0;
    tsub_deps d = {
        .mu = &mu,
        .refs = &refs,
        .raylet = NULL, /* a send would crash: these paths must not send */
        .store = NULL,
        .inline_max = 100,
        .job = &job,
        .owner = worker_id_random(),
        .node = node_id_random(),
    };
    ts = tsub_new(&d);
    cr_assert_not_null(ts);
}

static void teardown(void)
{
    tsub_free(ts);
    reft_destroy(&refs);
}

TestSuite(task_submitter, .init = setup, .fini = teardown);

static object_id_t some_id(uint32_t i)
{
    task_id_t t = task_id_for_driver(job);
    return object_id_for_put(&t, i);
}

/* The return of a task still running: owned, not sealed, not in the store. */
static ref_entry *pending_result(uint32_t i)
{
    object_id_t id = some_id(i);
    ref_entry *e = reft_get_or_add(&refs, &id, NULL);
    e->owned = true;
    e->refs = 1;
    return e;
}

static tsub_request request(void)
{
    tsub_request rq;
    memset(&rq, 0, sizeof(rq));
    rq.function = "f";
    rq.name = "";
    rq.num_returns = 1;
    return rq;
}

static tsub_arg ref_arg(const object_id_t *id)
{
    tsub_arg a;
    memset(&a, 0, sizeof(a));
    a.is_ref = true;
    a.ref = *id;
    return a;
}

static ref_entry *entry_of(const rayc_ref *r)
{
    object_id_t id;
    memcpy(id.b, r->id, OBJECT_ID_SIZE);
    return reft_find(&refs, &id);
}

/* ------------------------------------------------------------ pure */

Test(task_submitter, argument_states)
{
    ref_entry e;
    memset(&e, 0, sizeof(e));
    cr_assert_eq(tsub_arg_state_of(NULL), TSUB_ARG_READY, "borrowed: the raylet waits for it");
    e.owned = true;
    cr_assert_eq(tsub_arg_state_of(&e), TSUB_ARG_PENDING);
    e.sealed = true;
    cr_assert_eq(tsub_arg_state_of(&e), TSUB_ARG_READY);
    e.sealed = false;
    e.in_store = true;
    cr_assert_eq(tsub_arg_state_of(&e), TSUB_ARG_READY, "a store result is known by its node");
    e.status = RAYC_ETASK;
    cr_assert_eq(tsub_arg_state_of(&e), TSUB_ARG_FAILED);
    memset(&e, 0, sizeof(e));
    cr_assert_eq(tsub_arg_state_of(&e), TSUB_ARG_READY, "not owned: someone else's, in a store");
}

Test(task_submitter, small_owned_values_are_inlined_others_stay_refs)
{
    object_id_t id = some_id(1);
    char bytes[100] = "hello";
    ref_entry e;
    memset(&e, 0, sizeof(e));
    e.owned = e.sealed = true;
    e.data = bytes;
    e.size = 100;
    tsub_arg a = ref_arg(&id);
    tsub_resolve_arg(&a, &e, 100);
    cr_assert_not(a.is_ref, "100 bytes <= inline_max: inline");
    cr_assert_eq(a.data, bytes);
    cr_assert_eq(a.size, 100);

    a = ref_arg(&id);
    e.size = 101;
    tsub_resolve_arg(&a, &e, 100);
    cr_assert(a.is_ref, "larger: stays a ref");
    cr_assert_eq(a.size, 101);
    cr_assert_not(a.has_node);

    a = ref_arg(&id);
    e.in_store = true;
    e.size = 5;
    e.node = node_id_random();
    tsub_resolve_arg(&a, &e, 100);
    cr_assert(a.is_ref, "store objects travel as refs however small");
    cr_assert(a.has_node);
    cr_assert_eq(memcmp(a.node.b, e.node.b, NODE_ID_SIZE), 0);

    a = ref_arg(&id);
    e.in_store = false;
    e.owned = false;
    tsub_resolve_arg(&a, &e, 100);
    cr_assert(a.is_ref, "only owned values are inlined");

    a = ref_arg(&id);
    tsub_resolve_arg(&a, NULL, 100);
    cr_assert(a.is_ref);
    cr_assert_eq(a.size, 0, "unknown here: unchanged");
}

Test(task_submitter, retry_bookkeeping)
{
    cr_assert_eq(tsub_retries_for(0), TSUB_DEFAULT_MAX_RETRIES);
    cr_assert_eq(tsub_retries_for(-1), 0);
    cr_assert_eq(tsub_retries_for(5), 5);
    cr_assert(tsub_should_retry(RAYC_EWORKER_DIED, false, false, 1));
    cr_assert(tsub_should_retry(RAYC_EOBJECT_LOST, false, false, 1));
    cr_assert(tsub_should_retry(RAYC_EOOM, false, false, 1), "a memory-monitor kill is retried");
    cr_assert(tsub_should_retry(RAYC_EWORKER_DIED, false, false, -1), "negative: unbounded");
    cr_assert_not(tsub_should_retry(RAYC_EWORKER_DIED, false, false, 0));
    cr_assert_not(tsub_should_retry(RAYC_EWORKER_DIED, false, true, 3), "cancelled");
    cr_assert_not(tsub_should_retry(RAYC_ETASK, false, false, 3), "application errors are final");
    cr_assert(tsub_should_retry(RAYC_ETASK, true, false, 3), "... unless retry_exceptions");
    cr_assert_not(tsub_should_retry(RAYC_ENOTFOUND, true, false, 3));
    cr_assert_not(tsub_should_retry(RAYC_OK, true, false, 3));
}

/* ------------------------------------------------------------ submitter */

Test(task_submitter, failed_argument_fails_the_task_unrun)
{
    ref_entry *dep = pending_result(1);
    dep->status = RAYC_ETASK;
    dep->sealed = true;
    dep->error = strdup("upstream: boom");
    tsub_request rq = request();
    rq.num_returns = 2;
    tsub_arg a = ref_arg(&dep->id);
    rayc_ref out[2];
    bool taken = false;
    cr_assert_eq(tsub_submit(ts, &rq, &a, 1, out, &taken), 0);
    cr_assert(taken);
    cr_assert_eq(tsub_count(ts), 0, "nothing pending");
    for (int i = 0; i < 2; i++) {
        ref_entry *r = entry_of(&out[i]);
        cr_assert_not_null(r);
        cr_assert_eq(r->status, RAYC_ETASK);
        cr_assert_str_eq(r->error, "upstream: boom");
        cr_assert(r->owned);
        cr_assert_eq(r->refs, 1, "each return is one reference the caller owns");
    }
    cr_assert_eq(dep->refs, 1, "the task's own reference on its argument is given back");
}

Test(task_submitter, deferred_task_keeps_its_arguments_and_cancels)
{
    ref_entry *dep = pending_result(1);
    char value[8] = "abcdefg";
    tsub_arg args[2];
    args[0] = ref_arg(&dep->id);
    memset(&args[1], 0, sizeof(args[1]));
    args[1].data = value;
    args[1].size = sizeof(value);
    tsub_request rq = request();
    rq.name = "named";
    rayc_ref out;
    bool taken;
    cr_assert_eq(tsub_submit(ts, &rq, args, 2, &out, &taken), 0);
    cr_assert_eq(tsub_count(ts), 1, "deferred: waits for its argument");
    cr_assert_eq(dep->refs, 2, "the task holds its argument");
    ref_entry *r = entry_of(&out);
    cr_assert_not(r->sealed);
    memset(value, 'x', sizeof(value)); /* the caller's bytes may change after submit */

    object_id_t oid;
    memcpy(oid.b, out.id, OBJECT_ID_SIZE);
    cr_assert_eq(tsub_cancel(ts, &oid, false), 0);
    cr_assert_eq(tsub_count(ts), 0);
    cr_assert_eq(r->status, RAYC_ECANCELLED);
    cr_assert(r->sealed);
    cr_assert_eq(dep->refs, 1);
    cr_assert_eq(tsub_cancel(ts, &oid, false), RAYC_ENOTFOUND, "gone once cancelled");
}

Test(task_submitter, handed_reference_goes_with_the_task)
{
    ref_entry *dep = pending_result(1);
    ref_entry *put = pending_result(2); /* a staged large value: one ref, handed over */
    put->sealed = true;
    tsub_arg args[2] = {ref_arg(&dep->id), ref_arg(&put->id)};
    args[1].handed = true;
    tsub_request rq = request();
    rayc_ref out;
    bool taken;
    cr_assert_eq(tsub_submit(ts, &rq, args, 2, &out, &taken), 0);
    cr_assert_eq(put->refs, 1, "handed: no extra reference");
    object_id_t oid, put_id = put->id;
    memcpy(oid.b, out.id, OBJECT_ID_SIZE);
    size_t before = ngone;
    cr_assert_eq(tsub_cancel(ts, &oid, true), 0);
    cr_assert_null(reft_find(&refs, &put_id), "the task's end drops the staged value");
    cr_assert_eq(ngone, before + 1);
}

Test(task_submitter, failed_completion_ends_a_task_and_its_deferral)
{
    ref_entry *dep = pending_result(1);
    tsub_arg a = ref_arg(&dep->id);
    tsub_request rq = request();
    rayc_ref out;
    bool taken;
    cr_assert_eq(tsub_submit(ts, &rq, &a, 1, &out, &taken), 0);
    object_id_t oid;
    memcpy(oid.b, out.id, OBJECT_ID_SIZE);
    task_id_t tid = object_id_task(&oid);

    Rpc__Status st = RPC__STATUS__INIT;
    st.code = RAYC_ETASK;
    st.message = "f: failed";
    Rpc__TaskDone done = RPC__TASK_DONE__INIT;
    done.task_id.data = tid.b;
    done.task_id.len = TASK_ID_SIZE;
    done.status = &st;
    cr_assert_eq(tsub_on_task_done(ts, MSG_TASK_DONE, &done.base), 0);
    cr_assert_eq(tsub_count(ts), 0, "final: no retry of an application error");
    ref_entry *r = entry_of(&out);
    cr_assert_eq(r->status, RAYC_ETASK);
    cr_assert_str_eq(r->error, "f: failed");
    cr_assert_eq(dep->refs, 1);
    /* A completion of a task nobody knows is ignored. */
    cr_assert_eq(tsub_on_task_done(ts, MSG_TASK_DONE, &done.base), 0);
}

Test(task_submitter, chains_of_deferred_tasks_fail_together)
{
    /* b takes a's return, c takes b's: when a's argument fails, all fail. */
    ref_entry *root = pending_result(1);
    tsub_request rq = request();
    rayc_ref ra, rb, rc;
    bool taken;
    tsub_arg a = ref_arg(&root->id);
    cr_assert_eq(tsub_submit(ts, &rq, &a, 1, &ra, &taken), 0);
    object_id_t ida, idb;
    memcpy(ida.b, ra.id, OBJECT_ID_SIZE);
    a = ref_arg(&ida);
    cr_assert_eq(tsub_submit(ts, &rq, &a, 1, &rb, &taken), 0);
    memcpy(idb.b, rb.id, OBJECT_ID_SIZE);
    a = ref_arg(&idb);
    cr_assert_eq(tsub_submit(ts, &rq, &a, 1, &rc, &taken), 0);
    cr_assert_eq(tsub_count(ts), 3);
    cr_assert_eq(tsub_cancel(ts, &ida, false), 0);
    cr_assert_eq(tsub_count(ts), 0, "one cancel fails the chain behind it");
    cr_assert_eq(entry_of(&rb)->status, RAYC_ECANCELLED);
    cr_assert_eq(entry_of(&rc)->status, RAYC_ECANCELLED);
}

Test(task_submitter, many_deferred_tasks_outgrow_any_fixed_table)
{
    ref_entry *dep = pending_result(1);
    enum { N = 10000 };
    rayc_ref *out = calloc(N, sizeof(*out));
    tsub_request rq = request();
    bool taken;
    for (int i = 0; i < N; i++) {
        tsub_arg a = ref_arg(&dep->id);
        cr_assert_eq(tsub_submit(ts, &rq, &a, 1, &out[i], &taken), 0);
    }
    cr_assert_eq(tsub_count(ts), N);
    cr_assert_eq(dep->refs, 1 + N);
    for (int i = 0; i < N; i += 2) {
        object_id_t oid;
        memcpy(oid.b, out[i].id, OBJECT_ID_SIZE);
        cr_assert_eq(tsub_cancel(ts, &oid, false), 0);
    }
    cr_assert_eq(tsub_count(ts), N / 2);
    cr_assert_eq(dep->refs, 1 + N / 2);
    free(out);
}

Test(task_submitter, deferred_task_with_many_arguments)
{
    /* More arguments than the stack arrays hold: one deferred block keeps
     * them and their bytes; cancelling frees it (valgrind/ASan clean). */
    enum { N = 3 * TSUB_STACK_ARGS };
    ref_entry *dep = pending_result(1);
    tsub_arg args[N];
    int64_t values[N];
    for (int i = 0; i < N; i++) {
        values[i] = i;
        memset(&args[i], 0, sizeof(args[i]));
        args[i].data = &values[i];
        args[i].size = sizeof(values[i]);
    }
    args[N / 2] = ref_arg(&dep->id);
    tsub_request rq = request();
    rq.num_returns = 20;
    rayc_ref out[20];
    bool taken;
    cr_assert_eq(tsub_submit(ts, &rq, args, N, out, &taken), 0);
    cr_assert_eq(tsub_count(ts), 1);
    object_id_t oid;
    memcpy(oid.b, out[7].id, OBJECT_ID_SIZE);
    cr_assert_eq(tsub_cancel(ts, &oid, false), 0, "any return names its task");
    for (int i = 0; i < 20; i++)
        cr_assert_eq(entry_of(&out[i])->status, RAYC_ECANCELLED);
    cr_assert_eq(dep->refs, 1);
}
