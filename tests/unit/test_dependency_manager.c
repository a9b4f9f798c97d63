/*
 * test_dependency_manager.c -- waiting for a task's arguments
 * (raylet/dependency_manager.h) on a real 1 MiB plasma store with fake
 * neighbours: pull, multi_node, lost and done are callbacks that record what
 * they were asked; the test completes the pulls itself. Also the way out of
 * every wait (re-check, pull again) and the pins of pulled arguments.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "rayc.h"
#include "../../raylet/dependency_manager.h"

#define NARGS  3
#define NPULLS 8

static struct event_base *base;
static rayc_config cfg;
static char spill_dir[64];
static plasma_store *st;
static plasma_client *writer;

static Rpc__TaskSpec spec;
static Rpc__SubmitTask msg;
static Rpc__TaskArg argv_[NARGS], *args[NARGS];
static object_id_t oids[NARGS];
static node_id_t holder;
static rtask task;

static struct {
    bool multi;
    int npulls;
    object_id_t pulled[NPULLS];
    bool hinted[NPULLS];
    dm_pulled_cb cb[NPULLS];
    void *cbarg[NPULLS];
    int nlost;
    object_id_t lost;
    int ndone;
    int status;
    char msg[256];
} fx;

/* ------------------------------------------------------------ fake neighbours */

static void pull(void *ctx, const object_id_t *id, const node_id_t *hint, dm_pulled_cb cb,
                 void *arg)
{
    (void)ctx;
    cr_assert_lt(fx.npulls, NPULLS);
    fx.pulled[fx.npulls] = *id;
    fx.hinted[fx.npulls] = hint != NULL && memcmp(hint->b, holder.b, NODE_ID_SIZE) == 0;
    fx.cb[fx.npulls] = cb;
    fx.cbarg[fx.npulls] = arg;
    fx.npulls++;
}

static bool multi_node(void *ctx)
{
    (void)ctx;
    return fx.multi;
}

static void lost(void *ctx, rtask *t, const object_id_t *id, const char *m)
{
    (void)ctx, (void)t, (void)m;
    fx.nlost++;
    fx.lost = *id;
}

static void done(void *ctx, rtask *t, int status, const char *m)
{
    (void)ctx;
    cr_assert_eq(t, &task);
    fx.ndone++;
    fx.status = status;
    snprintf(fx.msg, sizeof(fx.msg), "%s", m ? m : "");
}

static dependency_manager *new_dm(void)
{
    dm_env env = {pull, multi_node, lost, done, NULL};
    dependency_manager *dm = dm_new(NULL, st, &env);
    cr_assert_not_null(dm);
    return dm;
}

/* ------------------------------------------------------------ fixture */

static void setup(void)
{
    memset(&fx, 0, sizeof(fx));
    log_init(NULL, LOG_LEVEL_ERROR);
    base = event_base_new();
    config_defaults(&cfg);
    strcpy(spill_dir, "/tmp/dm_test_XXXXXX");
    cr_assert_not_null(mkdtemp(spill_dir));
    char err[256];
    cr_assert_eq(config_set(&cfg, "object_store_memory", "1048576", err, sizeof(err)), 0);
    cr_assert_eq(config_set(&cfg, "prefault_store", "0", err, sizeof(err)), 0);
    cr_assert_eq(config_set(&cfg, "spill_dir", spill_dir, err, sizeof(err)), 0);
    st = plasma_store_new(base, &cfg, err, sizeof(err));
    cr_assert_not_null(st, "%s", err);
    writer = plasma_client_new(st, NULL);
    cr_assert_not_null(writer);
    holder.b[0] = 7;
}

static void teardown(void)
{
    plasma_client_free(writer);
    plasma_store_free(st);
    event_base_free(base);
    config_free(&cfg);
    rmdir(spill_dir);
}

TestSuite(deps, .init = setup, .fini = teardown);

/* A task with nargs store arguments (the first hinted at `holder`) and one
 * inline argument. */
static rtask *task_with_args(int nargs)
{
    memset(&task, 0, sizeof(task));
    rpc__task_spec__init(&spec);
    rpc__submit_task__init(&msg);
    spec.function = "f";
    for (int i = 0; i <= nargs; i++) {
        rpc__task_arg__init(&argv_[i]);
        args[i] = &argv_[i];
        if (i == nargs)
            break; /* the inline one */
        id_random_bytes(oids[i].b, OBJECT_ID_SIZE);
        argv_[i].is_ref = true;
        argv_[i].object_id.data = oids[i].b;
        argv_[i].object_id.len = OBJECT_ID_SIZE;
        if (i == 0) {
            argv_[i].node_id.data = holder.b;
            argv_[i].node_id.len = NODE_ID_SIZE;
        }
    }
    spec.n_args = (size_t)nargs + 1;
    spec.args = args;
    msg.spec = &spec;
    task.msg = &msg;
    return &task;
}

static void seal(const object_id_t *id)
{
    uint64_t off;
    cr_assert_eq(plasma_create(st, writer, id, 64, 0, &off), 0);
    cr_assert_eq(plasma_seal(st, writer, id), 0);
}

static void run_loop(void)
{
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

/* ------------------------------------------------------------ tests */

Test(deps, alone_the_task_waits_for_its_arguments_to_be_sealed)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(2);
    dm_wait(dm, t);
    cr_assert_eq(t->state, T_WAITING_DEPS);
    run_loop();
    cr_assert_eq(fx.npulls, 0, "one node: nothing to pull from");
    cr_assert_eq(fx.ndone, 0);
    seal(&oids[0]);
    run_loop();
    cr_assert_eq(fx.ndone, 0, "one of two arguments");
    seal(&oids[1]);
    run_loop();
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(fx.status, RAYC_OK);
    cr_assert(t->deps_ready);
    dm_free(dm);
}

Test(deps, local_arguments_are_ready_at_once)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(1);
    seal(&oids[0]);
    fx.multi = true;
    dm_wait(dm, t);
    run_loop();
    cr_assert_eq(fx.npulls, 0, "nothing absent, nothing pulled");
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(fx.status, RAYC_OK);
    dm_free(dm);
}

Test(deps, absent_arguments_are_pulled_with_their_holder_as_hint)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(2);
    seal(&oids[1]);
    fx.multi = true;
    dm_wait(dm, t);
    cr_assert_eq(fx.npulls, 1, "only the absent argument");
    cr_assert_eq(memcmp(fx.pulled[0].b, oids[0].b, OBJECT_ID_SIZE), 0);
    cr_assert(fx.hinted[0]);
    cr_assert_eq(fx.ndone, 0);
    seal(&oids[0]); /* the object manager sealed it here */
    fx.cb[0](fx.cbarg[0], &oids[0], RAYC_OK, NULL);
    run_loop();
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(fx.status, RAYC_OK);
    cr_assert(t->deps_pulled && t->deps_ready);
    dm_free(dm);
}

Test(deps, a_lost_argument_fails_the_task_and_tells_the_owner)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(2);
    fx.multi = true;
    dm_wait(dm, t);
    cr_assert_eq(fx.npulls, 2);
    fx.cb[0](fx.cbarg[0], &oids[0], RAYC_EOBJECT_LOST, "no node holds it");
    cr_assert_eq(fx.nlost, 1);
    cr_assert_eq(memcmp(fx.lost.b, oids[0].b, OBJECT_ID_SIZE), 0);
    cr_assert_eq(fx.ndone, 0, "the other pull is still going");
    seal(&oids[1]);
    fx.cb[1](fx.cbarg[1], &oids[1], RAYC_OK, NULL);
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(fx.status, RAYC_EOBJECT_LOST);
    cr_assert_str_eq(fx.msg, "an argument was lost");
    dm_free(dm);
}

Test(deps, a_remote_owner_is_not_told_here)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(1);
    t->remote_owner = true;
    fx.multi = true;
    dm_wait(dm, t);
    fx.cb[0](fx.cbarg[0], &oids[0], RAYC_EOBJECT_LOST, "gone");
    cr_assert_eq(fx.nlost, 0);
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(fx.status, RAYC_EOBJECT_LOST);
    dm_free(dm);
}

Test(deps, a_task_cancelled_while_pulling_ends_without_waiting)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(1);
    fx.multi = true;
    dm_wait(dm, t);
    t->cancelled = true;
    fx.cb[0](fx.cbarg[0], &oids[0], RAYC_OK, NULL);
    cr_assert_eq(fx.ndone, 1, "done at once: the caller frees it");
    cr_assert(t->cancelled);
    dm_free(dm);
}

Test(deps, freeing_the_manager_ends_waits_silently)
{
    dependency_manager *dm = new_dm();
    dm_wait(dm, task_with_args(1));
    dm_free(dm);
    run_loop();
    cr_assert_eq(fx.ndone, 0);
}

/* Run the loop for ms milliseconds. */
static void run_for(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

Test(deps, a_pulled_argument_is_pinned_for_the_task_until_released)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(2);
    seal(&oids[1]); /* a local (primary) copy: not pinned */
    fx.multi = true;
    dm_wait(dm, t);
    seal(&oids[0]);
    fx.cb[0](fx.cbarg[0], &oids[0], RAYC_OK, NULL);
    run_loop();
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(t->pinned, 1, "argument 0 pinned, argument 1 not");
    dm_release(dm, t);
    cr_assert_eq(t->pinned, 0);
    dm_free(dm);
}

Test(deps, an_argument_gone_before_its_seal_wait_is_pulled_again)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(1);
    fx.multi = true;
    dm_wait(dm, t);
    cr_assert_eq(fx.npulls, 1);
    /* The pull "succeeds" but the copy is gone (evicted) before the wait. */
    fx.cb[0](fx.cbarg[0], &oids[0], RAYC_OK, NULL);
    cr_assert_eq(fx.ndone, 0);
    run_for(DM_RECHECK_MS + 300);
    cr_assert_eq(fx.npulls, 2, "the re-check pulls it again");
    cr_assert(fx.hinted[1], "from the holder the spec names");
    cr_assert_eq(t->rounds, 1);
    seal(&oids[0]);
    fx.cb[1](fx.cbarg[1], &oids[0], RAYC_OK, NULL);
    run_loop();
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(fx.status, RAYC_OK);
    dm_release(dm, t);
    dm_free(dm);
}

Test(deps, a_repull_that_fails_ends_the_wait)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(1);
    fx.multi = true;
    dm_wait(dm, t);
    fx.cb[0](fx.cbarg[0], &oids[0], RAYC_OK, NULL);
    run_for(DM_RECHECK_MS + 300);
    cr_assert_eq(fx.npulls, 2);
    fx.cb[1](fx.cbarg[1], &oids[0], RAYC_EOBJECT_LOST, "no node holds it");
    cr_assert_eq(fx.ndone, 1, "no wait without a way out");
    cr_assert_eq(fx.status, RAYC_EOBJECT_LOST);
    cr_assert_eq(fx.nlost, 1);
    (void)t;
    dm_free(dm);
}

Test(deps, alone_a_missing_argument_is_rechecked_and_still_awaited)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(1);
    dm_wait(dm, t);
    run_for(DM_RECHECK_MS + 300);
    cr_assert_eq(fx.npulls, 0, "nowhere to pull from");
    cr_assert_eq(fx.ndone, 0);
    cr_assert_eq(t->rounds, 1);
    seal(&oids[0]);
    run_loop();
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(fx.status, RAYC_OK);
    dm_free(dm);
}

Test(deps, a_pull_that_finds_the_store_full_is_pulled_again_not_lost)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(1);
    fx.multi = true;
    dm_wait(dm, t);
    cr_assert_eq(fx.npulls, 1);
    fx.cb[0](fx.cbarg[0], &oids[0], RAYC_ESTORE_FULL, "no room");
    cr_assert_eq(fx.nlost, 0, "no room is not a loss: the owner must not rebuild it");
    cr_assert_eq(fx.ndone, 0, "the task still waits");
    char why[256];
    cr_assert_gt(dm_describe(dm, t, why, sizeof(why)), 0);
    cr_assert(strstr(why, "store full") != NULL, "%s", why);
    run_for(DM_RECHECK_MS + 300);
    cr_assert_eq(fx.npulls, 2, "the re-check pulls it again");
    seal(&oids[0]);
    fx.cb[1](fx.cbarg[1], &oids[0], RAYC_OK, NULL);
    run_loop();
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(fx.status, RAYC_OK);
    dm_free(dm);
}

Test(deps, a_present_copy_is_pinned_for_the_task_once_all_are_here)
{
    dependency_manager *dm = new_dm();
    rtask *t = task_with_args(1);
    uint64_t off;
    cr_assert_eq(plasma_create(st, writer, &oids[0], 64, PLASMA_EVICTABLE, &off), 0);
    cr_assert_eq(plasma_seal(st, writer, &oids[0]), 0);
    fx.multi = true;
    dm_wait(dm, t);
    run_loop();
    cr_assert_eq(fx.ndone, 1);
    cr_assert_eq(t->pinned, 1, "the copy it found here is pinned for it");
    dm_release(dm, t);
    cr_assert_eq(t->pinned, 0);
    dm_free(dm);
}
