/* test_gcs_actors.c -- the GCS actor table over the wire, against a real
 * Redis and gcs_server: register, names per namespace, get_if_exists, kill
 * with and without restart, list, deaths when the job ends (detached actors
 * spared), and every record surviving a kill -9 and restart of the GCS.
 * (Placing actors on workers is the raylet's part and is not tested here.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "ids.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

TestSuite(gcs_actors, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

static bconn *gcs(harness_cluster *c)
{
    int code;
    char err[256];
    bconn *b = harness_connect(c, NULL, &code, err, sizeof(err));
    cr_assert_not_null(b, "connect: %s", err);
    return b;
}

/* Register an actor of job 1; returns the reply's status code and copies the
 * record's id and state out. */
static int reg(harness_cluster *c, actor_id_t *id, const char *ns, const char *name, bool detached,
               int max_restarts, bool get_if_exists, actor_id_t *got, int *state)
{
    bconn *b = gcs(c);
    Rpc__ActorInfo a = RPC__ACTOR_INFO__INIT;
    a.actor_id.data = id->b;
    a.actor_id.len = ACTOR_ID_SIZE;
    a.job_id = 1;
    a.class_name = "Account";
    a.namespace_ = (char *)ns;
    a.name = (char *)name;
    a.detached = detached;
    a.max_restarts = max_restarts;
    Rpc__RegisterActorRequest req = RPC__REGISTER_ACTOR_REQUEST__INIT;
    req.req_id = 1;
    req.actor = &a;
    req.get_if_exists = get_if_exists;
    ProtobufCMessage *m;
    cr_assert_eq(
        bconn_call(b, MSG_REGISTER_ACTOR_REQ, &req.base, MSG_REGISTER_ACTOR_REPLY, &m, 5000), 0);
    Rpc__ActorReply *r = (Rpc__ActorReply *)m;
    int code = r->status ? r->status->code : 0;
    if (r->actor && got)
        memcpy(got->b, r->actor->actor_id.data, ACTOR_ID_SIZE);
    if (r->actor && state)
        *state = r->actor->state;
    msg_free(m);
    bconn_close(b);
    return code;
}

/* The actor's record by id (or name when id is NULL); NULL when not found.
 * Free with msg_free(&reply->base) through *keep. */
static Rpc__ActorInfo *get(harness_cluster *c, const actor_id_t *id, const char *ns,
                           const char *name, ProtobufCMessage **keep)
{
    bconn *b = gcs(c);
    Rpc__GetActorRequest req = RPC__GET_ACTOR_REQUEST__INIT;
    req.req_id = 2;
    if (id) {
        req.actor_id.data = (uint8_t *)id->b;
        req.actor_id.len = ACTOR_ID_SIZE;
    }
    req.namespace_ = (char *)ns;
    req.name = (char *)name;
    cr_assert_eq(bconn_call(b, MSG_GET_ACTOR_REQ, &req.base, MSG_GET_ACTOR_REPLY, keep, 5000), 0);
    bconn_close(b);
    return ((Rpc__ActorReply *)*keep)->actor;
}

static int state_of(harness_cluster *c, const actor_id_t *id, char *cause, size_t cap)
{
    ProtobufCMessage *m;
    Rpc__ActorInfo *a = get(c, id, NULL, NULL, &m);
    cr_assert_not_null(a, "actor not found");
    int st = a->state;
    if (cause)
        snprintf(cause, cap, "%s", a->death_cause);
    msg_free(m);
    return st;
}

static void kill_actor(harness_cluster *c, const actor_id_t *id, bool no_restart)
{
    bconn *b = gcs(c);
    Rpc__KillActorRequest req = RPC__KILL_ACTOR_REQUEST__INIT;
    req.req_id = 3;
    req.actor_id.data = (uint8_t *)id->b;
    req.actor_id.len = ACTOR_ID_SIZE;
    req.no_restart = no_restart;
    ProtobufCMessage *m;
    cr_assert_eq(bconn_call(b, MSG_KILL_ACTOR_REQ, &req.base, MSG_KILL_ACTOR_REPLY, &m, 5000), 0);
    Rpc__ActorReply *r = (Rpc__ActorReply *)m;
    cr_assert(r->status == NULL || r->status->code == 0);
    msg_free(m);
    bconn_close(b);
}

Test(gcs_actors, names_kill_and_restart_budget)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    actor_id_t a = actor_id_random(job_id_from_int(1)), b = actor_id_random(job_id_from_int(1));
    actor_id_t got;
    int st;
    cr_assert_eq(reg(&c, &a, "bank", "alice", false, 1, false, &got, &st), RAYC_OK);
    cr_assert_eq(st, RPC__ACTOR_STATE__ACTOR_PENDING_CREATION);
    cr_assert_eq(reg(&c, &a, "bank", "alice", false, 1, false, &got, NULL), RAYC_OK,
                 "registering the same id again is idempotent");
    cr_assert_eq(reg(&c, &b, "bank", "alice", false, 0, false, &got, NULL), RAYC_EEXIST);
    cr_assert_eq(memcmp(got.b, a.b, ACTOR_ID_SIZE), 0, "the reply names the holder");
    cr_assert_eq(reg(&c, &b, "bank", "alice", false, 0, true, &got, NULL), RAYC_OK);
    cr_assert_eq(memcmp(got.b, a.b, ACTOR_ID_SIZE), 0, "get_if_exists hands back the holder");
    cr_assert_eq(reg(&c, &b, "other", "alice", false, 0, false, &got, NULL), RAYC_OK,
                 "names are per namespace");

    ProtobufCMessage *m;
    Rpc__ActorInfo *byname = get(&c, NULL, "bank", "alice", &m);
    cr_assert_not_null(byname);
    cr_assert_eq(memcmp(byname->actor_id.data, a.b, ACTOR_ID_SIZE), 0);
    cr_assert_str_eq(byname->class_name, "Account");
    msg_free(m);
    cr_assert_null(get(&c, NULL, "bank", "bob", &m));
    msg_free(m);

    kill_actor(&c, &a, false); /* max_restarts 1: it restarts */
    cr_assert_eq(state_of(&c, &a, NULL, 0), RPC__ACTOR_STATE__ACTOR_RESTARTING);
    kill_actor(&c, &a, true);
    char cause[128];
    cr_assert_eq(state_of(&c, &a, cause, sizeof(cause)), RPC__ACTOR_STATE__ACTOR_DEAD);
    cr_assert_str_eq(cause, "killed by rayc_actor_kill");
    cr_assert_null(get(&c, NULL, "bank", "alice", &m), "a dead actor's name is free");
    msg_free(m);
}

Test(gcs_actors, records_survive_a_gcs_restart_and_job_end_kills_non_detached)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    actor_id_t plain = actor_id_random(job_id_from_int(1));
    actor_id_t detached = actor_id_random(job_id_from_int(1));
    actor_id_t dead = actor_id_random(job_id_from_int(1));
    cr_assert_eq(reg(&c, &plain, "ns", "worker", false, 0, false, NULL, NULL), RAYC_OK);
    cr_assert_eq(reg(&c, &detached, "ns", "service", true, -1, false, NULL, NULL), RAYC_OK);
    cr_assert_eq(reg(&c, &dead, "ns", "", false, 0, false, NULL, NULL), RAYC_OK);
    kill_actor(&c, &dead, true);

    harness_kill9(c.gcs);
    harness_gcs_restart(&c);

    ProtobufCMessage *m;
    cr_assert_not_null(get(&c, NULL, "ns", "worker", &m), "the name is held after the restart");
    msg_free(m);
    cr_assert_eq(state_of(&c, &plain, NULL, 0), RPC__ACTOR_STATE__ACTOR_PENDING_CREATION);
    char cause[128];
    cr_assert_eq(state_of(&c, &dead, cause, sizeof(cause)), RPC__ACTOR_STATE__ACTOR_DEAD);
    cr_assert_str_eq(cause, "killed by rayc_actor_kill");

    /* Job 1 ends: its actors die, the detached one lives on. */
    bconn *b = gcs(&c);
    Rpc__JobInfo job = RPC__JOB_INFO__INIT;
    job.job_id = 1;
    Rpc__AddJobRequest add = RPC__ADD_JOB_REQUEST__INIT;
    add.req_id = 4;
    add.job = &job;
    cr_assert_eq(bconn_call(b, MSG_ADD_JOB_REQ, &add.base, MSG_ADD_JOB_REPLY, &m, 5000), 0);
    msg_free(m);
    Rpc__FinishJobRequest fin = RPC__FINISH_JOB_REQUEST__INIT;
    fin.req_id = 5;
    fin.job_id = 1;
    cr_assert_eq(bconn_call(b, MSG_FINISH_JOB_REQ, &fin.base, MSG_FINISH_JOB_REPLY, &m, 5000), 0);
    msg_free(m);
    bconn_close(b);
    cr_assert_eq(state_of(&c, &plain, cause, sizeof(cause)), RPC__ACTOR_STATE__ACTOR_DEAD);
    cr_assert_str_eq(cause, "its job ended");
    cr_assert_eq(state_of(&c, &detached, NULL, 0), RPC__ACTOR_STATE__ACTOR_PENDING_CREATION);

    b = gcs(&c);
    Rpc__ListActorsRequest lr = RPC__LIST_ACTORS_REQUEST__INIT;
    lr.req_id = 6;
    lr.job_id = 1;
    cr_assert_eq(bconn_call(b, MSG_LIST_ACTORS_REQ, &lr.base, MSG_LIST_ACTORS_REPLY, &m, 5000), 0);
    cr_assert_eq(((Rpc__ListActorsReply *)m)->n_actors, 3);
    msg_free(m);
    bconn_close(b);
}
