/*
 * test_placement.c -- placement (raylet/placement.h) over hand-built cluster
 * views: one node, hard pins to dead and unknown nodes, forwarding what this
 * node cannot run, a forward that fails, spillback only to nodes with room,
 * and argument locality. The forward is a fake callback that records what
 * it was asked.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "rayc.h"
#include "../../raylet/placement.h"

static res_set total, available;
static view_node view[4];
static int nview;
static Rpc__TaskSpec spec;
static Rpc__SubmitTask msg;
static Rpc__TaskArg arg0, *args[1];
static rtask task;
static struct {
    bool ok;
    int calls;
    node_id_t to;
} fwd;

static res_set rs(const char *spec_)
{
    res_set s = {0};
    char err[128] = "";
    cr_assert_eq(res_parse(&s, spec_, err, sizeof(err)), 0, "'%s': %s", spec_, err);
    return s;
}

static node_id_t nid(int i)
{
    node_id_t id = {{0}};
    id.b[0] = (uint8_t)(i + 1);
    return id;
}

static bool forward(void *arg, rtask *t, const node_id_t *node)
{
    (void)arg;
    fwd.calls++;
    fwd.to = *node;
    if (fwd.ok)
        t->state = T_FORWARDED;
    return fwd.ok;
}

/* Node i of the view; node 0 is this one. */
static void add_node(const char *tot, const char *avail, bool alive)
{
    view_node *v = &view[nview];
    memset(v, 0, sizeof(*v));
    v->id = nid(nview);
    v->total = rs(tot);
    v->available = rs(avail);
    v->alive = alive;
    nview++;
}

static placement *new_placement(void)
{
    node_id_t self = nid(0);
    placement *pl = place_new(&self, &total, &available, forward, NULL);
    cr_assert_not_null(pl);
    place_set_view(pl, view, nview);
    return pl;
}

static rtask *task_wanting(const char *demand)
{
    memset(&task, 0, sizeof(task));
    rpc__task_spec__init(&spec);
    rpc__submit_task__init(&msg);
    spec.function = "f";
    msg.spec = &spec;
    task.msg = &msg;
    static res_set task_demand;
    task_demand = rs(demand);
    task.demand = &task_demand;
    return &task;
}

static void pin(int node, bool soft)
{
    static node_id_t target;
    target = nid(node);
    spec.strategy = RAYC_SCHED_NODE;
    spec.soft = soft;
    spec.node_id.data = target.b;
    spec.node_id.len = NODE_ID_SIZE;
}

static void setup(void)
{
    memset(&fwd, 0, sizeof(fwd));
    fwd.ok = true;
    nview = 0;
    total = rs("CPU=2");
    available = total;
}

TestSuite(placement, .init = setup);

Test(placement, alone_a_node_runs_what_it_can_and_keeps_the_rest_infeasible)
{
    placement *pl = new_placement(); /* no view yet */
    cr_assert_eq(place_nodes(pl), 0);
    cr_assert_eq(place_task(pl, task_wanting("CPU=1"), false), SCHED_WAIT);
    cr_assert_eq(place_task(pl, task_wanting("GPU=1"), false), SCHED_INFEASIBLE);
    cr_assert_eq(fwd.calls, 0);
    place_free(pl);
}

Test(placement, hard_pins_to_dead_or_unknown_nodes_are_named)
{
    add_node("CPU=2", "CPU=2", true);
    add_node("CPU=2", "CPU=2", false);
    placement *pl = new_placement();
    rtask *t = task_wanting("CPU=1");
    pin(1, false);
    cr_assert_eq(place_task(pl, t, false), PLACE_DEAD_TARGET);
    pin(3, false);
    cr_assert_eq(place_task(pl, t, false), PLACE_UNKNOWN_TARGET);
    pin(3, true);
    cr_assert_eq(place_task(pl, t, false), SCHED_WAIT, "a soft pin falls back to DEFAULT");
    cr_assert_eq(fwd.calls, 0);
    place_free(pl);
}

Test(placement, what_only_another_node_has_is_forwarded_and_counted_there)
{
    add_node("CPU=2", "CPU=2", true);
    add_node("CPU=2,GPU=1", "CPU=2,GPU=1", true);
    placement *pl = new_placement();
    rtask *t = task_wanting("GPU=1");
    cr_assert_eq(place_task(pl, t, false), SCHED_FORWARD);
    cr_assert_eq(fwd.calls, 1);
    cr_assert_eq(memcmp(fwd.to.b, nid(1).b, NODE_ID_SIZE), 0);
    cr_assert_eq(t->state, T_FORWARDED);
    /* The GPU is counted as taken there: the next one queues there too
     * (WAIT at a remote node means forward), until a report says otherwise. */
    cr_assert_eq(place_task(pl, task_wanting("GPU=1"), false), SCHED_FORWARD);
    cr_assert_eq(fwd.calls, 2);
    place_free(pl);
}

Test(placement, an_unreachable_node_keeps_the_task_here)
{
    add_node("CPU=2", "CPU=2", true);
    add_node("CPU=2,GPU=1", "CPU=2,GPU=1", true);
    placement *pl = new_placement();
    fwd.ok = false;
    cr_assert_eq(place_task(pl, task_wanting("GPU=1"), false), SCHED_INFEASIBLE);
    cr_assert_eq(place_task(pl, task_wanting("CPU=3"), false), SCHED_INFEASIBLE);
    available = rs("CPU=0");
    cr_assert_eq(place_task(pl, task_wanting("CPU=1"), false), SCHED_WAIT,
                 "feasible here: it waits here");
    place_free(pl);
}

Test(placement, one_hop_only)
{
    add_node("CPU=2", "CPU=2", true);
    add_node("CPU=2,GPU=1", "CPU=2,GPU=1", true);
    placement *pl = new_placement();
    rtask *t = task_wanting("GPU=1");
    t->no_forward = true;
    cr_assert_eq(place_task(pl, t, false), SCHED_INFEASIBLE);
    cr_assert_eq(fwd.calls, 0);
    place_free(pl);
}

Test(placement, spillback_goes_only_to_a_node_with_room_now)
{
    add_node("CPU=2", "CPU=0", true);
    add_node("CPU=2", "CPU=0", true);
    placement *pl = new_placement();
    available = rs("CPU=0"); /* this node is busy */
    cr_assert_eq(place_task(pl, task_wanting("CPU=1"), true), SCHED_WAIT);
    cr_assert_eq(fwd.calls, 0, "the other node is busy too");
    view[1].available = rs("CPU=2");
    place_set_view(pl, view, nview);
    cr_assert_eq(place_task(pl, task_wanting("CPU=1"), true), SCHED_FORWARD);
    cr_assert_eq(memcmp(fwd.to.b, nid(1).b, NODE_ID_SIZE), 0);
    place_free(pl);
}

Test(placement, a_lightly_loaded_node_keeps_default_tasks)
{
    add_node("CPU=2", "CPU=2", true);
    add_node("CPU=8", "CPU=8", true);
    placement *pl = new_placement();
    cr_assert_eq(place_task(pl, task_wanting("CPU=1"), false), SCHED_WAIT);
    cr_assert_eq(fwd.calls, 0);
    place_free(pl);
}

Test(placement, arguments_draw_a_busy_task_to_their_node)
{
    add_node("CPU=4", "CPU=4", true);
    add_node("CPU=4", "CPU=4", true);
    add_node("CPU=4", "CPU=4", true);
    placement *pl = new_placement();
    available = rs("CPU=1"); /* past the spread threshold: not kept here */
    rtask *t = task_wanting("CPU=1");
    static node_id_t holder;
    holder = nid(2);
    rpc__task_arg__init(&arg0);
    arg0.is_ref = true;
    arg0.node_id.data = holder.b;
    arg0.node_id.len = NODE_ID_SIZE;
    arg0.size = 1 << 20;
    args[0] = &arg0;
    spec.n_args = 1;
    spec.args = args;
    cr_assert_eq(place_task(pl, t, false), SCHED_FORWARD);
    cr_assert_eq(memcmp(fwd.to.b, nid(2).b, NODE_ID_SIZE), 0, "to the node holding the bytes");
    place_free(pl);
}
