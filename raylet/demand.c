/*
 * demand.c -- interned resource demands; see demand.h. A chained hash table
 * keyed by the demand's contents, doubling when it averages two entries a
 * bucket, so an owner that submits many distinct demands costs O(1) a task.
 * Threading: the raylet's loop thread.
 */
#include "demand.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    res_set set; /* first: a handed-out pointer is the entry's */
    uint64_t hash;
    size_t refs;
    struct entry *next;
} entry;

struct demand_table {
    entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

#define FIRST_BUCKETS 16

/* FNV-1a over the names (up to their NUL) and amounts, in order. */
static uint64_t hash_set(const res_set *d)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < d->n; i++) {
        for (const unsigned char *p = (const unsigned char *)d->name[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        unsigned char a[sizeof(double)];
        memcpy(a, &d->amount[i], sizeof(a));
        for (size_t k = 0; k < sizeof(a); k++)
            h = (h ^ a[k]) * 1099511628211ULL;
    }
    return h ^ (uint64_t)d->n;
}

static bool same_set(const res_set *a, const res_set *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (a->amount[i] != b->amount[i] || strcmp(a->name[i], b->name[i]) != 0)
            return false;
    return true;
}

demand_table *demand_table_new(void)
{
    demand_table *dt = calloc(1, sizeof(*dt));
    if (dt == NULL)
        return NULL;
    dt->buckets = calloc(FIRST_BUCKETS, sizeof(*dt->buckets));
    if (dt->buckets == NULL) {
        free(dt);
        return NULL;
    }
    dt->nbuckets = FIRST_BUCKETS;
    return dt;
}

void demand_table_free(demand_table *dt)
{
    if (dt == NULL)
        return;
    for (size_t b = 0; b < dt->nbuckets; b++)
        for (entry *e = dt->buckets[b], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(dt->buckets);
    free(dt);
}

/* Twice the buckets; on out of memory the table stays as it is (longer
 * chains, still correct). */
static void grow(demand_table *dt)
{
    size_t n = dt->nbuckets * 2;
    entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < dt->nbuckets; i++)
        for (entry *e = dt->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(dt->buckets);
    dt->buckets = b;
    dt->nbuckets = n;
}

const res_set *demand_intern(demand_table *dt, const res_set *d)
{
    uint64_t h = hash_set(d);
    for (entry *e = dt->buckets[h & (dt->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && same_set(&e->set, d)) {
            e->refs++;
            return &e->set;
        }
    entry *e = malloc(sizeof(*e));
    if (e == NULL)
        return NULL;
    e->set = *d;
    e->hash = h;
    e->refs = 1;
    if (dt->count + 1 > 2 * dt->nbuckets)
        grow(dt);
    entry **head = &dt->buckets[h & (dt->nbuckets - 1)];
    e->next = *head;
    *head = e;
    dt->count++;
    return &e->set;
}

void demand_release(demand_table *dt, const res_set *d)
{
    if (d == NULL)
        return;
    entry *e = (entry *)(void *)d;
    if (--e->refs > 0)
        return;
    for (entry **p = &dt->buckets[e->hash & (dt->nbuckets - 1)]; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    dt->count--;
    free(e);
}

size_t demand_count(const demand_table *dt)
{
    return dt->count;
}
