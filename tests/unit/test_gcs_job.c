/*
 * test_gcs_job.c -- job id allocation, the persisted counter, and the
 * RUNNING -> FINISHED/FAILED transitions of the job table.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../../gcs/gcs_job.h"
#include "../../gcs/gcs_storage.h"
#include "log.h"
#include "rayc.h"

static gcs_job_table *t;

static void setup(void)
{
    log_set_level(LOG_LEVEL_FATAL);
    t = gcs_job_table_new();
    cr_assert(t != NULL);
}

static void teardown(void)
{
    gcs_job_table_free(t);
}

TestSuite(gcs_job, .init = setup, .fini = teardown, .timeout = 30);

static uint32_t add(uint32_t want)
{
    Rpc__JobInfo j = RPC__JOB_INFO__INIT;
    j.job_id = want;
    j.entrypoint = (char *)"./driver";
    j.driver_pid = 42;
    const Rpc__JobInfo *out = NULL;
    int rc = gcs_job_add(t, &j, 777, &out);
    if (rc != RAYC_OK)
        return 0;
    return out->job_id;
}

Test(gcs_job, ids_are_allocated_from_one_upwards)
{
    cr_assert_eq(gcs_job_counter(t), 0);
    cr_assert_eq(add(0), 1);
    cr_assert_eq(add(0), 2);
    cr_assert_eq(add(0), 3);
    cr_assert_eq(gcs_job_counter(t), 3);
    const Rpc__JobInfo *j = gcs_job_get(t, 2);
    cr_assert_not_null(j);
    cr_assert_eq(j->state, RPC__JOB_STATE__JOB_RUNNING);
    cr_assert_eq(j->start_time_ms, 777);
    cr_assert_str_eq(j->entrypoint, "./driver");
}

Test(gcs_job, a_named_id_moves_the_counter_past_it)
{
    cr_assert_eq(add(10), 10);
    cr_assert_eq(add(0), 11);
    cr_assert_eq(add(5), 5, "a free id below the counter is fine");
    cr_assert_eq(add(0), 12);
}

Test(gcs_job, a_taken_id_is_refused)
{
    cr_assert_eq(add(0), 1);
    Rpc__JobInfo j = RPC__JOB_INFO__INIT;
    j.job_id = 1;
    cr_assert_eq(gcs_job_add(t, &j, 0, NULL), RAYC_EEXIST);
    cr_assert_eq(gcs_job_count(t), 1);
}

Test(gcs_job, the_counter_continues_after_a_restart)
{
    gcs_job_set_counter(t, 41);
    cr_assert_eq(add(0), 42);
    gcs_job_set_counter(t, 7); /* never backwards */
    cr_assert_eq(add(0), 43);
}

Test(gcs_job, finish_records_state_and_end_time)
{
    uint32_t id = add(0);
    const Rpc__JobInfo *j;
    bool changed;
    cr_assert_eq(gcs_job_finish(t, id, false, 999, &j, &changed), RAYC_OK);
    cr_assert(changed);
    cr_assert_eq(j->state, RPC__JOB_STATE__JOB_FINISHED);
    cr_assert_eq(j->end_time_ms, 999);
    cr_assert_eq(gcs_job_finish(t, id, true, 1000, &j, &changed), RAYC_OK);
    cr_assert_not(changed, "an ended job stays as it ended");
    cr_assert_eq(j->state, RPC__JOB_STATE__JOB_FINISHED);
    cr_assert_eq(j->end_time_ms, 999);
}

Test(gcs_job, failed_finish_marks_failed)
{
    uint32_t id = add(0);
    const Rpc__JobInfo *j;
    cr_assert_eq(gcs_job_finish(t, id, true, 5, &j, NULL), RAYC_OK);
    cr_assert_eq(j->state, RPC__JOB_STATE__JOB_FAILED);
}

Test(gcs_job, finish_of_unknown_job_is_not_found)
{
    cr_assert_eq(gcs_job_finish(t, 9, false, 0, NULL, NULL), RAYC_ENOTFOUND);
}

Test(gcs_job, load_restores_jobs_and_counter)
{
    Rpc__JobInfo j = RPC__JOB_INFO__INIT;
    j.job_id = 17;
    j.state = RPC__JOB_STATE__JOB_FINISHED;
    size_t len;
    uint8_t *p = gcs_storage_pack(&j.base, &len);
    cr_assert_eq(gcs_job_load(t, p, len), RAYC_OK);
    free(p);
    cr_assert_eq(gcs_job_get(t, 17)->state, RPC__JOB_STATE__JOB_FINISHED);
    cr_assert_eq(add(0), 18);
    uint8_t junk[] = {0xff};
    cr_assert_eq(gcs_job_load(t, junk, 1), RAYC_EINVAL);
}

Test(gcs_job, counter_format_round_trips)
{
    char buf[16];
    uint32_t v;
    gcs_job_counter_format(4294967295u, buf);
    cr_assert_str_eq(buf, "4294967295");
    cr_assert_eq(gcs_job_counter_parse((const uint8_t *)buf, strlen(buf), &v), 0);
    cr_assert_eq(v, 4294967295u);
    cr_assert_eq(gcs_job_counter_parse((const uint8_t *)"12x", 3, &v), -1);
    cr_assert_eq(gcs_job_counter_parse((const uint8_t *)"", 0, &v), -1);
    cr_assert_eq(gcs_job_counter_parse((const uint8_t *)"4294967296", 10, &v), -1);
}

Test(gcs_job, storage_key_is_big_endian)
{
    uint8_t k[4];
    gcs_job_key(0x01020304, k);
    cr_assert(k[0] == 1 && k[1] == 2 && k[2] == 3 && k[3] == 4);
}

Test(gcs_job, list_is_sorted_by_id)
{
    add(5);
    add(2);
    add(9);
    const Rpc__JobInfo *out[3];
    cr_assert_eq(gcs_job_list(t, out, 3), 3);
    cr_assert(out[0]->job_id == 2 && out[1]->job_id == 5 && out[2]->job_id == 9);
}
