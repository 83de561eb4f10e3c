/* test_send_batch.c: rings written through an io_uring come out as writev
 * would write them: whole frames in order, a full socket answered at once
 * (never parked: the rest stays in the ring), more than one submission's
 * worth reported as "more", a broken socket as an error. Skipped, saying
 * so, where the kernel refuses io_uring. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "send_batch.h"
#include "suites.h"
#include "ws/frame.h"

struct outcome {
    int rc, err;
    unsigned pongs;
    int calls;
};

static void done(void *arg, void *owner, int rc, int err, unsigned pongs)
{
    (void)arg;
    struct outcome *o = owner;
    o->rc = rc;
    o->err = err;
    o->pongs = pongs;
    o->calls++;
}

static struct send_batch *batch_or_skip(void)
{
    char why[128];
    struct send_batch *b = send_batch_create(why, sizeof(why));
    if (!b)
        fprintf(stderr, "send_batch: skipped, no io_uring here (%s)\n", why);
    return b;
}

static struct fbuf *text(unsigned i, size_t len)
{
    char *p = malloc(len);
    memset(p, 'a' + (int)(i % 26), len);
    struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, p, len);
    free(p);
    return b;
}

static void pair(int sv[2], int sndbuf)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (sndbuf)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
}

START_TEST(many_rings_in_order)
{
    struct send_batch *b = batch_or_skip();
    if (!b)
        return;
    enum { N = 40 };
    int sv[N][2];
    struct send_ring r[N] = {0};
    struct outcome o[N] = {0};
    for (int i = 0; i < N; i++) {
        pair(sv[i], 0);
        for (unsigned k = 0; k < 3; k++)
            ck_assert(send_ring_push(&r[i], text((unsigned)i + k, 20), 16));
        ck_assert(send_batch_add(b, &r[i], sv[i][0], &o[i]));
    }
    ck_assert(send_batch_run(b, done, NULL));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(o[i].calls, 1);
        ck_assert_int_eq(o[i].rc, 1);
        ck_assert_uint_eq(r[i].n, 0);
        uint8_t buf[3 * 22];
        ck_assert_int_eq(read(sv[i][1], buf, sizeof(buf)), sizeof(buf));
        for (unsigned k = 0; k < 3; k++)
            ck_assert_uint_eq(buf[k * 22 + 2], 'a' + ((unsigned)i + k) % 26);
        send_ring_free(&r[i]);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    send_batch_destroy(b);
}
END_TEST

START_TEST(a_full_socket_is_answered_at_once)
{
    struct send_batch *b = batch_or_skip();
    if (!b)
        return;
    int sv[2];
    pair(sv, 4096);
    struct send_ring r = {0};
    struct outcome o = {0};
    for (unsigned k = 0; k < 40; k++)
        ck_assert(send_ring_push(&r, text(k, 3000), 64));
    ck_assert(send_batch_add(b, &r, sv[0], &o));
    ck_assert(send_batch_run(b, done, NULL));
    ck_assert_int_eq(o.rc, 0); /* the socket took some, the rest waits in the ring */
    ck_assert_uint_gt(r.n, 0);
    uint32_t left = r.n;
    /* Nothing was parked in the kernel: with the reader idle, a second
     * batch finds the socket full (-EAGAIN) and the ring unchanged. */
    ck_assert(send_batch_add(b, &r, sv[0], &o));
    ck_assert(send_batch_run(b, done, NULL));
    ck_assert_int_eq(o.rc, 0);
    ck_assert_uint_eq(r.n, left);
    send_ring_free(&r);
    close(sv[0]);
    close(sv[1]);
    send_batch_destroy(b);
}
END_TEST

START_TEST(more_than_one_submission_and_pongs)
{
    struct send_batch *b = batch_or_skip();
    if (!b)
        return;
    int sv[2];
    pair(sv, 0);
    struct send_ring r = {0};
    struct outcome o = {0};
    ck_assert(send_ring_push(&r, fbuf_new_frame(WS_OP_PONG, "p", 1), 256));
    for (unsigned k = 1; k < SEND_RING_IOV + 10; k++)
        ck_assert(send_ring_push(&r, text(k, 10), 256));
    ck_assert(send_batch_add(b, &r, sv[0], &o));
    ck_assert(send_batch_run(b, done, NULL));
    ck_assert_int_eq(o.rc, 2); /* all that was submitted went out; more is queued */
    ck_assert_uint_eq(o.pongs, 1);
    ck_assert_uint_eq(r.n, 10);
    ck_assert(send_batch_add(b, &r, sv[0], &o));
    ck_assert(send_batch_run(b, done, NULL));
    ck_assert_int_eq(o.rc, 1);
    ck_assert_uint_eq(o.pongs, 0);
    send_ring_free(&r);
    close(sv[0]);
    close(sv[1]);
    send_batch_destroy(b);
}
END_TEST

START_TEST(a_broken_socket_is_an_error)
{
    struct send_batch *b = batch_or_skip();
    if (!b)
        return;
    signal(SIGPIPE, SIG_IGN);
    int sv[2];
    pair(sv, 0);
    close(sv[1]);
    struct send_ring r = {0};
    struct outcome o = {0};
    ck_assert(send_ring_push(&r, text(0, 10), 4));
    ck_assert(send_batch_add(b, &r, sv[0], &o));
    ck_assert(send_batch_run(b, done, NULL));
    ck_assert_int_eq(o.rc, -1);
    ck_assert_int_eq(o.err, EPIPE);
    send_ring_free(&r);
    close(sv[0]);
    send_batch_destroy(b);
}
END_TEST

START_TEST(a_full_batch_refuses_more)
{
    struct send_batch *b = batch_or_skip();
    if (!b)
        return;
    int sv[2];
    pair(sv, 0);
    struct send_ring r = {0};
    struct outcome o = {0};
    ck_assert(send_ring_push(&r, text(0, 10), 4));
    for (int i = 0; i < SEND_BATCH_MAX; i++)
        ck_assert(send_batch_add(b, &r, sv[0], &o)); /* the same ring: only counting */
    ck_assert(!send_batch_add(b, &r, sv[0], &o));
    send_batch_destroy(b); /* never run: nothing was sent */
    uint8_t buf[16];
    ck_assert_int_eq(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
    send_ring_free(&r);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(rings_share_the_batch_iov)
{
    struct send_batch *b = batch_or_skip();
    if (!b)
        return;
    enum { RINGS = SEND_BATCH_IOV / SEND_RING_IOV };
    int sv[2];
    pair(sv, 0);
    static struct send_ring r[RINGS + 1];
    struct outcome o[RINGS + 1];
    memset(o, 0, sizeof(o));
    for (int i = 0; i <= RINGS; i++)
        for (int f = 0; f < SEND_RING_IOV + 1; f++)
            ck_assert(send_ring_push(&r[i], text((unsigned)f, 3), 2 * SEND_RING_IOV));
    /* Each ring brings SEND_RING_IOV frames: the iov is full after RINGS. */
    for (int i = 0; i < RINGS; i++)
        ck_assert(send_batch_add(b, &r[i], sv[0], &o[i]));
    ck_assert(!send_batch_add(b, &r[RINGS], sv[0], &o[RINGS]));
    send_batch_destroy(b); /* never run: nothing was sent */
    for (int i = 0; i <= RINGS; i++)
        send_ring_free(&r[i]);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

SUITE(send_batch,
      many_rings_in_order,
      rings_share_the_batch_iov,
      a_full_socket_is_answered_at_once,
      more_than_one_submission_and_pongs,
      a_broken_socket_is_an_error,
      a_full_batch_refuses_more)
