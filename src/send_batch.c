/* send_batch.c: send rings written through an io_uring (send_batch.h). */
#include "send_batch.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct entry {
    struct send_ring *ring;
    int fd;
    void *owner;
    size_t total; /* bytes submitted */
    struct msghdr msg; /* its msg_iov points into the batch's iov */
};

struct send_batch {
    struct io_uring uring;
    unsigned n;    /* entries added */
    unsigned niov; /* iov used by them */
    struct entry e[SEND_BATCH_MAX];
    struct iovec iov[SEND_BATCH_IOV];
};

struct send_batch *send_batch_create(char *why, size_t n)
{
    struct send_batch *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(why, n, "out of memory");
        return NULL;
    }
    int rc = io_uring_queue_init(SEND_BATCH_MAX, &b->uring, 0);
    if (rc < 0) {
        snprintf(why, n, "io_uring_setup: %s", strerror(-rc));
        free(b);
        return NULL;
    }
    return b;
}

void send_batch_destroy(struct send_batch *b)
{
    if (!b)
        return;
    io_uring_queue_exit(&b->uring);
    free(b);
}

bool send_batch_add(struct send_batch *b, struct send_ring *r, int fd, void *owner)
{
    if (b->n == SEND_BATCH_MAX || b->niov == SEND_BATCH_IOV)
        return false;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->uring);
    if (!sqe)
        return false;
    struct entry *e = &b->e[b->n];
    e->ring = r;
    e->fd = fd;
    e->owner = owner;
    /* Up to SEND_RING_IOV frames, fewer when the batch's iov runs short:
     * the outcome says more is queued, and the worker writes it again
     * in the same pass. */
    size_t room = SEND_BATCH_IOV - b->niov;
    struct iovec *iov = &b->iov[b->niov];
    size_t k = send_ring_iov(r, iov, room < SEND_RING_IOV ? room : SEND_RING_IOV, &e->total);
    b->niov += (unsigned)k;
    e->msg = (struct msghdr){.msg_iov = iov, .msg_iovlen = k};
    io_uring_prep_sendmsg(sqe, fd, &e->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, b->n);
    b->n++;
    return true;
}

/* One answer: res is what sendmsg would have returned (or -errno). */
static void settle(struct entry *e, int res, send_batch_done_fn *done, void *arg)
{
    if (res < 0) {
        bool blocked = res == -EAGAIN || res == -EWOULDBLOCK;
        done(arg, e->owner, blocked ? 0 : -1, -res, 0);
        return;
    }
    unsigned pongs = send_ring_consume(e->ring, (size_t)res);
    int rc = (size_t)res < e->total ? 0 : e->ring->n == 0 ? 1 : 2;
    done(arg, e->owner, rc, 0, pongs);
}

bool send_batch_run(struct send_batch *b, send_batch_done_fn *done, void *arg)
{
    if (b->n == 0)
        return true;
    int res[SEND_BATCH_MAX];
    bool seen[SEND_BATCH_MAX] = {0};
    unsigned got = 0;
    int rc;
    do
        rc = io_uring_submit_and_wait(&b->uring, b->n);
    while (rc == -EINTR);
    /* What was submitted gets an answer; anything not submitted stays in
     * the submission queue of a ring that is given up below. */
    unsigned submitted = rc > 0 ? (unsigned)rc : 0;
    while (rc >= 0 && got < submitted) {
        struct io_uring_cqe *cqe;
        rc = io_uring_wait_cqe(&b->uring, &cqe);
        if (rc == -EINTR) {
            rc = 0;
            continue;
        }
        if (rc < 0)
            break;
        unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
        if (i < b->n && !seen[i]) {
            res[i] = cqe->res;
            seen[i] = true;
            got++;
        }
        io_uring_cqe_seen(&b->uring, cqe);
    }
    /* In the order added, which is the order the worker chose. Should the
     * ring itself fail, what was never submitted (the queue is consumed in
     * order) is written with writev, what was submitted but never answered
     * may or may not have gone out, so its connection cannot go on (an
     * error), and the caller is told to stop using the ring. */
    for (unsigned i = 0; i < b->n; i++) {
        if (seen[i] || i < submitted) {
            settle(&b->e[i], seen[i] ? res[i] : -EIO, done, arg);
            continue;
        }
        unsigned pongs;
        int w = send_ring_write(b->e[i].ring, b->e[i].fd, &pongs);
        done(arg, b->e[i].owner, w, w < 0 ? errno : 0, pongs);
    }
    bool whole = rc >= 0 && submitted == b->n;
    b->n = 0;
    b->niov = 0;
    return whole;
}
