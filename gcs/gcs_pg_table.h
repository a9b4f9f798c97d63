/*
 * gcs_pg_table.h -- the placement-group records of the GCS: one gcs_pg per
 * group in a gcs_map keyed by its id, and their message form
 * (Rpc__PlacementGroupInfo), which is what GCS_TABLE_PGS stores. Pure
 * state: gcs_pg.c (the manager) decides, gcs_server.c loads the table at
 * start.
 */
#ifndef RAYC_GCS_PG_TABLE_H
#define RAYC_GCS_PG_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "msg.h"
#include "util.h"

struct gcs_map;

typedef struct {
    res_set res;
    node_id_t node;
    bool placed;    /* node chosen in the current round, or committed */
    bool committed; /* reserved for good on node */
} pg_bundle;

typedef struct {
    uint8_t id[PG_ID_SIZE];
    char name[128];
    uint32_t job_id;
    int strategy;
    int state; /* Rpc__PgState */
    size_t n;
    pg_bundle *b;
    uint64_t create_ms;
    char cause[128];
    uint64_t round; /* req_id of the prepare round in flight, 0: none */
    uint64_t round_start;
    int answers_due;
    bool round_failed;
} gcs_pg;

/* A table of groups (values freed with gcs_pg_free). NULL on allocation
 * failure. */
struct gcs_map *gcs_pg_table_new(void);
void gcs_pg_free(void *g);
/* Add the packed record to pgs (a GCS restart). RAYC_EINVAL for a
 * malformed record, RAYC_ENOMEM. */
int gcs_pg_table_load(struct gcs_map *pgs, const uint8_t *packed, size_t len);
/* g as a message; its arrays are allocated (free with gcs_pg_info_free),
 * its strings and ids are g's. */
void gcs_pg_to_info(const gcs_pg *g, Rpc__PlacementGroupInfo *info);
void gcs_pg_info_free(Rpc__PlacementGroupInfo *info);
/* A new record from a message: RAYC_EINVAL for a bad one, RAYC_ENOMEM. */
int gcs_pg_from_info(const Rpc__PlacementGroupInfo *info, gcs_pg **out);

#endif
