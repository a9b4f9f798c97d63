/*
 * test_demand.c -- interned resource demands (raylet/demand.c): equal
 * demands share one copy, references count, the table grows and shrinks.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../raylet/demand.h"

static res_set rs(const char *spec)
{
    res_set s = {0};
    char err[128] = "";
    cr_assert_eq(res_parse(&s, spec, err, sizeof(err)), 0, "'%s': %s", spec, err);
    return s;
}

Test(demand, equal_demands_share_one_copy)
{
    demand_table *dt = demand_table_new();
    cr_assert_not_null(dt);
    res_set a = rs("CPU=1"), b = rs("CPU=1"), c = rs("CPU=2"), d = rs("CPU=1,GPU=1");
    const res_set *pa = demand_intern(dt, &a), *pb = demand_intern(dt, &b);
    const res_set *pc = demand_intern(dt, &c), *pd = demand_intern(dt, &d);
    cr_assert(pa && pb && pc && pd);
    cr_assert_eq(pa, pb, "equal demands are one copy");
    cr_assert_neq(pa, pc, "another amount is another demand");
    cr_assert_neq(pa, pd, "another resource is another demand");
    cr_assert(res_equal(pa, &a) && res_equal(pd, &d), "the copy holds the demand");
    cr_assert_eq(demand_count(dt), 3);
    demand_release(dt, pa);
    cr_assert_eq(demand_count(dt), 3, "one task still holds CPU=1");
    cr_assert(res_equal(pb, &a));
    demand_release(dt, pb);
    cr_assert_eq(demand_count(dt), 2, "the last reference frees it");
    demand_release(dt, NULL);
    demand_release(dt, pc);
    demand_release(dt, pd);
    cr_assert_eq(demand_count(dt), 0);
    demand_table_free(dt);
    demand_table_free(NULL);
}

Test(demand, many_distinct_demands)
{
    enum { N = 5000 };
    demand_table *dt = demand_table_new();
    cr_assert_not_null(dt);
    static const res_set *p[N];
    for (int i = 0; i < N; i++) {
        char spec[64];
        snprintf(spec, sizeof(spec), "CPU=1,memory=%d", i + 1);
        res_set s = rs(spec);
        p[i] = demand_intern(dt, &s);
        cr_assert_not_null(p[i]);
    }
    cr_assert_eq(demand_count(dt), N, "the table grew past its first buckets");
    for (int i = 0; i < N; i++) {
        char spec[64];
        snprintf(spec, sizeof(spec), "CPU=1,memory=%d", i + 1);
        res_set s = rs(spec);
        cr_assert_eq(demand_intern(dt, &s), p[i], "found again after growing (%d)", i);
        demand_release(dt, p[i]);
    }
    cr_assert_eq(demand_count(dt), N);
    for (int i = 0; i < N; i += 2)
        demand_release(dt, p[i]);
    cr_assert_eq(demand_count(dt), N / 2);
    demand_table_free(dt); /* frees the rest */
}
