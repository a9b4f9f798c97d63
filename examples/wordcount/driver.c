/*
 * wordcount: map-reduce over a 4 MiB deterministic text. The driver puts
 * the text in the object store in CHUNK-sized pieces (large objects: tasks
 * read them zero-copy), runs count() on each, merge() on the results, and
 * checks the totals against a count it makes itself.
 */
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rayc.h"

#define TEXT_SIZE  (4u << 20)
#define CHUNK      (256u << 10) /* > 100 KiB: each chunk is a store object */
#define MAX_CHUNKS 64

static const char *const vocab[] = {
    "the",   "a",      "ray",    "task",   "actor", "object", "store",  "node",
    "gcs",   "raylet", "worker", "driver", "put",   "get",    "wait",   "submit",
    "lease", "spill",  "pull",   "push",   "owner", "ref",    "value",  "error",
    "retry", "cancel", "nest",   "block",  "cpu",   "gpu",    "memory", "plasma",
};
#define NVOCAB (sizeof(vocab) / sizeof(vocab[0]))

static int die(const char *what, int rc)
{
    fprintf(stderr, "wordcount: %s: %s: %s\n", what, rayc_strerror(rc), rayc_last_error());
    return 1;
}

/* Words drawn from vocab by a fixed LCG (skewed so counts differ), lines of
 * about 60 characters, exactly TEXT_SIZE bytes ending in a newline. */
static char *make_text(uint64_t expect[NVOCAB])
{
    char *t = malloc(TEXT_SIZE);
    if (t == NULL)
        return NULL;
    uint64_t s = 42;
    size_t off = 0, line = 0;
    for (;;) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t r = (size_t)(s >> 33);
        size_t i = (r % NVOCAB) * (r / NVOCAB % NVOCAB) / NVOCAB; /* skew to low indices */
        size_t n = strlen(vocab[i]);
        if (off + n + 1 > TEXT_SIZE)
            break;
        memcpy(t + off, vocab[i], n);
        off += n;
        line += n + 1;
        t[off++] = line > 60 ? '\n' : ' ';
        if (line > 60)
            line = 0;
        expect[i]++;
    }
    memset(t + off, ' ', TEXT_SIZE - off);
    t[TEXT_SIZE - 1] = '\n';
    return t;
}

/* Compare merge()'s "word count\n" table with the local counts. */
static int check(const char *table, size_t len, const uint64_t expect[NVOCAB], uint64_t *words)
{
    size_t seen = 0;
    *words = 0;
    for (const char *p = table, *end = table + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        if (nl == NULL || sp == NULL || sp > nl)
            return -1;
        size_t i = 0;
        while (i < NVOCAB && !(strlen(vocab[i]) == (size_t)(sp - p) &&
                               memcmp(vocab[i], p, (size_t)(sp - p)) == 0))
            i++;
        uint64_t c = strtoull(sp + 1, NULL, 10);
        if (i == NVOCAB || c != expect[i]) {
            fprintf(stderr, "wordcount: %.*s: got %llu, want %llu\n", (int)(sp - p), p,
                    (unsigned long long)c, i < NVOCAB ? (unsigned long long)expect[i] : 0ULL);
            return -1;
        }
        *words += c;
        seen++;
        p = nl + 1;
    }
    size_t want = 0;
    for (size_t i = 0; i < NVOCAB; i++)
        want += expect[i] > 0;
    return seen == want ? 0 : -1;
}

int main(void)
{
    char self[PATH_MAX], lib[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(lib, sizeof(lib), "%s/libwordcount_tasks.so", dirname(self));
    const char *code[] = {lib, NULL};
    rayc_init_opts opts = {.code = code};
    int rc = rayc_init(&opts);
    if (rc != RAYC_OK)
        return die("rayc_init", rc);

    uint64_t expect[NVOCAB] = {0};
    char *text = make_text(expect);
    if (text == NULL)
        return die("make_text", RAYC_ENOMEM);

    /* Split at whitespace after each CHUNK bytes, put, and map. */
    rayc_ref chunks[MAX_CHUNKS], counts[MAX_CHUNKS];
    size_t nchunks = 0;
    for (size_t off = 0; off < TEXT_SIZE && nchunks < MAX_CHUNKS; nchunks++) {
        size_t end = off + CHUNK < TEXT_SIZE ? off + CHUNK : TEXT_SIZE;
        while (end < TEXT_SIZE && text[end - 1] != ' ' && text[end - 1] != '\n')
            end++;
        if ((rc = rayc_put(text + off, end - off, &chunks[nchunks])) != RAYC_OK)
            return die("put", rc);
        rayc_arg a = RAYC_REF(chunks[nchunks]);
        if ((rc = rayc_submit("count", &a, 1, NULL, &counts[nchunks])) != RAYC_OK)
            return die("submit count", rc);
        off = end;
    }
    free(text);

    /* Reduce: one merge() over every partial table. */
    rayc_arg margs[MAX_CHUNKS];
    for (size_t i = 0; i < nchunks; i++)
        margs[i] = RAYC_REF(counts[i]);
    rayc_ref total;
    if ((rc = rayc_submit("merge", margs, nchunks, NULL, &total)) != RAYC_OK)
        return die("submit merge", rc);
    for (size_t i = 0; i < nchunks; i++) {
        rayc_ref_release(chunks[i]);
        rayc_ref_release(counts[i]);
    }

    rayc_value v;
    if ((rc = rayc_get(&total, 1, &v, -1)) != RAYC_OK)
        return die("get", rc);
    uint64_t words = 0;
    int ok = check(v.data, v.size, expect, &words) == 0;
    if (ok)
        fwrite(v.data, 1, v.size, stdout);
    printf("%llu words in %zu chunks of ~%u KiB: %s\n", (unsigned long long)words, nchunks,
           CHUNK >> 10, ok ? "counts match" : "COUNTS DIFFER");
    rayc_value_release(&v);
    rayc_ref_release(total);
    rayc_shutdown();
    return ok ? 0 : 1;
}
