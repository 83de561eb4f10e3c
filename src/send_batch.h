/* send_batch.h: many connections' send rings written in one system call,
 * through an io_uring.
 *
 * A worker adds the rings it wants written in a loop pass; send_batch_run
 * submits one sendmsg per ring (its oldest frames, up to SEND_RING_IOV), each
 * with MSG_DONTWAIT, so a full socket answers -EAGAIN at once instead of
 * being parked by the kernel and completed later, which could reorder
 * frames), waits for every answer (they come inline: nothing is left in
 * flight when it returns, so no send is ever outstanding while its
 * connection queues more), and reports each ring's outcome the way
 * send_ring_write does.
 *
 * send_batch_create fails where io_uring is refused (Docker's default seccomp
 * profile since Docker 25, kernel.io_uring_disabled, old kernels): the
 * caller then writes with writev (send_ring_write), as before.
 *
 * Owned by one worker thread; no other thread touches it. */
#ifndef CHAT_SEND_BATCH_H
#define CHAT_SEND_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "send_ring.h"

/* Rings written per submission: a message to a room of a thousand goes out
 * in one, back to back, which costs about a tenth less CPU per delivery than
 * eight submissions of 128 did (bench/README.md, fixed load): between
 * submissions the receivers caught up, slept, and had to be woken again. */
#define SEND_BATCH_MAX 1024
/* Frames (iovecs) per submission, shared by its rings. */
#define SEND_BATCH_IOV 8192

struct send_batch;

/* A batch with its own io_uring, or NULL with why (n bytes) saying what the
 * kernel answered. */
struct send_batch *send_batch_create(char *why, size_t n);
void send_batch_destroy(struct send_batch *b);

/* Adds r (fd's ring, with frames to write) to the batch; owner is handed
 * back with its outcome. Returns false, adding nothing, when the batch is
 * full: run it first. */
bool send_batch_add(struct send_batch *b, struct send_ring *r, int fd, void *owner);

/* What one ring's write came to: rc as send_ring_write's (1: the ring is
 * empty, 0: the socket took no more, -1: an error, in err), or 2 when the
 * socket took everything submitted and the ring has more. */
typedef void send_batch_done_fn(void *arg, void *owner, int rc, int err, unsigned pongs);

/* Submits everything added, waits for every answer and calls done for each
 * ring, in the order added; the batch is then empty. Returns false when the
 * io_uring itself failed (what it did not answer was written with writev):
 * destroy it and write with writev from then on. */
bool send_batch_run(struct send_batch *b, send_batch_done_fn *done, void *arg);

#endif
