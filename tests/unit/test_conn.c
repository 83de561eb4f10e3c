/* test_conn.c: one connection over a socketpair, as a client sees it: pongs
 * for pings (each one up to PONG_MAX unwritten, then the latest), both ways
 * of closing (answered and then dropped; ours, SHUT_WR, then the client's
 * close or the deadline), nothing delivered or answered once closing, a slow
 * consumer closed with 1008, input held for credit and for its room resumed
 * in order, and a silent client pinged, then dropped with 1001. Time is the
 * set's clock, moved by the test: nothing sleeps. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "stats.h"
#include "suites.h"

/* What the owner (a worker, here the test) saw. */
struct rig {
    struct conn_set s;
    struct config cfg;
    struct worker_counters ctr;
    int peer; /* the client's end */
    struct conn *c;
    unsigned messages, gone;
    char last[64];
    unsigned hold_next; /* hold (for credit) this many of the next messages */
    bool take_retry;
    struct ws_frame_parser client; /* parses what the server wrote */
    uint64_t now;                  /* the set's clock, moved by the tests */
};

static void on_message(void *owner, struct conn *c, const struct ws_event *ev)
{
    struct rig *r = owner;
    r->messages++;
    size_t n = ev->len < sizeof(r->last) - 1 ? ev->len : sizeof(r->last) - 1;
    memcpy(r->last, ev->data, n);
    r->last[n] = 0;
    if (r->hold_next) {
        r->hold_next--;
        struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, ev->data, ev->len);
        conn_hold_credit(&r->s, c, b);
    }
}

static bool on_retry(void *owner, struct conn *c, struct fbuf *parked)
{
    struct rig *r = owner;
    (void)c;
    if (!r->take_retry)
        return false;
    r->messages++;
    size_t n = parked->len - 2 < sizeof(r->last) - 1 ? parked->len - 2 : sizeof(r->last) - 1;
    memcpy(r->last, parked->data + 2, n);
    r->last[n] = 0;
    return true;
}

static void on_gone(void *owner, struct conn *c)
{
    struct rig *r = owner;
    (void)c;
    r->gone++;
    r->c = NULL;
}

static const struct conn_calls CALLS = {on_message, on_retry, on_gone};

static struct rig *rig_new(int sndbuf)
{
    struct rig *r = calloc(1, sizeof(*r));
    r->cfg.ping_interval_ms = 1000;
    r->cfg.pong_timeout_ms = 3000;
    r->cfg.max_message = 65536;
    r->cfg.send_buffer = 8;
    r->cfg.io_uring = false;
    r->cfg.shutdown_timeout_ms = 5000;
    char why[64];
    ck_assert_int_eq(conn_set_init(&r->s, 0, &r->cfg, &r->ctr, &CALLS, r, why, sizeof(why)), 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (sndbuf)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    r->peer = sv[1];
    struct conn_handoff h = {.fd = sv[0], .kind = CONN_CHAT};
    strcpy(h.client_id, "c1");
    r->now = r->s.loop.now;
    r->c = conn_new(&r->s, &h);
    ck_assert_ptr_nonnull(r->c);
    ws_frame_parser_init(&r->client, WS_ROLE_CLIENT, 1 << 20);
    return r;
}

static void rig_free(struct rig *r)
{
    conn_set_free(&r->s);
    ws_frame_parser_free(&r->client);
    close(r->peer);
    free(r);
}

/* One loop pass of a worker, at the test's clock (now). */
static void pass(struct rig *r)
{
    loop_wait(&r->s.loop, 0);
    r->s.loop.now = r->now;
    loop_dispatch(&r->s.loop);
    conn_retry_held(&r->s);
    conn_run_timers(&r->s);
    conn_flush_dirty(&r->s);
    conn_reap(&r->s);
}

/* A masked client frame (the mask is zero: the payload reads as is). */
static size_t client_frame(uint8_t *out, uint8_t op, const void *payload, size_t len)
{
    out[0] = (uint8_t)(0x80 | op);
    out[1] = (uint8_t)(0x80 | len);
    memset(out + 2, 0, 4);
    memcpy(out + 6, payload, len);
    return len + 6;
}

static void send_frames(struct rig *r, uint8_t op, const char *const *payloads, unsigned n)
{
    uint8_t buf[4096];
    size_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += client_frame(buf + len, op, payloads[i], strlen(payloads[i]));
    ck_assert_int_eq(write(r->peer, buf, len), (ssize_t)len);
}

static void send_close(struct rig *r, uint16_t code)
{
    uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code}, f[8];
    size_t n = client_frame(f, WS_OP_CLOSE, body, 2);
    ck_assert_int_eq(write(r->peer, f, n), (ssize_t)n);
}

/* The next frame the server wrote, or WS_EV_NONE when nothing more is
 * there; *eof is set when the server's side is shut. */
static struct ws_event next_frame(struct rig *r, bool *eof)
{
    static uint8_t buf[1];
    struct ws_event ev = {0};
    *eof = false;
    for (;;) {
        ssize_t n = read(r->peer, buf, 1);
        if (n == 0)
            *eof = true;
        if (n <= 0)
            return (struct ws_event){.type = WS_EV_NONE};
        ws_frame_parse(&r->client, buf, 1, &ev);
        if (ev.type != WS_EV_NONE)
            return ev;
    }
}

/* The next frame the server wrote is a close with code. */
static void expect_close(struct rig *r, uint16_t code)
{
    bool eof;
    struct ws_event ev = next_frame(r, &eof);
    ck_assert_int_eq(ev.type, WS_EV_CLOSE);
    ck_assert_uint_eq(ev.close_code, code);
}

START_TEST(every_ping_gets_its_pong_up_to_pong_max_then_the_latest)
{
    struct rig *r = rig_new(0);
    enum { N = PONG_MAX + 4 };
    char names[N][8];
    const char *p[N];
    for (unsigned i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "p%u", i);
        p[i] = names[i];
    }
    send_frames(r, WS_OP_PING, p, N);
    pass(r);
    bool eof;
    for (unsigned i = 0; i < PONG_MAX; i++) {
        struct ws_event ev = next_frame(r, &eof);
        ck_assert_int_eq(ev.type, WS_EV_PONG);
        ck_assert_mem_eq(ev.data, names[i], strlen(names[i]));
    }
    /* Pings PONG_MAX.. N-2 found PONG_MAX unwritten: only the latest waited. */
    struct ws_event ev = next_frame(r, &eof);
    ck_assert_int_eq(ev.type, WS_EV_PONG);
    ck_assert_mem_eq(ev.data, names[N - 1], strlen(names[N - 1]));
    ck_assert_int_eq(next_frame(r, &eof).type, WS_EV_NONE);
    ck_assert_uint_eq(r->c->pongs_queued, 0);
    rig_free(r);
}
END_TEST

START_TEST(the_clients_close_is_answered_then_tcp_closes)
{
    struct rig *r = rig_new(0);
    send_close(r, 1000);
    const char *late[] = {"after close"};
    send_frames(r, WS_OP_TEXT, late, 1);
    pass(r);
    bool eof;
    expect_close(r, 1000);
    next_frame(r, &eof);
    ck_assert(eof); /* RFC 6455 7.1.1: the server closed TCP */
    ck_assert_uint_eq(r->gone, 1);
    ck_assert_uint_eq(r->messages, 0);
    rig_free(r);
}
END_TEST

START_TEST(our_close_shuts_writing_and_waits_for_the_client)
{
    struct rig *r = rig_new(0);
    conn_close(&r->s, r->c, WS_CLOSE_GOING_AWAY, "bye");
    pass(r);
    ck_assert_int_eq(r->c->state, CONN_WRITE_SHUT);
    bool eof;
    expect_close(r, 1001);
    next_frame(r, &eof);
    ck_assert(eof); /* SHUT_WR: nothing follows our close */
    /* A message and a ping sent meanwhile are neither delivered nor answered. */
    const char *m[] = {"late"};
    send_frames(r, WS_OP_TEXT, m, 1);
    send_frames(r, WS_OP_PING, m, 1);
    pass(r);
    ck_assert_uint_eq(r->messages, 0);
    ck_assert_ptr_nonnull(r->c);
    send_close(r, 1001);
    pass(r);
    ck_assert_uint_eq(r->gone, 1);
    rig_free(r);
}
END_TEST

START_TEST(a_client_that_never_answers_our_close_is_dropped_at_the_deadline)
{
    struct rig *r = rig_new(0);
    conn_close(&r->s, r->c, WS_CLOSE_POLICY, "go");
    pass(r);
    r->now += CLOSE_WAIT_MS - 100;
    pass(r);
    ck_assert_uint_eq(r->gone, 0);
    r->now += 100 + r->s.wheel.tick_ms;
    pass(r);
    ck_assert_uint_eq(r->gone, 1);
    rig_free(r);
}
END_TEST

START_TEST(a_slow_consumer_is_closed_with_1008)
{
    struct rig *r = rig_new(4096);
    char big[3000];
    memset(big, 'x', sizeof(big));
    struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, big, sizeof(big));
    unsigned kept = 0;
    for (unsigned i = 0; i < 64 && r->c->state == CONN_OPEN; i++)
        kept += conn_send(&r->s, r->c, b, false);
    fbuf_unref(b);
    ck_assert_int_ne(r->c->state, CONN_OPEN);
    ck_assert_uint_eq(atomic_load(&r->ctr.slow_consumers_closed), 1);
    ck_assert_uint_lt(kept, 64);
    /* The client reads what was written, then finds the 1008. */
    struct ws_event ev;
    bool eof;
    unsigned texts = 0;
    for (unsigned spins = 0; spins < 10000; spins++) {
        pass(r);
        ev = next_frame(r, &eof);
        if (ev.type == WS_EV_MESSAGE)
            texts++;
        if (ev.type == WS_EV_CLOSE)
            break;
    }
    ck_assert_int_eq(ev.type, WS_EV_CLOSE);
    ck_assert_uint_eq(ev.close_code, 1008);
    ck_assert_uint_le(texts, kept);
    rig_free(r);
}
END_TEST

START_TEST(input_held_for_credit_resumes_in_order)
{
    struct rig *r = rig_new(0);
    r->hold_next = 1;
    const char *m[] = {"one", "two", "three"};
    send_frames(r, WS_OP_TEXT, m, 3);
    pass(r); /* "one" is held, with the bytes of "two" and "three" */
    ck_assert_uint_eq(r->messages, 1);
    ck_assert_int_eq(r->c->hold, CONN_HOLD_CREDIT);
    ck_assert_uint_eq(atomic_load(&r->ctr.paused_now), 1);
    const char *more[] = {"four"};
    send_frames(r, WS_OP_TEXT, more, 1);
    pass(r); /* no credit: nothing read */
    ck_assert_uint_eq(r->messages, 1);
    r->take_retry = true;
    pass(r); /* "one" taken, then the held bytes; "four" in the next read */
    ck_assert_int_eq(r->c->hold, CONN_HOLD_NONE);
    ck_assert_uint_eq(r->messages, 4);
    ck_assert_str_eq(r->last, "three");
    pass(r);
    ck_assert_uint_eq(r->messages, 5);
    ck_assert_str_eq(r->last, "four");
    ck_assert_uint_eq(atomic_load(&r->ctr.paused_now), 0);
    rig_free(r);
}
END_TEST

START_TEST(a_connection_freed_while_held_counts_its_message_dropped)
{
    struct rig *r = rig_new(0);
    r->hold_next = 1;
    const char *m[] = {"one"};
    send_frames(r, WS_OP_TEXT, m, 1);
    pass(r);
    ck_assert_int_eq(r->c->hold, CONN_HOLD_CREDIT);
    close(r->peer);
    r->peer = -1;
    pass(r); /* EPOLLHUP while not reading: gone */
    ck_assert_uint_eq(r->gone, 1);
    ck_assert_uint_eq(atomic_load(&r->ctr.dropped), 1);
    ck_assert_uint_eq(atomic_load(&r->ctr.paused_now), 0);
    rig_free(r);
}
END_TEST

START_TEST(input_held_for_the_room_is_read_after_release)
{
    struct rig *r = rig_new(0);
    uint8_t extra[32];
    size_t n = client_frame(extra, WS_OP_TEXT, "early", 5);
    ck_assert_int_eq(conn_hold_room(&r->s, r->c, extra, n, 7), 0);
    ck_assert(conn_awaits(r->c, 7));
    ck_assert(!conn_awaits(r->c, 6));
    const char *m[] = {"later"};
    send_frames(r, WS_OP_TEXT, m, 1);
    pass(r);
    ck_assert_uint_eq(r->messages, 0); /* not read while held */
    size_t len;
    uint8_t *rest = conn_unhold(&r->s, r->c, &len);
    ck_assert_uint_eq(len, n);
    conn_feed(&r->s, r->c, rest, len);
    free(rest);
    ck_assert_str_eq(r->last, "early");
    pass(r);
    ck_assert_uint_eq(r->messages, 2);
    ck_assert_str_eq(r->last, "later");
    rig_free(r);
}
END_TEST

START_TEST(a_silent_client_is_pinged_then_dropped_with_1001)
{
    struct rig *r = rig_new(0);
    r->now += r->cfg.ping_interval_ms + r->s.wheel.tick_ms;
    pass(r);
    bool eof;
    ck_assert_int_eq(next_frame(r, &eof).type, WS_EV_PING);
    r->now += r->cfg.pong_timeout_ms;
    pass(r);
    ck_assert_uint_eq(r->gone, 1);
    expect_close(r, 1001);
    ck_assert_uint_eq(atomic_load(&r->ctr.heartbeat_timeouts), 1);
    rig_free(r);
}
END_TEST

START_TEST(shutdown_closes_open_connections_with_1001)
{
    struct rig *r = rig_new(0);
    conn_drain(&r->s, r->now + 5000);
    pass(r);
    expect_close(r, 1001);
    ck_assert_uint_eq(r->c->close_deadline_ms, r->s.drain_deadline_ms);
    rig_free(r);
}
END_TEST

SUITE(conn,
      every_ping_gets_its_pong_up_to_pong_max_then_the_latest,
      the_clients_close_is_answered_then_tcp_closes,
      our_close_shuts_writing_and_waits_for_the_client,
      a_client_that_never_answers_our_close_is_dropped_at_the_deadline,
      a_slow_consumer_is_closed_with_1008,
      input_held_for_credit_resumes_in_order,
      a_connection_freed_while_held_counts_its_message_dropped,
      input_held_for_the_room_is_read_after_release,
      a_silent_client_is_pinged_then_dropped_with_1001,
      shutdown_closes_open_connections_with_1001)
