/* test_gcs_actor.c -- the GCS actor table (gcs/gcs_actor.h): the lifecycle
 * of Ray's actor states, restarts, names per namespace, bulk deaths by node
 * and by job, and reload from storage. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../gcs/gcs_actor.h"
#include "ids.h"
#include "rayc.h"

static gcs_actor_table *t;

static void setup(void)
{
    t = gcs_actor_table_new();
    cr_assert_not_null(t);
}

static void teardown(void)
{
    gcs_actor_table_free(t);
}

TestSuite(gcs_actor, .init = setup, .fini = teardown, .timeout = 30);

/* A new actor of job 1 with the given name ("" = anonymous). */
static actor_id_t add(const char *ns, const char *name, int max_restarts, bool detached, int expect)
{
    actor_id_t id = actor_id_random(job_id_from_int(1));
    Rpc__ActorInfo a = RPC__ACTOR_INFO__INIT;
    a.actor_id.data = id.b;
    a.actor_id.len = ACTOR_ID_SIZE;
    a.job_id = 1;
    a.class_name = "Counter";
    a.name = (char *)name;
    a.namespace_ = (char *)ns;
    a.max_restarts = max_restarts;
    a.detached = detached;
    const Rpc__ActorInfo *out = NULL;
    cr_assert_eq(gcs_actor_register(t, &a, 1000, &out), expect);
    cr_assert_not_null(out);
    return id;
}

static int state(const actor_id_t *id)
{
    const Rpc__ActorInfo *a = gcs_actor_get(t, id);
    cr_assert_not_null(a);
    return a->state;
}

static void make_alive(const actor_id_t *id, const node_id_t *node)
{
    worker_id_t w = worker_id_random();
    cr_assert_eq(gcs_actor_created(t, id, node, &w, "127.0.0.1:7000", 42, NULL), RAYC_OK);
}

Test(gcs_actor, register_then_created_is_alive)
{
    actor_id_t id = add("", "", 0, false, RAYC_OK);
    cr_assert_eq(state(&id), RPC__ACTOR_STATE__ACTOR_PENDING_CREATION);
    node_id_t n = node_id_random();
    make_alive(&id, &n);
    const Rpc__ActorInfo *a = gcs_actor_get(t, &id);
    cr_assert_eq(a->state, RPC__ACTOR_STATE__ACTOR_ALIVE);
    cr_assert_str_eq(a->address, "127.0.0.1:7000");
    cr_assert_eq(a->pid, 42);
    cr_assert_eq(a->start_time_ms, 1000);
    worker_id_t w = worker_id_random();
    cr_assert_eq(gcs_actor_created(t, &id, &n, &w, "x", 1, NULL), RAYC_EINVAL,
                 "a second creation report is refused");
}

Test(gcs_actor, bad_registrations)
{
    Rpc__ActorInfo a = RPC__ACTOR_INFO__INIT;
    uint8_t shortid[4] = {0};
    a.actor_id.data = shortid;
    a.actor_id.len = sizeof(shortid);
    a.class_name = "C";
    cr_assert_eq(gcs_actor_register(t, &a, 0, NULL), RAYC_EINVAL);
    actor_id_t id = actor_id_random(job_id_from_int(1));
    a.actor_id.data = id.b;
    a.actor_id.len = ACTOR_ID_SIZE;
    a.class_name = "";
    cr_assert_eq(gcs_actor_register(t, &a, 0, NULL), RAYC_EINVAL, "a class is required");
    a.class_name = "C";
    cr_assert_eq(gcs_actor_register(t, &a, 0, NULL), RAYC_OK);
    cr_assert_eq(gcs_actor_register(t, &a, 0, NULL), RAYC_EEXIST, "the same id twice");
    cr_assert_eq(gcs_actor_count(t), 1);
}

Test(gcs_actor, names_are_per_namespace_and_freed_at_death)
{
    actor_id_t a = add("ns1", "bank", 0, false, RAYC_OK);
    add("ns1", "bank", 0, false, RAYC_EEXIST);
    actor_id_t b = add("ns2", "bank", 0, false, RAYC_OK);
    cr_assert_eq(memcmp(gcs_actor_by_name(t, "ns1", "bank")->actor_id.data, a.b, ACTOR_ID_SIZE), 0);
    cr_assert_eq(memcmp(gcs_actor_by_name(t, "ns2", "bank")->actor_id.data, b.b, ACTOR_ID_SIZE), 0);
    cr_assert_null(gcs_actor_by_name(t, "ns3", "bank"));
    cr_assert_eq(gcs_actor_failed(t, &a, "killed by rayc_actor_kill", false, 5, NULL), RAYC_OK);
    cr_assert_null(gcs_actor_by_name(t, "ns1", "bank"), "a dead actor's name is free");
    actor_id_t c = add("ns1", "bank", 0, false, RAYC_OK);
    cr_assert_eq(memcmp(gcs_actor_by_name(t, "ns1", "bank")->actor_id.data, c.b, ACTOR_ID_SIZE), 0);
    cr_assert_str_eq(gcs_actor_get(t, &a)->death_cause, "killed by rayc_actor_kill");
}

Test(gcs_actor, restarts_until_the_budget_is_spent)
{
    actor_id_t id = add("", "", 2, false, RAYC_OK);
    node_id_t n = node_id_random();
    for (int i = 1; i <= 2; i++) {
        make_alive(&id, &n);
        cr_assert_eq(gcs_actor_failed(t, &id, "worker died: signal 9", true, 10, NULL), RAYC_OK);
        cr_assert_eq(state(&id), RPC__ACTOR_STATE__ACTOR_RESTARTING);
        cr_assert_eq(gcs_actor_get(t, &id)->num_restarts, (uint32_t)i);
        cr_assert_str_eq(gcs_actor_get(t, &id)->address, "", "no address while restarting");
    }
    make_alive(&id, &n);
    cr_assert_eq(gcs_actor_failed(t, &id, "worker died: signal 9", true, 10, NULL), RAYC_OK);
    cr_assert_eq(state(&id), RPC__ACTOR_STATE__ACTOR_DEAD);
    cr_assert_str_eq(gcs_actor_get(t, &id)->death_cause, "worker died: signal 9");
    cr_assert_eq(gcs_actor_get(t, &id)->end_time_ms, 10);
    cr_assert_eq(gcs_actor_failed(t, &id, "again", true, 20, NULL), RAYC_OK, "DEAD stays DEAD");
    cr_assert_str_eq(gcs_actor_get(t, &id)->death_cause, "worker died: signal 9");
}

Test(gcs_actor, forever_and_kill_without_restart)
{
    actor_id_t id = add("", "", -1, false, RAYC_OK);
    node_id_t n = node_id_random();
    for (int i = 0; i < 50; i++) {
        make_alive(&id, &n);
        gcs_actor_failed(t, &id, "crash", true, 0, NULL);
        cr_assert_eq(state(&id), RPC__ACTOR_STATE__ACTOR_RESTARTING);
    }
    gcs_actor_failed(t, &id, "killed by rayc_actor_kill", false, 0, NULL);
    cr_assert_eq(state(&id), RPC__ACTOR_STATE__ACTOR_DEAD);
}

static size_t ncb;
static void count_cb(void *arg, const Rpc__ActorInfo *a)
{
    (void)arg, (void)a;
    ncb++;
}

Test(gcs_actor, node_death_touches_only_its_actors)
{
    node_id_t n1 = node_id_random(), n2 = node_id_random();
    actor_id_t a = add("", "", 1, false, RAYC_OK), b = add("", "", 0, false, RAYC_OK),
               c = add("", "", 0, false, RAYC_OK);
    make_alive(&a, &n1);
    make_alive(&b, &n1);
    make_alive(&c, &n2);
    ncb = 0;
    cr_assert_eq(gcs_actor_node_died(t, &n1, 7, count_cb, NULL), 2);
    cr_assert_eq(ncb, 2);
    cr_assert_eq(state(&a), RPC__ACTOR_STATE__ACTOR_RESTARTING);
    cr_assert_eq(state(&b), RPC__ACTOR_STATE__ACTOR_DEAD);
    cr_assert(strstr(gcs_actor_get(t, &b)->death_cause, "died") != NULL);
    cr_assert_eq(state(&c), RPC__ACTOR_STATE__ACTOR_ALIVE);
}

Test(gcs_actor, job_end_spares_detached_actors)
{
    actor_id_t a = add("", "", -1, false, RAYC_OK), d = add("", "svc", 0, true, RAYC_OK);
    ncb = 0;
    cr_assert_eq(gcs_actor_job_ended(t, 1, 9, count_cb, NULL), 1);
    cr_assert_eq(state(&a), RPC__ACTOR_STATE__ACTOR_DEAD, "no restart after the job ended");
    cr_assert_str_eq(gcs_actor_get(t, &a)->death_cause, "its job ended");
    cr_assert_eq(state(&d), RPC__ACTOR_STATE__ACTOR_PENDING_CREATION);
    size_t counts[4];
    gcs_actor_count_states(t, counts);
    cr_assert_eq(counts[RPC__ACTOR_STATE__ACTOR_DEAD], 1);
    cr_assert_eq(counts[RPC__ACTOR_STATE__ACTOR_PENDING_CREATION], 1);
}

Test(gcs_actor, reload_keeps_states_and_names)
{
    actor_id_t a = add("ns", "kept", 0, false, RAYC_OK), b = add("ns", "gone", 0, false, RAYC_OK);
    node_id_t n = node_id_random();
    make_alive(&a, &n);
    gcs_actor_failed(t, &b, "killed", false, 3, NULL);
    /* Persist every record as the GCS does, then load into a new table. */
    gcs_actor_table *t2 = gcs_actor_table_new();
    const Rpc__ActorInfo *all[8];
    size_t n_all = gcs_actor_list(t, all, 8);
    cr_assert_eq(n_all, 2);
    for (size_t i = 0; i < n_all; i++) {
        size_t len = rpc__actor_info__get_packed_size(all[i]);
        uint8_t *buf = malloc(len);
        rpc__actor_info__pack(all[i], buf);
        cr_assert_eq(gcs_actor_load(t2, buf, len), RAYC_OK);
        free(buf);
    }
    cr_assert_eq(gcs_actor_load(t2, (const uint8_t *)"\xff\xff", 2), RAYC_EINVAL);
    cr_assert_not_null(gcs_actor_by_name(t2, "ns", "kept"));
    cr_assert_null(gcs_actor_by_name(t2, "ns", "gone"), "a dead actor holds no name");
    cr_assert_eq(gcs_actor_get(t2, &a)->state, RPC__ACTOR_STATE__ACTOR_ALIVE);
    cr_assert_str_eq(gcs_actor_get(t2, &b)->death_cause, "killed");
    gcs_actor_table_free(t2);
}

Test(gcs_actor, actors_per_node_follow_placement_restarts_and_deaths)
{
    node_id_t n1 = node_id_random(), n2 = node_id_random();
    actor_id_t a = add("", "", 1, false, RAYC_OK), b = add("", "", 0, false, RAYC_OK);
    cr_assert_eq(gcs_actor_on_node(t, &n1), 0, "registered, not placed: nowhere");
    cr_assert_eq(gcs_actor_placed(t, &a, &n1), RAYC_OK);
    cr_assert_eq(gcs_actor_placed(t, &b, &n1), RAYC_OK);
    cr_assert_eq(gcs_actor_on_node(t, &n1), 2, "placed: counted while being created");
    make_alive(&a, &n1);
    cr_assert_eq(gcs_actor_on_node(t, &n1), 2, "alive on the node it was placed on");
    cr_assert_eq(gcs_actor_failed(t, &a, "worker died", true, 2000, NULL), RAYC_OK);
    cr_assert_eq(gcs_actor_on_node(t, &n1), 1, "restarting: placed again, not on n1");
    cr_assert_eq(gcs_actor_placed(t, &a, &n2), RAYC_OK);
    cr_assert_eq(gcs_actor_on_node(t, &n2), 1);
    cr_assert_eq(gcs_actor_failed(t, &b, "killed", false, 2000, NULL), RAYC_OK);
    cr_assert_eq(gcs_actor_on_node(t, &n1), 0, "a DEAD actor counts nowhere");
    cr_assert_eq(gcs_actor_node_died(t, &n2, 3000, NULL, NULL), 1);
    cr_assert_eq(gcs_actor_on_node(t, &n2), 0);
}
