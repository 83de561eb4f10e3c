/* fbuf.c: refcounted frame buffers shared by every recipient of a broadcast. */
#include "fbuf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/frame.h"

static struct fbuf *frame(uint8_t opcode, const void *payload, size_t len, size_t extra)
{
    size_t h = ws_frame_header_len(len);
    if (len > UINT32_MAX - h - extra)
        return NULL;
    struct fbuf *b = malloc(sizeof(*b) + h + len + extra);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    ws_frame_write_header(b->data, opcode, 1, len);
    if (len)
        memcpy(b->data + h, payload, len);
    b->len = (uint32_t)(h + len);
    b->hdr_len = (uint8_t)h;
    b->route = NULL;
    return b;
}

struct fbuf *fbuf_new_frame(uint8_t opcode, const void *payload, size_t len)
{
    return frame(opcode, payload, len, 0);
}

struct fbuf *fbuf_new_deflated(uint8_t opcode, const void *payload, size_t len)
{
    struct fbuf *b = frame(opcode, payload, len, 0);
    if (b)
        b->data[0] |= 0x40;
    return b;
}

struct fbuf *fbuf_new_broadcast(const void *payload, size_t len, const void *route, size_t size)
{
    const size_t align = _Alignof(max_align_t);
    struct fbuf *b = frame(WS_OP_TEXT, payload, len, size + align - 1);
    if (b) {
        uintptr_t at = ((uintptr_t)(b->data + b->len) + align - 1) & ~(uintptr_t)(align - 1);
        memcpy((void *)at, route, size);
        b->route = (const void *)at;
    }
    return b;
}

void fbuf_ref(struct fbuf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void fbuf_ref_n(struct fbuf *b, unsigned n)
{
    atomic_fetch_add_explicit(&b->refs, n, memory_order_relaxed);
}

void fbuf_unref_n(struct fbuf *b, unsigned n)
{
    if (n == 0)
        return;
    unsigned prev = atomic_fetch_sub_explicit(&b->refs, n, memory_order_acq_rel);
    if (prev == n) {
        free(b);
    } else if (prev < n) {
        fprintf(stderr, "fbuf: reference count below zero\n");
        abort();
    }
}

void fbuf_unref(struct fbuf *b)
{
    /* acq_rel: every drop publishes the dropping thread's use of the buffer,
     * and the last one sees all of them before it frees. (A release drop with
     * an acquire fence would do too, but ThreadSanitizer does not model fences,
     * and on x86 the locked decrement costs the same either way.) */
    unsigned prev = atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel);
    if (prev == 1) {
        free(b);
    } else if (prev == 0) {
        fprintf(stderr, "fbuf: reference count below zero\n");
        abort();
    }
}
