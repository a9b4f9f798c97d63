/*
 * pg.h -- librayc's placement-group helpers beyond rayc.h (pg.c).
 */
#ifndef RAYC_PG_H
#define RAYC_PG_H

#include "ids.h"
#include "rayc.h"
#include "util.h"

/* Where a task of placement group pg, bundle bundle_index (-1: any) with
 * this demand runs: the node of its bundle. RAYC_EINVAL (with the reason)
 * when the group is unknown, not ready, the index is out of range, or the
 * bundle cannot hold the demand. */
int pg__task_target(const rayc_pg *pg, int bundle_index, const res_set *demand, node_id_t *node);

#endif
