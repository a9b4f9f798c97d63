/*
 * test_gcs_state.c -- the JSON writer/reader (gcs_json) and the state API's
 * views (gcs_state) over hand-built tables: no sockets, no daemons.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../gcs/gcs_json.h"
#include "../../gcs/gcs_state.h"
#include "rayc.h"

Test(gcs_json, escapes_everything_a_peer_could_send)
{
    gcs_json j;
    gcs_json_init(&j);
    gcs_json_obj_begin(&j);
    gcs_json_key(&j, "a\"b");
    gcs_json_str(&j, "x\n\"</script>\x01\xff");
    gcs_json_key(&j, "n");
    gcs_json_arr_begin(&j);
    gcs_json_u64(&j, 1);
    gcs_json_null(&j);
    gcs_json_dbl(&j, 1.0 / 0.0);
    gcs_json_arr_end(&j);
    gcs_json_obj_end(&j);
    char *s = gcs_json_take(&j, NULL);
    cr_assert_str_eq(s, "{\"a\\\"b\":\"x\\n\\\"\\u003c/script\\u003e\\u0001\\ufffd\",\"n\":[1,null,"
                        "null]}");
    free(s);
}

Test(gcs_json, reads_top_level_strings_and_refuses_garbage)
{
    const char *body = "{\"runtime_env\": {\"working_dir\": \"/w\\u00e9\"}, \"x\": [1, {\"e\": 2}],"
                       " \"entrypoint\": \"echo \\\"hi\\\"\"}";
    char *v;
    cr_assert_eq(gcs_json_get_string(body, strlen(body), "entrypoint", &v), 0);
    cr_assert_str_eq(v, "echo \"hi\"");
    free(v);
    const char *env;
    size_t n;
    cr_assert_eq(gcs_json_get_object(body, strlen(body), "runtime_env", &env, &n), 0);
    cr_assert_eq(gcs_json_get_string(env, n, "working_dir", &v), 0);
    cr_assert_str_eq(v, "/w\xc3\xa9");
    free(v);
    cr_assert_eq(gcs_json_get_string(body, strlen(body), "nope", &v), RAYC_ENOTFOUND);
    const char *bad[] = {"",
                         "[]",
                         "{\"entrypoint\": \"x",
                         "{\"entrypoint\" \"x\"}",
                         "{\"a\": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]], \"entrypoint\": \"x\"}",
                         "{\"entrypoint\": \"a\\u0000b\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(gcs_json_get_string(bad[i], strlen(bad[i]), "entrypoint", &v), RAYC_EINVAL,
                     "%s", bad[i]);
}

static void add_location(gcs_objdir *d, uint8_t obj, uint8_t node, uint64_t size)
{
    uint8_t oid[OBJECT_ID_SIZE] = {obj}, nid[NODE_ID_SIZE] = {node}, owner[4] = {0xaa, obj};
    Rpc__ObjectLocation l = RPC__OBJECT_LOCATION__INIT;
    l.object_id = (ProtobufCBinaryData){OBJECT_ID_SIZE, oid};
    l.node_id = (ProtobufCBinaryData){NODE_ID_SIZE, nid};
    l.owner_id = (ProtobufCBinaryData){sizeof(owner), owner};
    l.size = size;
    cr_assert_eq(gcs_objdir_apply(d, &l), 1);
}

static char *render(const gcs_state_src *src, const char *res, gcs_state_query *q)
{
    char *body, err[256];
    size_t len;
    int rc = gcs_state_render(src, res, q, &body, &len, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s: %s", res, err);
    return body;
}

Test(gcs_state, objects_summary_and_memory_views)
{
    gcs_objdir *d = gcs_objdir_new();
    add_location(d, 1, 1, 100);
    add_location(d, 1, 2, 100); /* a second copy */
    add_location(d, 2, 1, 5000);
    gcs_state_src src = {.objdir = d};
    gcs_state_query q = {0};
    char *s = render(&src, "objects", &q);
    cr_assert(strstr(s, "\"total\":3"), "%s", s);
    cr_assert(strstr(s, "\"size\":5000") < strstr(s, "\"size\":100"), "biggest first: %s", s);
    free(s);

    char spec[] = "size!=100";
    cr_assert_eq(gcs_state_add_filter(&q, spec), 0);
    s = render(&src, "objects", &q);
    cr_assert(strstr(s, "\"num_after_filter\":1"), "%s", s);
    free(s);

    gcs_state_query none = {0};
    s = render(&src, "summary/objects", &none);
    /* node 01..: 2 copies, 5100 bytes; TOTAL: 2 objects, 5100 bytes */
    cr_assert(strstr(s, "\"objects\":2,\"bytes\":5100}"), "%s", s);
    cr_assert(strstr(s, "\"node_id\":\"TOTAL\",\"objects\":2,\"bytes\":5100"), "%s", s);
    free(s);

    gcs_state_query mq = {.format = GCS_STATE_TABLE, .group_by = "owner"};
    s = render(&src, "memory", &mq);
    cr_assert(strncmp(s, "GROUP", 5) == 0 && strstr(s, "aa02"), "%s", s);
    free(s);

    char *body, err[128];
    size_t len;
    gcs_state_query bad = {.group_by = "colour"};
    cr_assert_eq(gcs_state_render(&src, "memory", &bad, &body, &len, err, sizeof(err)),
                 RAYC_EINVAL);
    char spec2[] = "colour=red";
    gcs_state_query bq = {0};
    gcs_state_add_filter(&bq, spec2);
    cr_assert_eq(gcs_state_render(&src, "objects", &bq, &body, &len, err, sizeof(err)),
                 RAYC_EINVAL);
    s = render(&src, "tasks", &none); /* no task table: empty (test_gcs_task.c) */
    cr_assert(strstr(s, "\"result\":[]"), "%s", s);
    free(s);
    cr_assert_eq(gcs_state_render(&src, "nope", &none, &body, &len, err, sizeof(err)),
                 RAYC_ENOTFOUND);
    char bad_spec[] = "=x";
    cr_assert_eq(gcs_state_add_filter(&bq, bad_spec), RAYC_EINVAL);
    gcs_objdir_free(d);
}

Test(gcs_state, empty_tables_give_empty_lists)
{
    gcs_state_src src = {0};
    gcs_state_query q = {0};
    const char *res[] = {"nodes", "jobs", "objects", "placement_groups"};
    for (size_t i = 0; i < 4; i++) {
        char *s = render(&src, res[i], &q);
        cr_assert_str_eq(s, "{\"total\":0,\"num_after_filter\":0,\"result\":[]}", "%s", res[i]);
        free(s);
    }
}
