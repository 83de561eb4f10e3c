/* deliver.h: queueing one broadcast to every member of a room on a worker,
 * each member getting the frame permessage-deflate calls for: the plain one,
 * its room stream's (compressor.h), or one compressed alone.
 *
 * DESIGN: a member that takes stream frames (CONN_PMD_STREAM) is in step
 * (conn.in_step) when its inflater has read every frame of its room's stream
 * since the stream last started afresh; only then does it get the stream's
 * frames. A member that joins mid-stream is counted in
 * room.stream_waiting and gets plain frames (which do not touch its
 * inflater) until compressor_restart_due says the stream restarts before a
 * message; every stream member that gets that message is in step from
 * there. Nothing else compressed reaches a member in step: global messages
 * are plain for it, and frames compressed alone reach it only while its room
 * has no stream (the next one starts afresh). Private to the worker and its
 * unit suite; every call from the worker's thread. */
#ifndef CHAT_DELIVER_H
#define CHAT_DELIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"

/* Appends b to the ring of every member of r: a room's (members by room_m)
 * or, global, the worker's list of chat connections (by chat_m). The
 * references are taken with one atomic add per frame for all members, and
 * those not used (closed or slow members) given back. Members are queued in
 * one order for every frame of r, the order its stream compressed them in.
 * Returns how many members took a frame; adds wire bytes saved to the
 * set's counters. */
uint32_t deliver_frames(struct conn_set *s, struct room *r, bool global, struct fbuf *b);

/* c has just become a member of r: counted among its stream members, not in
 * step, when it takes stream frames. */
void deliver_join(struct room *r, struct conn *c);

/* c, an admitted member of r, leaves: a room without stream members lets its
 * stream go. */
void deliver_leave(struct conn_set *s, struct room *r, struct conn *c);

#endif
