/*
 * idq.h -- a FIFO of task ids (a ring that doubles when full), for the
 * submitters' queues of calls and tasks: pending, in flight, in limbo.
 * Zero-initialise; idq_free gives the memory back.
 */
#ifndef RAYC_IDQ_H
#define RAYC_IDQ_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"

typedef struct {
    task_id_t *v;
    size_t head, len, cap;
} idq;

static inline int idq_grow(idq *q)
{
    size_t cap = q->cap ? q->cap * 2 : 16;
    task_id_t *nv = malloc(cap * sizeof(*nv));
    if (nv == NULL)
        return -1;
    for (size_t i = 0; i < q->len; i++)
        nv[i] = q->v[(q->head + i) % q->cap];
    free(q->v);
    q->v = nv;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static inline int idq_push(idq *q, const task_id_t *id)
{
    if (q->len == q->cap && idq_grow(q) != 0)
        return -1;
    q->v[(q->head + q->len) % q->cap] = *id;
    q->len++;
    return 0;
}

static inline int idq_push_front(idq *q, const task_id_t *id)
{
    if (q->len == q->cap && idq_grow(q) != 0)
        return -1;
    q->head = (q->head + q->cap - 1) % q->cap;
    q->v[q->head] = *id;
    q->len++;
    return 0;
}

static inline task_id_t *idq_at(idq *q, size_t i)
{
    return &q->v[(q->head + i) % q->cap];
}

static inline void idq_pop(idq *q)
{
    q->head = (q->head + 1) % q->cap;
    q->len--;
}

/* Remove id (replies come in order, so it is almost always the head). */
static inline bool idq_remove(idq *q, const uint8_t *id)
{
    for (size_t i = 0; i < q->len; i++) {
        if (memcmp(idq_at(q, i)->b, id, TASK_ID_SIZE) != 0)
            continue;
        for (size_t j = i; j > 0; j--)
            *idq_at(q, j) = *idq_at(q, j - 1);
        idq_pop(q);
        return true;
    }
    return false;
}

static inline void idq_free(idq *q)
{
    free(q->v);
    q->v = NULL;
    q->head = q->len = q->cap = 0;
}

#endif
