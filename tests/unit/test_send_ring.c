/* test_send_ring.c: a connection's queue of frames: order across the wrap,
 * growth up to its bound and no further, partial writes resumed at the right
 * byte, pongs counted as they go out, unwritten frames dropped without
 * cutting a frame in half, and every reference given back. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "send_ring.h"
#include "suites.h"
#include "ws/frame.h"

static struct fbuf *text(unsigned i, size_t len)
{
    char *p = malloc(len);
    memset(p, 'a' + (int)(i % 26), len);
    struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, p, len);
    free(p);
    ck_assert_ptr_nonnull(b);
    return b;
}

static unsigned refs(struct fbuf *b)
{
    return atomic_load(&b->refs);
}

/* A connected pair; the writing end non-blocking with a small buffer. */
static void pair(int sv[2], int sndbuf)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (sndbuf)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
}

/* Reads exactly n bytes. */
static void read_all(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        ck_assert_int_gt(r, 0);
        got += (size_t)r;
    }
}

START_TEST(grows_to_its_bound_and_no_further)
{
    struct send_ring r = {0};
    struct fbuf *b[10];
    for (unsigned i = 0; i < 10; i++) {
        b[i] = text(i, 10);
        ck_assert(send_ring_push(&r, b[i], 10));
    }
    ck_assert_uint_eq(r.cap, 10); /* 4, 8, then the bound, not 16 */
    struct fbuf *extra = text(10, 10);
    ck_assert(!send_ring_push(&r, extra, 10));
    ck_assert_uint_eq(refs(extra), 1); /* still the caller's */
    fbuf_unref(extra);
    fbuf_ref(b[3]);
    send_ring_free(&r);
    ck_assert_uint_eq(refs(b[3]), 1); /* the ring gave its reference back */
    fbuf_unref(b[3]);
    ck_assert_ptr_null(r.slot);
}
END_TEST

START_TEST(order_across_the_wrap)
{
    int sv[2];
    pair(sv, 0);
    struct send_ring r = {0};
    unsigned next = 0, expect = 0;
    /* Three frames at a time into four slots: the head moves three slots a
     * round, so frames are stored across the wrap in most rounds. */
    for (int round = 0; round < 50; round++) {
        while (r.n < 3)
            ck_assert(send_ring_push(&r, text(next++, 5), 4));
        ck_assert_uint_eq(r.cap, 4);
        ck_assert_int_eq(send_ring_write(&r, sv[0], NULL), 1);
        for (; expect < next; expect++) {
            uint8_t frame[7];
            read_all(sv[1], frame, sizeof(frame));
            ck_assert_uint_eq(frame[2], 'a' + expect % 26);
        }
    }
    ck_assert_uint_eq(r.n, 0);
    send_ring_free(&r);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(partial_writes_resume_at_the_right_byte)
{
    int sv[2];
    pair(sv, 4096);
    struct send_ring r = {0};
    enum { N = 40, LEN = 3000 };
    for (unsigned i = 0; i < N; i++)
        ck_assert(send_ring_push(&r, text(i, LEN), 64));
    ck_assert_int_eq(send_ring_write(&r, sv[0], NULL), 0); /* the socket is full */
    ck_assert_uint_gt(r.n, 0);
    /* Drain the reader and write again until everything is out; the bytes
     * must be the frames in order, whole. */
    size_t frame_len = LEN + 4, total = N * frame_len, got = 0;
    uint8_t *seen = malloc(total);
    bool partial = false;
    for (;;) {
        partial |= r.head_off != 0;
        ssize_t n = read(sv[1], seen + got, total - got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
        int rc = send_ring_write(&r, sv[0], NULL);
        ck_assert_int_ge(rc, 0);
        if (rc == 1 && got == total)
            break;
    }
    ck_assert(partial); /* a frame was cut by the socket at least once */
    for (unsigned i = 0; i < N; i++) {
        const uint8_t *f = seen + i * frame_len;
        ck_assert_uint_eq(f[0], 0x81);
        ck_assert_uint_eq(f[4], 'a' + i % 26);
        ck_assert_uint_eq(f[frame_len - 1], 'a' + i % 26);
    }
    free(seen);
    send_ring_free(&r);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(pongs_counted_and_half_written_frame_kept)
{
    int sv[2];
    pair(sv, 4096);
    struct send_ring r = {0};
    ck_assert(send_ring_push(&r, fbuf_new_frame(WS_OP_PONG, "p", 1), 64));
    ck_assert(send_ring_push(&r, text(0, 20000), 64)); /* larger than the socket takes */
    ck_assert(send_ring_push(&r, fbuf_new_frame(WS_OP_PONG, "q", 1), 64));
    ck_assert(send_ring_push(&r, text(1, 10), 64));
    unsigned pongs = 9;
    ck_assert_int_eq(send_ring_write(&r, sv[0], &pongs), 0);
    ck_assert_uint_eq(pongs, 1); /* the first went out, the second waits */
    ck_assert_uint_gt(r.head_off, 0);
    ck_assert_uint_eq(send_ring_drop_unwritten(&r), 0); /* the kept one is text */
    ck_assert_uint_eq(r.n, 1);
    /* The half-written frame is finished, nothing after it. */
    uint8_t buf[32768];
    size_t got = 0;
    int rc;
    do {
        ssize_t n = read(sv[1], buf + got, sizeof(buf) - got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
        rc = send_ring_write(&r, sv[0], NULL);
    } while (rc != 1 || got < 3 + 20004);
    ck_assert_uint_eq(got, 3 + 20004);
    send_ring_shrink(&r);
    ck_assert_uint_eq(r.cap, SEND_RING_MIN);
    send_ring_free(&r);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(a_broken_socket_is_an_error)
{
    int sv[2];
    pair(sv, 0);
    close(sv[1]);
    struct send_ring r = {0};
    ck_assert(send_ring_push(&r, text(0, 10), 4));
    signal(SIGPIPE, SIG_IGN);
    ck_assert_int_eq(send_ring_write(&r, sv[0], NULL), -1);
    ck_assert_int_eq(errno, EPIPE);
    send_ring_free(&r);
    close(sv[0]);
}
END_TEST

SUITE(send_ring,
      grows_to_its_bound_and_no_further,
      order_across_the_wrap,
      partial_writes_resume_at_the_right_byte,
      pongs_counted_and_half_written_frame_kept,
      a_broken_socket_is_an_error)
