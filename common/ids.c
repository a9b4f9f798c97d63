/* ids.c -- id generation, derivation and hex. See ids.h. */
#include "ids.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void id_random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "rayc: getrandom failed: %s\n", strerror(errno));
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

char *id_hex(const void *id, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = id;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int id_from_hex(const char *hex, void *id, size_t n)
{
    uint8_t *b = id;
    if (hex == NULL || strlen(hex) != 2 * n)
        return -1;
    /* Validate first so that a rejected string leaves id untouched. */
    for (size_t i = 0; i < 2 * n; i++)
        if (hexval(hex[i]) < 0)
            return -1;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

job_id_t job_id_from_int(uint32_t v)
{
    job_id_t j;
    put_be32(j.b, v);
    return j;
}

uint32_t job_id_to_int(job_id_t j)
{
    return get_be32(j.b);
}

node_id_t node_id_random(void)
{
    node_id_t n;
    id_random_bytes(n.b, sizeof(n.b));
    return n;
}

worker_id_t worker_id_random(void)
{
    worker_id_t w;
    id_random_bytes(w.b, sizeof(w.b));
    return w;
}

actor_id_t actor_id_random(job_id_t job)
{
    actor_id_t a;
    id_random_bytes(a.b, 12);
    memcpy(a.b + 12, job.b, JOB_ID_SIZE);
    return a;
}

job_id_t actor_id_job(const actor_id_t *a)
{
    job_id_t j;
    memcpy(j.b, a->b + 12, JOB_ID_SIZE);
    return j;
}

static actor_id_t nil_actor(job_id_t job)
{
    actor_id_t a;
    memset(a.b, 0, 12);
    memcpy(a.b + 12, job.b, JOB_ID_SIZE);
    return a;
}

/* Task ids are made per task: a getrandom(2) each would be a syscall on the
 * submit path. Uniqueness is what matters, so each thread draws them from a
 * 64-bit generator (splitmix64) seeded once from the kernel; its period
 * covers every id a thread can make. */
static unsigned fork_generation = 1; /* bumped in a forked child: reseed there */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    fork_generation++;
}

static void install_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

static uint64_t next_unique(void)
{
    static _Thread_local uint64_t state;
    static _Thread_local unsigned seeded; /* the fork generation it was seeded in */
    if (seeded != fork_generation) {
        pthread_once(&atfork_once, install_atfork);
        id_random_bytes(&state, sizeof(state));
        seeded = fork_generation;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The owner tag of this process (0: none set) and its task counter. */
static uint32_t owner_tag;
static uint32_t owner_counter;

void id_set_owner(const worker_id_t *w)
{
    uint32_t tag;
    memcpy(&tag, w->b, sizeof(tag));
    __atomic_store_n(&owner_counter, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&owner_tag, tag, __ATOMIC_RELEASE);
}

bool id_owner_tag_matches(const void *id, const worker_id_t *w)
{
    return memcmp(id, w->b, ID_OWNER_TAG_SIZE) == 0;
}

/* The unique part of a task id: the owner's tag and its counter once the
 * process has one, else 8 random bytes. */
static void unique_part(uint8_t out[8])
{
    uint32_t tag = __atomic_load_n(&owner_tag, __ATOMIC_ACQUIRE);
    if (tag == 0) {
        uint64_t u = next_unique();
        memcpy(out, &u, 8);
        return;
    }
    uint32_t n = __atomic_add_fetch(&owner_counter, 1, __ATOMIC_RELAXED);
    if (n == 0) /* 2^32 tasks later: 0 is the put task's; skip it */
        n = __atomic_add_fetch(&owner_counter, 1, __ATOMIC_RELAXED);
    memcpy(out, &tag, 4);
    put_be32(out + 4, n);
}

task_id_t task_id_for_actor(const actor_id_t *actor)
{
    task_id_t t;
    unique_part(t.b);
    memcpy(t.b + 8, actor->b, ACTOR_ID_SIZE);
    return t;
}

task_id_t task_id_for_puts(job_id_t job)
{
    task_id_t t;
    actor_id_t a = nil_actor(job);
    uint32_t tag = __atomic_load_n(&owner_tag, __ATOMIC_ACQUIRE);
    memcpy(t.b, &tag, 4);
    memset(t.b + 4, 0, 4);
    memcpy(t.b + 8, a.b, ACTOR_ID_SIZE);
    return t;
}

task_id_t task_id_random(job_id_t job)
{
    actor_id_t a = nil_actor(job);
    return task_id_for_actor(&a);
}

task_id_t task_id_for_driver(job_id_t job)
{
    task_id_t t;
    actor_id_t a = nil_actor(job);
    memset(t.b, 0, 8);
    memcpy(t.b + 8, a.b, ACTOR_ID_SIZE);
    return t;
}

actor_id_t task_id_actor(const task_id_t *t)
{
    actor_id_t a;
    memcpy(a.b, t->b + 8, ACTOR_ID_SIZE);
    return a;
}

job_id_t task_id_job(const task_id_t *t)
{
    actor_id_t a = task_id_actor(t);
    return actor_id_job(&a);
}

static object_id_t object_id_make(const task_id_t *t, uint32_t index)
{
    object_id_t o;
    memcpy(o.b, t->b, TASK_ID_SIZE);
    put_be32(o.b + TASK_ID_SIZE, index);
    return o;
}

object_id_t object_id_for_return(const task_id_t *t, uint32_t index)
{
    return object_id_make(t, index & ~OBJECT_INDEX_PUT_FLAG);
}

object_id_t object_id_for_put(const task_id_t *t, uint32_t index)
{
    return object_id_make(t, index | OBJECT_INDEX_PUT_FLAG);
}

task_id_t object_id_task(const object_id_t *o)
{
    task_id_t t;
    memcpy(t.b, o->b, TASK_ID_SIZE);
    return t;
}

uint32_t object_id_index(const object_id_t *o)
{
    return get_be32(o->b + TASK_ID_SIZE) & ~OBJECT_INDEX_PUT_FLAG;
}

bool object_id_is_put(const object_id_t *o)
{
    return (get_be32(o->b + TASK_ID_SIZE) & OBJECT_INDEX_PUT_FLAG) != 0;
}

bool id_is_nil(const void *id, size_t n)
{
    const uint8_t *b = id;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

uint64_t id_hash(const void *id, size_t n)
{
    /* Word-wise multiply-xorshift: every byte counts (object ids of one task
     * differ only in their last four), and it costs a few cycles a word. */
    const uint8_t *b = id;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, b + i, n - i);
        h = (h ^ w) * 0x94d049bb133111ebull;
        h ^= h >> 29;
    }
    return h;
}
