/*
 * Task library of the wordcount example.
 *   count(chunk)        words of one chunk of text -> "word count\n" lines
 *   merge(part, ...)    sums such tables by word   -> "word count\n" lines
 * The chunk arrives as a store object: the task reads it in place.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rayc.h"

#define BUCKETS  1024
#define WORD_MAX 64

typedef struct entry {
    char word[WORD_MAX];
    uint64_t count;
    struct entry *next;
} entry;

typedef struct {
    entry *b[BUCKETS];
    size_t n;
} table;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h;
}

static int table_add(table *t, const char *w, size_t n, uint64_t count)
{
    if (n == 0 || n >= WORD_MAX)
        return -1;
    entry **pp = &t->b[hash(w, n) % BUCKETS];
    for (entry *e = *pp; e; e = e->next)
        if (strlen(e->word) == n && memcmp(e->word, w, n) == 0) {
            e->count += count;
            return 0;
        }
    entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -1;
    memcpy(e->word, w, n);
    e->count = count;
    e->next = *pp;
    *pp = e;
    t->n++;
    return 0;
}

static int by_word(const void *a, const void *b)
{
    return strcmp((*(entry *const *)a)->word, (*(entry *const *)b)->word);
}

/* Emit the table as sorted "word count\n" lines into return 0 and free it. */
static int table_return(rayc_ctx *ctx, table *t)
{
    entry **all = malloc((t->n ? t->n : 1) * sizeof(*all));
    size_t n = 0, len = 0;
    for (size_t i = 0; i < BUCKETS; i++)
        for (entry *e = t->b[i]; e; e = e->next) {
            if (all)
                all[n++] = e;
            len += strlen(e->word) + 22;
        }
    char *out = malloc(len + 1);
    int rc = -1;
    if (all && out) {
        qsort(all, n, sizeof(*all), by_word);
        size_t off = 0;
        for (size_t i = 0; i < n; i++)
            off += (size_t)sprintf(out + off, "%s %llu\n", all[i]->word,
                                   (unsigned long long)all[i]->count);
        rc = rayc_return(ctx, 0, out, off);
    }
    for (size_t i = 0; i < BUCKETS; i++)
        for (entry *e = t->b[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(all);
    free(out);
    return rc == 0 ? 0 : rayc_fail(ctx, "cannot build the result table");
}

static int is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t';
}

static int count(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    if (nargs != 1)
        return rayc_fail(ctx, "count wants one chunk");
    table t = {0};
    const char *p = args[0].data, *end = p + args[0].size;
    while (p < end) {
        while (p < end && is_space(*p))
            p++;
        const char *w = p;
        while (p < end && !is_space(*p))
            p++;
        if (p > w && table_add(&t, w, (size_t)(p - w), 1) != 0)
            return rayc_fail(ctx, "bad word at offset %zu",
                             (size_t)(w - (const char *)args[0].data));
    }
    return table_return(ctx, &t);
}
RAYC_REMOTE(count)

static int merge(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    table t = {0};
    for (size_t i = 0; i < nargs; i++) {
        const char *p = args[i].data, *end = p + args[i].size;
        while (p < end) {
            const char *sp = memchr(p, ' ', (size_t)(end - p));
            const char *nl = sp ? memchr(sp, '\n', (size_t)(end - sp)) : NULL;
            if (nl == NULL)
                return rayc_fail(ctx, "merge: argument %zu is not a count table", i);
            if (table_add(&t, p, (size_t)(sp - p), strtoull(sp + 1, NULL, 10)) != 0)
                return rayc_fail(ctx, "merge: bad word in argument %zu", i);
            p = nl + 1;
        }
    }
    return table_return(ctx, &t);
}
RAYC_REMOTE(merge)
