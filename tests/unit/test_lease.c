/*
 * test_lease.c -- the lease manager (raylet/lease.h): resource accounting,
 * class queues, leases, pipelining, blocked workers, worker death and job
 * code failures, with fake neighbours: workers are plain structs, and the
 * pool, job table, connections and spillback are callbacks that record what
 * they were asked.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "rayc.h"
#include "../../raylet/job_table.h"
#include "../../raylet/lease.h"

#define NW 4
#define NT 8

static worker workers[NW];
static int nworkers;
static Rpc__TaskSpec specs[NT];
static Rpc__SubmitTask msgs[NT];
static rtask tasks[NT];

static struct {
    int job_state;
    bool spill_ok;
    int want, wants;
    int spills;
    int binds;
    int blocked_calls;
    int npush;
    rtask *pushed[NT];
    worker *pushed_to[NT];
    int nfail;
    rtask *failed[NT];
    int fail_status[NT];
    char fail_msg[NT][256];
} fx;

static res_set rs(const char *spec)
{
    res_set s = {0};
    char err[128] = "";
    cr_assert_eq(res_parse(&s, spec, err, sizeof(err)), 0, "'%s': %s", spec, err);
    return s;
}

/* ------------------------------------------------------------ fake neighbours */

static worker *idle_worker(void *ctx, uint32_t job_id)
{
    (void)ctx;
    worker *unbound = NULL;
    for (int i = 0; i < nworkers; i++) {
        worker *w = &workers[i];
        if (w->state != W_IDLE || w->exiting)
            continue;
        if (w->job_id == job_id)
            return w;
        if (w->job_id == 0 && unbound == NULL)
            unbound = w;
    }
    return unbound;
}

static void want_workers(void *ctx, int n)
{
    (void)ctx;
    fx.want = n;
    fx.wants++;
}

static void set_leased(void *ctx, worker *w, bool leased)
{
    (void)ctx;
    w->state = leased ? W_LEASED : W_IDLE;
}

static void set_blocked(void *ctx, worker *w, bool blocked)
{
    (void)ctx;
    w->blocked = blocked;
    fx.blocked_calls++;
}

static int job_state(void *ctx, uint32_t job_id, const char **error)
{
    (void)ctx;
    (void)job_id;
    *error = "no such package";
    return fx.job_state;
}

static void bind_job(void *ctx, worker *w, uint32_t job_id)
{
    (void)ctx;
    w->job_id = job_id;
    fx.binds++;
}

static void push(void *ctx, worker *w, rtask *t)
{
    (void)ctx;
    cr_assert_lt(fx.npush, NT);
    fx.pushed_to[fx.npush] = w;
    fx.pushed[fx.npush++] = t;
}

static bool spill(void *ctx, rtask *t)
{
    (void)ctx;
    (void)t;
    fx.spills++;
    return fx.spill_ok;
}

static void fail(void *ctx, rtask *t, int status, const char *msg)
{
    (void)ctx;
    cr_assert_lt(fx.nfail, NT);
    fx.failed[fx.nfail] = t;
    fx.fail_status[fx.nfail] = status;
    snprintf(fx.fail_msg[fx.nfail], sizeof(fx.fail_msg[0]), "%s", msg);
    fx.nfail++;
}

static lease_mgr *new_lm(const char *total, int in_flight)
{
    lease_env e = {idle_worker, want_workers, set_leased, set_blocked, job_state,
                   bind_job,    push,         spill,      fail,        NULL};
    res_set t = rs(total);
    lease_mgr *lm = lease_new(&t, in_flight, &e);
    cr_assert_not_null(lm);
    return lm;
}

static worker *add_worker(void)
{
    worker *w = &workers[nworkers];
    memset(w, 0, sizeof(*w));
    w->state = W_IDLE;
    w->pid = 1000 + nworkers;
    nworkers++;
    return w;
}

/* Task i of job 1 demanding `demand`, queued at the back. */
static rtask *queue_task(lease_mgr *lm, int i, const char *demand)
{
    rtask *t = &tasks[i];
    memset(t, 0, sizeof(*t));
    rpc__task_spec__init(&specs[i]);
    rpc__submit_task__init(&msgs[i]);
    specs[i].function = "f";
    msgs[i].spec = &specs[i];
    t->msg = &msgs[i];
    t->job_id = 1;
    static res_set demands[NT];
    demands[i] = rs(demand);
    t->demand = &demands[i];
    cr_assert_eq(lease_enqueue(lm, t, false), 0);
    return t;
}

static void setup(void)
{
    memset(&fx, 0, sizeof(fx));
    fx.job_state = JOB_READY;
    nworkers = 0;
}

TestSuite(lease, .init = setup);

/* ------------------------------------------------------------ tests */

Test(lease, grant_holds_resources_until_the_task_is_done)
{
    lease_mgr *lm = new_lm("CPU=2", 1);
    worker *w = add_worker();
    rtask *t = queue_task(lm, 0, "CPU=1");
    cr_assert_eq(t->state, T_READY);
    cr_assert_eq(lease_queued(lm), 1);
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 1);
    cr_assert_eq(fx.pushed[0], t);
    cr_assert_eq(fx.pushed_to[0], w);
    cr_assert_eq(t->state, T_DISPATCHED);
    cr_assert_eq(t->w, w);
    cr_assert_eq(w->state, W_LEASED);
    cr_assert_eq(w->job_id, 1, "an unbound worker is bound to the class's job");
    cr_assert_eq(fx.binds, 1);
    cr_assert(lease_held(lm, w));
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 1, 1e-9);
    cr_assert_eq(lease_queued(lm), 0);

    lease_task_done(lm, t);
    cr_assert_not(lease_held(lm, w), "the pipeline emptied: the lease ended");
    cr_assert_eq(w->state, W_IDLE);
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 2, 1e-9);
    lease_free(lm);
}

Test(lease, pipelines_up_to_in_flight_then_offers_the_rest_to_other_nodes)
{
    lease_mgr *lm = new_lm("CPU=1", 2);
    worker *w = add_worker();
    rtask *a = queue_task(lm, 0, "CPU=1");
    rtask *b = queue_task(lm, 1, "CPU=1");
    rtask *c = queue_task(lm, 2, "CPU=1");
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 2, "two tasks pipelined to the one lease");
    cr_assert(fx.pushed[0] == a && fx.pushed[1] == b && fx.pushed_to[1] == w);
    cr_assert_eq(fx.spills, 1, "the third waits for a busy node: offered elsewhere once");
    cr_assert_eq(c->state, T_READY);
    cr_assert_eq(lease_queued(lm), 1);
    cr_assert_eq(fx.wants, 0, "no resources: no workers wanted");

    lease_task_done(lm, a);
    cr_assert(lease_held(lm, w), "still one task in the pipeline");
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 3);
    cr_assert_eq(fx.pushed[2], c);
    lease_free(lm);
}

Test(lease, a_spilled_task_leaves_its_queue)
{
    lease_mgr *lm = new_lm("CPU=1", 1);
    fx.spill_ok = true;
    queue_task(lm, 0, "CPU=2"); /* never fits here */
    queue_task(lm, 1, "CPU=2");
    lease_schedule(lm);
    cr_assert_eq(fx.spills, 2);
    cr_assert_eq(lease_queued(lm), 0);
    lease_free(lm);
}

Test(lease, free_resources_without_workers_ask_for_workers)
{
    lease_mgr *lm = new_lm("CPU=4", 1);
    for (int i = 0; i < 3; i++)
        queue_task(lm, i, "CPU=1");
    lease_schedule(lm);
    cr_assert_eq(fx.wants, 1);
    cr_assert_eq(fx.want, 3, "one worker per task that could start now");
    cr_assert_eq(fx.npush, 0);
    lease_free(lm);
}

Test(lease, a_blocked_worker_lends_its_cpu_and_takes_it_back)
{
    lease_mgr *lm = new_lm("CPU=1", 1);
    worker *w0 = add_worker();
    worker *w1 = add_worker();
    rtask *a = queue_task(lm, 0, "CPU=1");
    rtask *b = queue_task(lm, 1, "CPU=1");
    fx.spill_ok = false;
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 1);
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 0, 1e-9);

    lease_worker_blocked(lm, w0);
    cr_assert(w0->blocked);
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 1, 1e-9);
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 2, "the lent CPU runs the next task");
    cr_assert(fx.pushed[1] == b && fx.pushed_to[1] == w1);

    lease_worker_unblocked(lm, w0);
    cr_assert_not(w0->blocked);
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), -1, 1e-9,
                       "taking the CPU back overcommits the node for a while");
    lease_task_done(lm, a);
    lease_task_done(lm, b);
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 1, 1e-9);
    lease_free(lm);
}

Test(lease, a_blocked_lease_ending_returns_only_what_it_holds)
{
    lease_mgr *lm = new_lm("CPU=2", 1);
    worker *w = add_worker();
    rtask *a = queue_task(lm, 0, "CPU=1");
    lease_schedule(lm);
    lease_worker_blocked(lm, w);
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 2, 1e-9);
    lease_task_done(lm, a);
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 2, 1e-9, "never above the total");
    cr_assert_not(w->blocked, "a lease that ends unblocks its worker");
    lease_free(lm);
}

Test(lease, given_back_tasks_go_to_the_front_of_their_queue)
{
    lease_mgr *lm = new_lm("CPU=1", 3);
    worker *w = add_worker();
    rtask *a = queue_task(lm, 0, "CPU=1");
    rtask *b = queue_task(lm, 1, "CPU=1");
    rtask *c = queue_task(lm, 2, "CPU=1");
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 3);
    lease_take_back(lm, c);
    lease_take_back(lm, b);
    cr_assert_eq(b->state, T_READY);
    cr_assert_null(b->w);
    cr_assert_eq(lease_queued(lm), 2);
    lease_worker_blocked(lm, w);
    worker *w1 = add_worker();
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 5);
    cr_assert(fx.pushed[3] == b && fx.pushed[4] == c && fx.pushed_to[3] == w1,
              "given back in reverse, run in order");
    (void)a;
    lease_free(lm);
}

Test(lease, worker_death_fails_its_tasks_and_frees_the_lease)
{
    lease_mgr *lm = new_lm("CPU=1", 2);
    worker *w = add_worker();
    rtask *a = queue_task(lm, 0, "CPU=1");
    rtask *b = queue_task(lm, 1, "CPU=1");
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 2);
    b->cancelled = true;
    lease_worker_died(lm, w);
    cr_assert_eq(fx.nfail, 2);
    cr_assert(fx.failed[0] == a && fx.fail_status[0] == RAYC_EWORKER_DIED);
    cr_assert(strstr(fx.fail_msg[0], "(pid 1000) died"), "%s", fx.fail_msg[0]);
    cr_assert(fx.failed[1] == b && fx.fail_status[1] == RAYC_ECANCELLED);
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 1, 1e-9);
    cr_assert_null(w->lease, "the record goes with the worker");
    lease_free(lm);
}

Test(lease, failed_job_code_fails_every_queued_task)
{
    lease_mgr *lm = new_lm("CPU=1", 1);
    add_worker();
    fx.job_state = JOB_FETCHING;
    queue_task(lm, 0, "CPU=1");
    queue_task(lm, 1, "CPU=1");
    lease_schedule(lm);
    cr_assert_eq(fx.npush + fx.nfail + fx.wants, 0, "a job still fetching its code waits");
    fx.job_state = JOB_FAILED;
    lease_schedule(lm);
    cr_assert_eq(fx.nfail, 2);
    cr_assert_eq(fx.fail_status[0], RAYC_ENOTFOUND);
    cr_assert(strstr(fx.fail_msg[0], "job code unavailable: no such package"), "%s",
              fx.fail_msg[0]);
    cr_assert_eq(lease_queued(lm), 0);
    lease_free(lm);
}

Test(lease, dequeued_tasks_are_not_dispatched)
{
    lease_mgr *lm = new_lm("CPU=1", 1);
    add_worker();
    rtask *a = queue_task(lm, 0, "CPU=1");
    rtask *b = queue_task(lm, 1, "CPU=1");
    lease_dequeue(lm, a);
    cr_assert_null(a->cls);
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 1);
    cr_assert_eq(fx.pushed[0], b);
    lease_free(lm);
}

Test(lease, classes_split_by_demand)
{
    lease_mgr *lm = new_lm("CPU=4", 4);
    worker *w0 = add_worker();
    add_worker();
    queue_task(lm, 0, "CPU=1");
    queue_task(lm, 1, "CPU=2");
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 2);
    cr_assert_neq(fx.pushed_to[0], fx.pushed_to[1], "a lease serves one demand only");
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 1, 1e-9);
    (void)w0;
    lease_free(lm);
}

static bool is_task_1(void *arg, const rtask *t)
{
    (void)arg;
    return t == &tasks[1];
}

static void count_drop(void *arg, rtask *t)
{
    (void)t;
    (*(int *)arg)++;
}

Test(lease, dequeue_if_takes_out_only_the_matching_tasks)
{
    lease_mgr *lm = new_lm("CPU=1", 1);
    queue_task(lm, 0, "CPU=1");
    rtask *b = queue_task(lm, 1, "CPU=1");
    queue_task(lm, 2, "CPU=2");
    int dropped = 0;
    lease_dequeue_if(lm, is_task_1, count_drop, &dropped);
    cr_assert_eq(dropped, 1);
    cr_assert_null(b->cls);
    cr_assert_eq(lease_queued(lm), 2);
    lease_free(lm);
}

Test(lease, queued_demand_follows_the_queues)
{
    lease_mgr *lm = new_lm("CPU=4", 1);
    const res_set *q = lease_queued_demand(lm);
    cr_assert_eq(res_get(q, "CPU"), 0);
    rtask *a = queue_task(lm, 0, "CPU=1");
    queue_task(lm, 1, "CPU=2");
    cr_assert_eq(res_get(q, "CPU"), 3, "two queued tasks: %g", res_get(q, "CPU"));
    lease_dequeue(lm, a);
    cr_assert_eq(res_get(q, "CPU"), 2);
    /* A granted lease takes the task out of the queue: its demand is held
     * by the lease from then on, not counted twice. */
    add_worker();
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 1);
    cr_assert_eq(res_get(q, "CPU"), 0);
    cr_assert_eq(res_get(lease_available(lm), "CPU"), 2);
    lease_free(lm);
}

/* An actor that holds nothing (Ray's default): its creation needs its
 * demand free to be granted but its lease holds none of it, so creations
 * do not wait for each other's constructors. */
Test(lease, place_only_creations_need_their_demand_free_but_hold_none)
{
    lease_mgr *lm = new_lm("CPU=2", 1);
    worker *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = add_worker();
    rtask *c[3];
    for (int i = 0; i < 3; i++) {
        specs[i].actor_creation = true;
        c[i] = &tasks[i];
        memset(c[i], 0, sizeof(*c[i]));
        rpc__submit_task__init(&msgs[i]);
        specs[i].function = "Counter";
        msgs[i].spec = &specs[i];
        c[i]->msg = &msgs[i];
        c[i]->job_id = 1;
        c[i]->place_only = true;
        static res_set one;
        one = rs("CPU=1");
        c[i]->demand = &one;
        cr_assert_eq(lease_enqueue(lm, c[i], false), 0);
    }
    cr_assert_float_eq(res_get(lease_queued_demand(lm), "CPU"), 0, 1e-9,
                       "queued creations that will hold nothing count nothing");
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 3, "three creations on a 2-CPU node at once");
    cr_assert_float_eq(res_get(lease_available(lm), "CPU"), 2, 1e-9, "none holds a CPU");
    for (int i = 0; i < 3; i++) {
        lease_task_done(lm, c[i]);
        lease_dedicated(lm, w[i]);
        cr_assert_null(w[i]->lease, "an actor's worker keeps no lease record");
    }
    /* With no CPU free, a creation waits: its demand places it. (The
     * fixture's workers are idle again: it knows no actors.) */
    rtask *busy = queue_task(lm, 3, "CPU=2");
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 4);
    cr_assert_eq(fx.pushed[3], busy);
    rtask *late = &tasks[4];
    memset(late, 0, sizeof(*late));
    rpc__task_spec__init(&specs[4]);
    rpc__submit_task__init(&msgs[4]);
    specs[4].actor_creation = true;
    specs[4].function = "Counter";
    msgs[4].spec = &specs[4];
    late->msg = &msgs[4];
    late->job_id = 1;
    late->place_only = true;
    static res_set one;
    one = rs("CPU=1");
    late->demand = &one;
    cr_assert_eq(lease_enqueue(lm, late, false), 0);
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 4, "no CPU free: the creation is not granted");
    lease_task_done(lm, busy);
    lease_schedule(lm);
    cr_assert_eq(fx.npush, 5, "a CPU free again: it is");
    lease_free(lm);
}
