/* send_ring.h: one connection's queue of frames to write.
 *
 * A ring of refcounted frames (fbuf.h), oldest first, and how much of the
 * oldest is already written. It starts empty (no allocation), doubles from
 * SEND_RING_MIN slots up to the bound its owner gives, and shrinks back when
 * asked (an idle connection). Writing takes as much as the socket will, with
 * one writev of up to SEND_RING_IOV frames at a time. The ring owns one
 * reference per slot.
 *
 * Owned by the worker that owns the connection; no other thread touches it. */
#ifndef CHAT_SEND_RING_H
#define CHAT_SEND_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "fbuf.h"

#define SEND_RING_MIN 4
#define SEND_RING_IOV 64

struct send_ring {
    struct fbuf **slot; /* cap entries; NULL while cap is 0 */
    uint32_t head, n, cap;
    uint32_t head_off; /* bytes of the oldest frame already written */
};

/* Appends b, the ring taking over the caller's reference. Grows when full,
 * up to max slots. Returns false (b still the caller's) when the ring holds
 * max frames already, or out of memory. */
bool send_ring_push(struct send_ring *r, struct fbuf *b, uint32_t max);

/* Writes to fd as much as it takes, dropping each frame once it is wholly
 * written; *pongs (may be NULL) is set to how many of those were pongs.
 * Returns 1 when the ring is empty, 0 when the socket took no more (a short
 * write or EAGAIN: wait for EPOLLOUT), -1 on an error (errno says which). */
int send_ring_write(struct send_ring *r, int fd, unsigned *pongs);

/* The two halves of a write, for a caller that submits it itself (an
 * io_uring): send_ring_iov fills iov with up to max of the oldest frames
 * (the first from its unwritten part) and their byte count in *total;
 * send_ring_consume takes written bytes off the front and returns how many
 * pongs went out wholly. */
size_t send_ring_iov(const struct send_ring *r, struct iovec *iov, size_t max, size_t *total);
unsigned send_ring_consume(struct send_ring *r, size_t written);

/* Drops every frame not yet begun; a frame half written stays, so the
 * stream stays well formed. Returns the pongs left (0 or 1). */
unsigned send_ring_drop_unwritten(struct send_ring *r);

/* An empty ring larger than SEND_RING_MIN goes back to that size. */
void send_ring_shrink(struct send_ring *r);

/* Drops every frame and the slots. */
void send_ring_free(struct send_ring *r);

#endif
