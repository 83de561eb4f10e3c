/* compressor.h: a worker's permessage-deflate (RFC 7692): its room streams,
 * its one context for messages compressed alone, and its one inflater.
 *
 * DESIGN: a room stream is one deflate context per (worker, room) with
 * stream members there. Each message to the room is compressed once, in the
 * order the worker queues it to the room's members, and the same frame is
 * queued to every member in step; the context keeps the window of earlier
 * messages, so a member's inflater (which keeps the same window, since the
 * member did not ask for server_no_context_takeover) reads each frame
 * against exactly the history the compressor used. A stream restarts
 * (deflateReset, or a new context) only before a message: after that point
 * nothing refers to earlier data, which is why a member that joined
 * mid-stream can be brought into step there. Contexts are capped per worker
 * (COMPRESSION_STREAMS) and freed when their room is idle for
 * COMPRESSOR_IDLE_MS or has no stream members left.
 *
 * Owned by one worker: every call is from its thread. */
#ifndef CHAT_COMPRESSOR_H
#define CHAT_COMPRESSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fbuf.h"
#include "list.h"

struct worker_counters;
struct room_stream;

/* A room's stream is freed after this long without a message. */
#define COMPRESSOR_IDLE_MS 10000
#define COMPRESSOR_RESTART_AFTER 16

struct compressor {
    uint32_t cap;   /* COMPRESSION_STREAMS */
    uint32_t alive; /* streams allocated */
    struct list streams; /* of room_stream, least recently used first */
    struct worker_counters *counters; /* the worker's */
    void *alone;     /* z_stream for messages compressed alone, made when first needed */
    void *inflater;  /* z_stream for client messages, made when first needed */
    uint8_t *out;    /* scratch for compressed bytes */
    size_t out_cap;
    uint8_t *in;     /* inflated client message (kept up to 256 KiB between sweeps) */
    size_t in_cap;
};

void compressor_init(struct compressor *z, uint32_t cap, struct worker_counters *counters);
/* Frees every stream and buffer. */
void compressor_free(struct compressor *z);

/* Compresses a message with the room stream at *home (the room's field),
 * making the stream when there is none and the cap allows it, restarting it
 * first when restart is true. *restarted says whether this message starts
 * the stream afresh (made or restarted): every stream member that gets it
 * is in step from here. Returns the frame (one reference, the caller's), or
 * NULL when there is no stream for it (cap reached, no memory). */
struct fbuf *compressor_stream(struct compressor *z, struct room_stream **home, uint8_t opcode,
                               const uint8_t *payload, size_t len, bool restart, uint64_t now,
                               bool *restarted);

/* Whether a room's stream s (NULL: none yet) should start afresh before its
 * next message, for waiting of its members stream_members who are not in
 * step: once it has compressed COMPRESSOR_RESTART_AFTER messages since its
 * last start, or at once when they are at least half. A restart costs every
 * member the context of the messages before it; waiting costs the joiners
 * their ratio (they get plain frames meanwhile). */
bool compressor_restart_due(const struct room_stream *s, uint32_t waiting,
                            uint32_t stream_members);

/* Frees the stream at *home, if any, and sets *home to NULL. */
void compressor_forget(struct compressor *z, struct room_stream **home);

/* Frees the streams idle since now - COMPRESSOR_IDLE_MS (their rooms' next
 * message starts a new one). */
void compressor_sweep(struct compressor *z, uint64_t now);

/* Compresses a message with no reference to any other (a full 2^15 window):
 * for members that asked for server_no_context_takeover, the echo endpoint,
 * and rooms past the cap. Returns the frame, or NULL when out of memory. */
struct fbuf *compressor_alone(struct compressor *z, uint8_t opcode, const uint8_t *payload,
                              size_t len);

/* Inflates a client's compressed message (RFC 7692 7.2.2: the tail
 * 00 00 ff ff appended) in bounded steps into the compressor's buffer.
 * Returns 0 with *out and *out_len (valid until the next call), WS_ERR_TOO_BIG
 * as soon as the output passes max, WS_ERR_DEFLATE for data that does not
 * inflate, WS_ERR_NOMEM. */
int compressor_inflate(struct compressor *z, const uint8_t *in, size_t len, size_t max,
                       const uint8_t **out, size_t *out_len);

#endif
