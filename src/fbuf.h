/* fbuf.h: a refcounted, immutable, already-framed WebSocket frame.
 *
 * A broadcast is serialized and framed once into one fbuf; every inbox slot
 * and send-ring slot that stores the pointer owns one reference. Take the
 * reference before publishing the pointer; drop it when the slot is written
 * out or discarded. The last fbuf_unref frees it. Any thread. */
#ifndef CHAT_FBUF_H
#define CHAT_FBUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct fbuf {
    atomic_uint refs; /* one per stored pointer */
    uint32_t len;     /* bytes of data: header and payload */
    uint8_t hdr_len;  /* the frame header's share of len */
    const void *route; /* broadcasts: where it goes (dest.h), in this allocation; else NULL */
    uint8_t data[];
};

/* Frames payload as one unmasked frame of the given opcode. Returns a buffer
 * holding one reference (the caller's), or NULL when out of memory. */
struct fbuf *fbuf_new_frame(uint8_t opcode, const void *payload, size_t len);

/* Frames payload, compressed by permessage-deflate, as one unmasked frame
 * with RSV1 set (RFC 7692 6). Returns one reference, or NULL. */
struct fbuf *fbuf_new_deflated(uint8_t opcode, const void *payload, size_t len);

/* Frames payload as a text frame that carries a copy of its routing record
 * (route, size bytes: dest.h says what it holds; fbuf only keeps it) in the
 * same allocation. */
struct fbuf *fbuf_new_broadcast(const void *payload, size_t len, const void *route, size_t size);

/* The frame's payload: what was framed, without the header. */
static inline const uint8_t *fbuf_payload(const struct fbuf *b)
{
    return b->data + b->hdr_len;
}

/* Takes one more reference. */
void fbuf_ref(struct fbuf *b);

/* Drops one reference; frees the buffer when it was the last. Aborts when the
 * count would go below zero: that is a broken invariant, not bad input. */
void fbuf_unref(struct fbuf *b);

/* Takes n references at once: a fan-out pays one atomic operation, not one
 * per recipient. */
void fbuf_ref_n(struct fbuf *b, unsigned n);

/* Drops n references at once (n may be 0). */
void fbuf_unref_n(struct fbuf *b, unsigned n);

#endif
