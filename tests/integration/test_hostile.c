/* test_hostile.c -- hostile peers against live daemons (issue 13): what an
 * unauthenticated client sends before its handshake is small, of the one
 * expected type, and bounded in time, on the GCS's TCP port, the raylet's
 * TCP port and the raylet's Unix socket; after every probe the daemons still
 * serve; a local client cannot submit a task in another client's name. The
 * limits themselves are unit-tested in test_conn_limits.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "rayc.h"
#include "util.h"

TestSuite(hostile, .init = harness_setup, .fini = harness_teardown, .timeout = 180);

/* The raylet's TCP port, from its node's address in the GCS. */
static int raylet_tcp_port(harness_cluster *c)
{
    Rpc__ListNodesReply *r = harness_list_nodes(c);
    cr_assert_not_null(r);
    cr_assert_eq(r->n_nodes, 1);
    const char *colon = strrchr(r->nodes[0]->address, ':');
    cr_assert_not_null(colon);
    int port = atoi(colon + 1);
    msg_free(&r->base);
    return port;
}

static void header(uint8_t out[FRAME_HDR_SIZE], uint16_t type, uint32_t len)
{
    frame_hdr_encode(out, type, len);
}

Test(hostile, big_frames_before_the_handshake_are_refused_at_once)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    uint8_t hdr[FRAME_HDR_SIZE];
    header(hdr, MSG_HANDSHAKE, 64u << 20); /* announces 64 MiB, sends nothing more */
    /* Before: the daemon reserved 64 MiB and waited for the rest forever. */
    cr_assert(harness_send_garbage_tcp(c.port, hdr, sizeof(hdr), 3000), "GCS kept the connection");
    cr_assert(harness_send_garbage_tcp(raylet_tcp_port(&c), hdr, sizeof(hdr), 3000),
              "raylet TCP kept the connection");
    cr_assert(harness_send_garbage_unix(r->socket, hdr, sizeof(hdr), 3000),
              "raylet socket kept the connection");
    cr_assert_eq(harness_count_nodes(&c, RPC__NODE_STATE__NODE_ALIVE), 1, "still serving");
}

Test(hostile, other_frames_before_the_handshake_are_refused)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    uint8_t frame[FRAME_HDR_SIZE + 2] = {0};
    header(frame, MSG_LIST_NODES_REQ, 2);
    cr_assert(harness_send_garbage_tcp(c.port, frame, sizeof(frame), 3000));
    header(frame, MSG_STORE_STATS_REQ, 2);
    cr_assert(harness_send_garbage_unix(r->socket, frame, sizeof(frame), 3000));
    cr_assert_eq(harness_count_nodes(&c, RPC__NODE_STATE__NODE_ALIVE), 1, "still serving");
}

Test(hostile, silent_peers_are_closed_at_the_handshake_deadline)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    /* Nothing sent: the deadline (10 s) closes both. */
    cr_assert(harness_send_garbage_tcp(c.port, "", 0, 30000), "GCS kept a silent peer");
    cr_assert(harness_send_garbage_unix(r->socket, "", 0, 30000), "raylet kept a silent peer");
    cr_assert_eq(harness_count_nodes(&c, RPC__NODE_STATE__NODE_ALIVE), 1, "still serving");
}

/* The closing of a connection: every frame read until it ends. true when the
 * raylet closed it within timeout_ms. */
static bool closed_by_peer(bconn *b, int timeout_ms)
{
    for (;;) {
        uint16_t type;
        ProtobufCMessage *m = NULL;
        int rc = bconn_recv(b, &type, &m, timeout_ms);
        if (rc == RAYC_ECONN)
            return true;
        if (rc != 0)
            return false;
        msg_free(m);
    }
}

Test(hostile, a_local_client_submits_only_in_its_own_name)
{
    harness_cluster c;
    harness_cluster_init(&c);
    harness_cluster_start(&c);
    harness_raylet *r = harness_raylet_start(&c, NULL);
    bconn *b = harness_local_connect(r, RPC__ROLE__ROLE_DRIVER);
    cr_assert_not_null(b);
    task_id_t task = task_id_random(job_id_from_int(1));
    worker_id_t victim = worker_id_random();
    Rpc__TaskSpec spec = RPC__TASK_SPEC__INIT;
    spec.task_id = (ProtobufCBinaryData){TASK_ID_SIZE, task.b};
    spec.job_id = 1;
    spec.function = "nap";
    spec.num_returns = 1;
    spec.owner_id = (ProtobufCBinaryData){WORKER_ID_SIZE, victim.b};
    Rpc__SubmitTask sub = RPC__SUBMIT_TASK__INIT;
    sub.spec = &spec;
    cr_assert_eq(bconn_send(b, MSG_SUBMIT_TASK, &sub.base), 0);
    cr_assert_eq(bconn_flush(b), 0);
    /* Before: accepted; the returns would have been the victim's. */
    cr_assert(closed_by_peer(b, 10000), "the raylet kept a client that submits as another");
    bconn_close(b);
    Rpc__StoreStatsReply *st = harness_store_stats(r);
    cr_assert_not_null(st, "the raylet still serves");
    msg_free(&st->base);
}
