/*
 * borrow.h -- borrowed refs in librayc, owner and borrower sides (issue 12;
 * docs/objects.md, "Borrowing"; see borrow.c).
 */
#ifndef RAYC_BORROW_H
#define RAYC_BORROW_H

#include "core.h"
#include "ids.h"
#include "msg.h"

/* Frame handler (router) for MSG_OWNER_REQUEST: another process asks us, the
 * owner, for an object (get), or registers or drops itself as a borrower.
 * arg is the core. Always answers (an OwnerReply through the raylet). */
int borrow_on_owner_request(void *arg, uint16_t type, ProtobufCMessage *msg);
/* Frame handler for OwnerReply frames nobody waits for (unborrows' answers). */
int borrow_on_stray_reply(void *arg, uint16_t type, ProtobufCMessage *msg);

/* Register this process with id's owner as a borrower; mu NOT held. Waits
 * for the owner's answer. 0, or RAYC_EOBJECT_LOST (freed, or its owner
 * died), RAYC_ETIMEDOUT, RAYC_ECONN, with rayc_last_error() saying why. */
int borrow_register(core_t *c, const object_id_t *id);
/* Drop that registration (no answer waited for). Any thread. */
void borrow_unregister(core_t *c, const object_id_t *id);

/* A driver answers its owner requests only while some thread reads its
 * raylet connection (leader/follower, cw_conn.h), which may be never while
 * the program computes. The service thread reads what waits whenever no
 * other thread does, every BORROW_SERVICE_MS (a worker's executor and
 * watcher read already), except while a generator's stream is open (its
 * flow control counts on the program's reads): then owner requests are
 * answered inside the program's calls only. Start returns 0 or -1 (then
 * owners answer only inside calls); stop joins it (NULL-safe, idempotent). */
#define BORROW_SERVICE_MS 20
int borrow_service_start(core_t *c);
void borrow_service_stop(core_t *c);

#endif
