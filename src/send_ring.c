/* send_ring.c: a connection's queue of frames (send_ring.h). */
#include "send_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "ring.h"
#include "ws/frame.h"

static bool is_pong(const struct fbuf *b)
{
    return (b->data[0] & 0x0f) == WS_OP_PONG;
}

/* cap slots (>= n), oldest first at slot 0. */
static bool resize(struct send_ring *r, uint32_t cap)
{
    return ring_resize(&r->slot, sizeof(*r->slot), &r->head, r->n, &r->cap, cap);
}

bool send_ring_push(struct send_ring *r, struct fbuf *b, uint32_t max)
{
    if (ring_make_room(&r->slot, sizeof(*r->slot), &r->head, r->n, &r->cap, SEND_RING_MIN, max,
                       RING_REFUSE) != RING_ROOM)
        return false;
    r->slot[(r->head + r->n) % r->cap] = b;
    r->n++;
    return true;
}

static void pop(struct send_ring *r)
{
    fbuf_unref(r->slot[r->head]);
    r->head = (r->head + 1) % r->cap;
    r->n--;
    r->head_off = 0;
}

unsigned send_ring_consume(struct send_ring *r, size_t written)
{
    unsigned pongs = 0;
    while (written > 0) {
        struct fbuf *b = r->slot[r->head];
        size_t rest = b->len - r->head_off;
        if (written < rest) {
            r->head_off += (uint32_t)written;
            break;
        }
        written -= rest;
        pongs += is_pong(b);
        pop(r);
    }
    return pongs;
}

size_t send_ring_iov(const struct send_ring *r, struct iovec *iov, size_t max, size_t *total)
{
    size_t k = 0, bytes = 0;
    for (uint32_t i = 0; i < r->n && k < max; i++, k++) {
        struct fbuf *b = r->slot[(r->head + i) % r->cap];
        size_t skip = i == 0 ? r->head_off : 0;
        iov[k].iov_base = b->data + skip;
        iov[k].iov_len = b->len - skip;
        bytes += iov[k].iov_len;
    }
    *total = bytes;
    return k;
}

int send_ring_write(struct send_ring *r, int fd, unsigned *pongs)
{
    unsigned done = 0;
    int rc = 1;
    while (r->n > 0) {
        struct iovec iov[SEND_RING_IOV];
        size_t total;
        size_t k = send_ring_iov(r, iov, SEND_RING_IOV, &total);
        ssize_t n = writev(fd, iov, (int)k);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
            break;
        }
        done += send_ring_consume(r, (size_t)n);
        if ((size_t)n < total) {
            rc = 0;
            break;
        }
    }
    if (pongs)
        *pongs = done;
    return rc;
}

unsigned send_ring_drop_unwritten(struct send_ring *r)
{
    uint32_t keep = r->n > 0 && r->head_off ? 1 : 0;
    while (r->n > keep) {
        r->n--;
        fbuf_unref(r->slot[(r->head + r->n) % r->cap]);
    }
    return keep && is_pong(r->slot[r->head]) ? 1 : 0;
}

void send_ring_shrink(struct send_ring *r)
{
    if (r->n == 0 && r->cap > SEND_RING_MIN)
        resize(r, SEND_RING_MIN);
}

void send_ring_free(struct send_ring *r)
{
    while (r->n > 0)
        pop(r);
    free(r->slot);
    r->slot = NULL;
    r->cap = r->head = r->head_off = 0;
}
