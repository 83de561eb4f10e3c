/* conn.c: one client connection's protocol, close handshake, heartbeat and
 * writes (conn.h says the states and the rules). */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "send_batch.h"
#include "stats.h"
#include "ws/auth.h"
#include "ws/utf8.h"

/* What a connection holds while it is not read: the bytes that came after
 * the point where reading stopped and, held for credit, the message no lane
 * could admit. Owned by the connection's worker. */
struct held_input {
    struct conn *conn;
    uint8_t *rest; /* heap copy of the unparsed bytes, or NULL */
    size_t rest_len;
    union {
        uint64_t gen; /* ROOM: the subscriber connection it waits on */
        struct {
            struct fbuf *parked;   /* one reference */
            struct list_node link; /* in the set's credit_wait list */
        } credit;                  /* CREDIT */
    };
};

static void bump(atomic_uint_fast64_t *c, int64_t by)
{
    atomic_fetch_add_explicit(c, (uint_fast64_t)by, memory_order_relaxed);
}

static bool closing(const struct conn *c)
{
    return c->state == CONN_CLOSE_SENT || c->state == CONN_CLOSE_ANSWERED ||
           c->state == CONN_WRITE_SHUT;
}

/* Every change of state. A dead connection goes on the list conn_reap frees;
 * nothing leaves DEAD. */
static void set_state(struct conn_set *s, struct conn *c, enum conn_state to)
{
    if (c->state == CONN_DEAD)
        return;
    c->state = (uint8_t)to;
    if (to == CONN_DEAD) {
        c->dead_next = s->dead;
        s->dead = c;
    } else if (to == CONN_WRITE_SHUT) {
        /* We started the close: say we are done writing and wait for the
         * client's close, or EOF, until close_deadline_ms. */
        shutdown(c->fd, SHUT_WR);
    }
}

void conn_kill(struct conn_set *s, struct conn *c)
{
    set_state(s, c, CONN_DEAD);
}

/* ---- writing ---- */

/* Registers what we wait for: input unless the connection holds its input,
 * output only after a short write. */
static void watch(struct conn_set *s, struct conn *c, bool out)
{
    uint32_t events = (c->held ? 0 : EPOLLIN) | (out ? EPOLLOUT : 0);
    if (loop_mod(&s->loop, c->fd, &c->io, events) == 0)
        c->out_armed = out;
    else
        conn_kill(s, c);
}

static void set_out(struct conn_set *s, struct conn *c, bool on)
{
    if (c->out_armed != on)
        watch(s, c, on);
}

static void mark_dirty(struct conn_set *s, struct conn *c)
{
    if (c->dirty || c->state == CONN_DEAD)
        return;
    c->dirty = 1;
    c->dirty_next = s->dirty;
    s->dirty = c;
}

/* Writes a close frame straight to the socket, for connections we drop
 * without waiting (silent peers). Only when no frame is half written and no
 * close is queued, so the stream stays well formed. */
static void write_close_now(struct conn *c, uint16_t code, const char *reason)
{
    if (c->ring.head_off != 0 || c->state != CONN_OPEN)
        return;
    uint8_t frame[128];
    size_t n = ws_frame_encode_close(frame, sizeof(frame), code, reason, strlen(reason));
    ssize_t rc = write(c->fd, frame, n);
    (void)rc;
}

static void queue_close(struct conn_set *s, struct conn *c, const uint8_t *body, size_t len,
                        enum conn_state to);

/* A client whose queue is full while its socket takes nothing more is closed
 * so it never holds up anyone else. What was queued for it is dropped, but
 * for a frame already half written (the stream stays well formed), and a
 * 1008 close takes its place: the client finds it as soon as it reads again,
 * within the usual wait for its answer. One already closing is dropped. */
static void close_slow_consumer(struct conn_set *s, struct conn *c)
{
    bump(&s->counters->slow_consumers_closed, 1);
    log_debug("worker %u: closing slow consumer %s", s->id, c->id);
    if (c->state != CONN_OPEN) {
        conn_kill(s, c);
        return;
    }
    c->pongs_queued = (uint8_t)send_ring_drop_unwritten(&c->ring);
    if (c->pong) {
        fbuf_unref(c->pong);
        c->pong = NULL;
    }
    static const char reason[] = "slow consumer: send queue full";
    uint8_t frame[64];
    size_t n = ws_frame_encode_close(frame, sizeof(frame), WS_CLOSE_POLICY, reason,
                                     sizeof(reason) - 1);
    queue_close(s, c, frame + 2, n - 2, CONN_CLOSE_SENT);
}

/* What a write of c's ring came to (rc as send_ring_write's, or 2: all that
 * was submitted went out and more is queued, so it is written again in this
 * pass). Once our close frame is out, the handshake moves on. */
static void written(struct conn_set *s, struct conn *c, int rc, unsigned pongs)
{
    c->pongs_queued = (uint8_t)(c->pongs_queued - pongs);
    if (rc < 0) {
        conn_kill(s, c);
        return;
    }
    if (rc == 2) {
        mark_dirty(s, c);
        return;
    }
    set_out(s, c, rc == 0);
    if (rc != 1)
        return;
    if (c->state == CONN_CLOSE_ANSWERED) /* RFC 6455 7.1.1: the server closes TCP first */
        conn_kill(s, c);
    else if (c->state == CONN_CLOSE_SENT)
        set_state(s, c, CONN_WRITE_SHUT);
}

/* Writes as much of the ring as the socket takes. */
static void flush(struct conn_set *s, struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    unsigned pongs;
    int rc = send_ring_write(&c->ring, c->fd, &pongs);
    written(s, c, rc, pongs);
}

/* Appends b to the ring; the slot owns a reference, taken here unless the
 * caller paid for it in advance (prepaid). The ring grows under a burst up to
 * SEND_BUFFER plus the control slots and shrinks back when the connection is
 * idle (heartbeat). A ring that cannot take b is a slow consumer: the
 * connection is closed and false returned (a prepaid reference is still the
 * caller's). */
static bool ring_store(struct conn_set *s, struct conn *c, struct fbuf *b, bool prepaid)
{
    if (!send_ring_push(&c->ring, b, s->cfg->send_buffer + CONTROL_SLOTS)) {
        close_slow_consumer(s, c);
        return false;
    }
    if (!prepaid)
        fbuf_ref(b); /* the slot's; the caller still holds b */
    mark_dirty(s, c);
    return true;
}

bool conn_send(struct conn_set *s, struct conn *c, struct fbuf *b, bool prepaid)
{
    if (c->state != CONN_OPEN)
        return false;
    if (c->ring.n >= s->cfg->send_buffer) {
        flush(s, c);
        if (c->state != CONN_OPEN)
            return false;
        if (c->ring.n >= s->cfg->send_buffer) {
            close_slow_consumer(s, c);
            return false;
        }
    }
    return ring_store(s, c, b, prepaid);
}

void conn_send_first(struct conn_set *s, struct conn *c, struct fbuf *b)
{
    size_t sent = 0;
    if (c->ring.n == 0) {
        ssize_t n = send(c->fd, b->data, b->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_kill(s, c);
            return;
        }
        sent = n > 0 ? (size_t)n : 0;
    }
    /* Part of it went out: it is the ring's only frame, its rest goes first. */
    if (sent < b->len && conn_send(s, c, b, false) && sent > 0)
        c->ring.head_off = (uint32_t)sent;
}

/* ---- pongs ---- */

/* Puts pong (the caller's reference) in the ring, in order with what is
 * queued. Returns false when the ring could not take it (the connection is
 * then closed as a slow consumer). */
static bool queue_pong(struct conn_set *s, struct conn *c, struct fbuf *pong)
{
    if (!ring_store(s, c, pong, true)) {
        fbuf_unref(pong);
        return false;
    }
    c->pongs_queued++;
    return true;
}

/* Queues the waiting pong once queued ones have been written (marking c
 * dirty, so conn_flush_dirty writes it). */
static void queue_waiting_pong(struct conn_set *s, struct conn *c)
{
    if (!c->pong || c->pongs_queued >= PONG_MAX || c->state != CONN_OPEN)
        return;
    struct fbuf *pong = c->pong;
    c->pong = NULL;
    queue_pong(s, c, pong);
}

static void answer_ping(struct conn_set *s, struct conn *c, const void *payload, size_t len)
{
    struct fbuf *b = fbuf_new_frame(WS_OP_PONG, payload, len);
    if (!b) {
        conn_kill(s, c);
        return;
    }
    if (c->pongs_queued < PONG_MAX && !c->pong) {
        queue_pong(s, c, b);
        return;
    }
    if (c->pong)
        fbuf_unref(c->pong);
    c->pong = b;
    mark_dirty(s, c);
}

/* ---- the close handshake ---- */

/* Queues our close frame (payload: code and reason, or empty) after what is
 * already queued, moving c to `to` (CONN_CLOSE_SENT or CONN_CLOSE_ANSWERED), and gives
 * the client until the deadline to finish. */
static void queue_close(struct conn_set *s, struct conn *c, const uint8_t *body, size_t len,
                        enum conn_state to)
{
    set_state(s, c, to);
    /* Nothing may follow our close frame (RFC 6455 5.5.1): a waiting pong
     * goes before it. */
    if (c->pong) {
        struct fbuf *pong = c->pong;
        c->pong = NULL;
        if (!queue_pong(s, c, pong))
            return;
    }
    struct fbuf *b = fbuf_new_frame(WS_OP_CLOSE, body, len);
    bool kept = b && ring_store(s, c, b, false);
    if (b)
        fbuf_unref(b);
    if (!kept) {
        conn_kill(s, c);
        return;
    }
    c->close_deadline_ms = s->draining ? s->drain_deadline_ms : s->loop.now + CLOSE_WAIT_MS;
    wheel_cancel(&s->wheel, &c->timer);
    wheel_schedule(&s->wheel, &c->timer, c->close_deadline_ms);
}

void conn_close(struct conn_set *s, struct conn *c, uint16_t code, const char *reason)
{
    if (c->state != CONN_OPEN)
        return;
    uint8_t frame[128];
    size_t n = ws_frame_encode_close(frame, sizeof(frame), code, reason, strlen(reason));
    queue_close(s, c, frame + 2, n - 2, CONN_CLOSE_SENT);
}

static void on_close_frame(struct conn_set *s, struct conn *c, const struct ws_event *ev)
{
    if (c->state != CONN_OPEN) {
        /* The client answered our close: the handshake is complete. */
        conn_kill(s, c);
        return;
    }
    /* RFC 6455 5.5.1: answer with a close, echoing the client's code, then
     * close TCP once it is sent (7.1.1). */
    uint8_t body[2] = {(uint8_t)(ev->close_code >> 8), (uint8_t)ev->close_code};
    queue_close(s, c, body, ev->close_code ? 2 : 0, CONN_CLOSE_ANSWERED);
}

void conn_drain(struct conn_set *s, uint64_t deadline_ms)
{
    if (s->draining)
        return;
    s->draining = true;
    s->drain_deadline_ms = deadline_ms;
    for (uint32_t i = 0; i < s->all.n; i++) {
        struct conn *c = container_of(s->all.members[i], struct conn, any_m);
        if (c->state == CONN_OPEN)
            conn_close(s, c, WS_CLOSE_GOING_AWAY, "server shutting down");
        else if (closing(c) && c->close_deadline_ms > deadline_ms)
            c->close_deadline_ms = deadline_ms;
    }
}

void conn_kill_all(struct conn_set *s)
{
    for (uint32_t i = s->all.n; i > 0; i--)
        conn_kill(s, container_of(s->all.members[i - 1], struct conn, any_m));
}

/* ---- the token ---- */

bool conn_token_expired(struct conn_set *s, struct conn *c)
{
    if (!c->expires_ms || clock_now_ms() < c->expires_ms)
        return false;
    if (c->state == CONN_OPEN) {
        bump(&s->counters->tokens_expired, 1);
        conn_close(s, c, WS_CLOSE_POLICY, "token expired");
    }
    return true;
}

/* One rule: exp is wall-clock time (at most WS_AUTH_EXP_MAX, so this cannot
 * overflow); the wheel runs on the monotonic clock. */
void conn_token_deadline(struct conn_set *s, struct conn *c, int64_t exp)
{
    int64_t left = (exp + WS_AUTH_LEEWAY_S) * 1000 - (int64_t)clock_wall_ms();
    c->expires_ms = s->loop.now + (left > 0 ? (uint64_t)left : 0);
    if (c->expires_ms == 0)
        c->expires_ms = 1;
}

/* ---- held input ---- */

/* Keeps a copy of what came after the point where reading stopped. */
static bool keep_rest(struct held_input *h, const uint8_t *buf, size_t n)
{
    if (n == 0)
        return true;
    h->rest = malloc(n);
    if (!h->rest)
        return false;
    memcpy(h->rest, buf, n);
    h->rest_len = n;
    return true;
}

int conn_hold_room(struct conn_set *s, struct conn *c, const uint8_t *extra, size_t len,
                   uint64_t gen)
{
    struct held_input *h = calloc(1, sizeof(*h));
    if (!h || !keep_rest(h, extra, len)) {
        free(h);
        return -ENOMEM;
    }
    h->conn = c;
    h->gen = gen;
    c->held = h;
    c->hold = CONN_HOLD_ROOM;
    watch(s, c, c->out_armed);
    return 0;
}

bool conn_awaits(const struct conn *c, uint64_t gen)
{
    return c->hold == CONN_HOLD_ROOM && c->held->gen <= gen;
}

void conn_hold_credit(struct conn_set *s, struct conn *c, struct fbuf *b)
{
    struct held_input *h = calloc(1, sizeof(*h));
    if (!h) {
        bump(&s->counters->dropped, 1);
        fbuf_unref(b);
        conn_kill(s, c);
        return;
    }
    h->conn = c;
    h->credit.parked = b;
    list_push_tail(&s->credit_wait, &h->credit.link);
    c->held = h;
    c->hold = CONN_HOLD_CREDIT;
    bump(&s->counters->reads_paused, 1);
    bump(&s->counters->paused_now, 1);
    watch(s, c, c->out_armed);
}

/* Frees c's held input of either kind (a parked message is the caller's to
 * have dealt with) and returns the unparsed bytes it held. */
static uint8_t *drop_hold(struct conn_set *s, struct conn *c, size_t *len)
{
    struct held_input *h = c->held;
    if (c->hold == CONN_HOLD_CREDIT) {
        list_unlink(&s->credit_wait, &h->credit.link);
        bump(&s->counters->paused_now, -1);
    }
    uint8_t *rest = h->rest;
    *len = h->rest_len;
    free(h);
    c->held = NULL;
    c->hold = CONN_HOLD_NONE;
    return rest;
}

/* c is read again: the wait was ours, not the client's silence. */
uint8_t *conn_unhold(struct conn_set *s, struct conn *c, size_t *len)
{
    uint8_t *rest = drop_hold(s, c, len);
    c->last_rx_ms = s->loop.now;
    if (c->state != CONN_DEAD)
        watch(s, c, c->out_armed);
    return rest;
}

void conn_retry_held(struct conn_set *s)
{
    size_t tries = 0;
    for (struct list_node *n = s->credit_wait.head; n; n = n->next)
        tries++;
    while (tries-- > 0 && s->credit_wait.head) {
        struct held_input *h = list_entry(s->credit_wait.head, struct held_input, credit.link);
        struct conn *c = h->conn;
        if (c->state == CONN_DEAD || !s->calls->retry(s->owner, c, h->credit.parked)) {
            /* Still waiting: to the back, so every connection gets its turn. */
            list_push_tail(&s->credit_wait, list_pop_head(&s->credit_wait));
            continue;
        }
        fbuf_unref(h->credit.parked);
        size_t len;
        uint8_t *rest = conn_unhold(s, c, &len);
        if (rest && c->state != CONN_DEAD)
            conn_feed(s, c, rest, len);
        free(rest);
    }
}

/* ---- reading ---- */

static const char *error_reason(enum ws_err err)
{
    return err == WS_ERR_TOO_BIG   ? "message too big"
           : err == WS_ERR_UTF8    ? "invalid UTF-8"
           : err == WS_ERR_DEFLATE ? "invalid compressed data"
                                   : "protocol error";
}

/* Inflates a compressed message into *ev (RFC 7692 7.2.2). Returns 0 or
 * the ws_err it closes with: 1009 as soon as it passes MAX_MESSAGE_SIZE,
 * 1007 for data that does not inflate or text that is not UTF-8. */
static int inflate_message(struct conn_set *s, struct ws_event *ev)
{
    int rc = compressor_inflate(&s->z, ev->data, ev->len, s->cfg->max_message, &ev->data,
                                &ev->len);
    if (rc == 0 && ev->opcode == WS_OP_TEXT && ws_utf8_check(ev->data, ev->len) < 0)
        rc = WS_ERR_UTF8;
    ev->deflated = false;
    if (rc == WS_ERR_TOO_BIG)
        bump(&s->counters->inflate_too_big, 1);
    else if (rc == WS_ERR_UTF8 || rc == WS_ERR_DEFLATE)
        bump(&s->counters->inflate_bad, 1);
    return rc;
}

static void on_data(struct conn_set *s, struct conn *c, const struct ws_event *ev)
{
    /* Nothing sent after the token's end is delivered, even what arrives
     * before the heartbeat's next look. */
    if (c->state != CONN_OPEN || conn_token_expired(s, c))
        return;
    struct ws_event plain = *ev;
    int rc = ev->deflated ? inflate_message(s, &plain) : 0;
    if (rc < 0) {
        bump(&s->counters->protocol_errors, 1);
        conn_close(s, c, ws_close_code_for(rc), error_reason(rc));
        return;
    }
    bump(&s->counters->received, 1);
    s->calls->message(s->owner, c, &plain);
}

void conn_feed(struct conn_set *s, struct conn *c, uint8_t *buf, size_t n)
{
    size_t off = 0;
    while (off < n && c->state != CONN_DEAD) {
        struct ws_event ev;
        off += ws_frame_parse(&c->parser, buf + off, n - off, &ev);
        switch (ev.type) {
        case WS_EV_NONE: return;
        case WS_EV_MESSAGE:
            on_data(s, c, &ev);
            if (c->held) {
                /* Keep what came after the held message for later; the
                 * buffer is shared (or about to be freed). */
                if (!keep_rest(c->held, buf + off, n - off))
                    conn_kill(s, c);
                return;
            }
            break;
        case WS_EV_PING:
            if (c->state == CONN_OPEN)
                answer_ping(s, c, ev.data, ev.len);
            break;
        case WS_EV_PONG: break;
        case WS_EV_CLOSE: on_close_frame(s, c, &ev); return;
        case WS_EV_ERROR:
            if (c->state == CONN_OPEN) {
                bump(&s->counters->protocol_errors, 1);
                conn_close(s, c, ws_close_code_for(ev.err), error_reason(ev.err));
            }
            return;
        }
    }
}

static void on_readable(struct conn_set *s, struct conn *c)
{
    ssize_t n = read(c->fd, s->rbuf, sizeof(s->rbuf));
    if (n == 0) {
        conn_kill(s, c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_kill(s, c);
        return;
    }
    c->last_rx_ms = s->loop.now;
    conn_feed(s, c, s->rbuf, (size_t)n);
}

/* What epoll said about c's socket (its loop handler). */
static void on_io(struct loop *l, struct loop_handler *h, uint32_t events)
{
    struct conn_set *s = container_of(l, struct conn_set, loop);
    struct conn *c = container_of(h, struct conn, io);
    if (c->state == CONN_DEAD)
        return;
    if (c->held && (events & (EPOLLHUP | EPOLLERR)))
        conn_kill(s, c); /* gone while we were not reading it */
    else if (!c->held && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        on_readable(s, c);
    if (c->state != CONN_DEAD && (events & EPOLLOUT)) {
        flush(s, c);
        queue_waiting_pong(s, c);
    }
}

/* ---- the heartbeat ---- */

/* Puts c in the wheel for its next look: the next ping (the last one, or the
 * last byte received, being at since), the pong timeout, or its token's
 * expiry, whichever comes first. */
static void schedule_check(struct conn_set *s, struct conn *c, uint64_t since)
{
    uint64_t at = since + s->cfg->ping_interval_ms;
    uint64_t timeout = c->last_rx_ms + s->cfg->pong_timeout_ms;
    if (timeout < at)
        at = timeout;
    if (c->expires_ms && c->expires_ms < at)
        at = c->expires_ms;
    wheel_schedule(&s->wheel, &c->timer, at);
}

static void heartbeat(struct conn_set *s, struct conn *c)
{
    uint64_t now = s->loop.now;
    if (closing(c)) {
        if (now >= c->close_deadline_ms)
            conn_kill(s, c);
        else
            wheel_schedule(&s->wheel, &c->timer, c->close_deadline_ms);
        return;
    }
    if (c->held) {
        /* Not read by our choice: its silence is not the client's. */
        c->last_rx_ms = now;
    }
    /* The token that let it in is no longer valid: the client reconnects
     * with a fresh one. */
    if (conn_token_expired(s, c))
        return;
    if (now - c->last_rx_ms >= s->cfg->pong_timeout_ms) {
        bump(&s->counters->heartbeat_timeouts, 1);
        write_close_now(c, WS_CLOSE_GOING_AWAY, "no pong within PONG_TIMEOUT");
        conn_kill(s, c);
        return;
    }
    /* A silent connection is pinged every PING_INTERVAL until PONG_TIMEOUT
     * closes it; anything it sends restarts the count. */
    uint64_t since = c->last_ping_ms > c->last_rx_ms ? c->last_ping_ms : c->last_rx_ms;
    if (now - since >= s->cfg->ping_interval_ms) {
        if (!ring_store(s, c, s->ping, false))
            return;
        c->last_ping_ms = since = now;
    }
    /* An idle connection gives back what a burst made it take. */
    send_ring_shrink(&c->ring);
    ws_frame_parser_shrink(&c->parser);
    schedule_check(s, c, since);
}

/* heartbeat() marks, never frees, and schedules again only into later ticks
 * (wheel.h). */
void conn_run_timers(struct conn_set *s)
{
    struct wheel_timer *t;
    while ((t = wheel_expire(&s->wheel, s->loop.now))) {
        struct conn *c = list_entry(t, struct conn, timer);
        if (c->state != CONN_DEAD)
            heartbeat(s, c);
    }
}

/* ---- the pass's writes ---- */

/* A batched write's outcome (send_batch.h). */
static void batch_written(void *arg, void *owner, int rc, int err, unsigned pongs)
{
    struct conn_set *s = arg;
    struct conn *c = owner;
    (void)err;
    written(s, c, rc, pongs);
    queue_waiting_pong(s, c); /* marks it dirty again: conn_flush_dirty writes it */
}

static void run_batch(struct conn_set *s)
{
    if (!send_batch_run(s->batch, batch_written, s)) {
        log_warn("worker %u: io_uring failed; writing with writev from now on", s->id);
        send_batch_destroy(s->batch);
        s->batch = NULL;
    }
}

/* Adds c's ring to the batch, running the batch first when it is full.
 * False when the set writes with writev. */
static bool batch_add(struct conn_set *s, struct conn *c)
{
    if (!s->batch)
        return false;
    if (send_batch_add(s->batch, &c->ring, c->fd, c))
        return true;
    run_batch(s);
    return s->batch && send_batch_add(s->batch, &c->ring, c->fd, c);
}

/* Through the io_uring, all of them in one system call per SEND_BATCH_MAX,
 * or one writev each. */
void conn_flush_dirty(struct conn_set *s)
{
    while (s->dirty) {
        struct conn *list = s->dirty;
        s->dirty = NULL;
        while (list) {
            struct conn *c = list;
            list = c->dirty_next;
            c->dirty = 0;
            if (c->state != CONN_DEAD && c->ring.n > 0 && batch_add(s, c))
                continue; /* batch_written has its outcome */
            if (c->state != CONN_DEAD)
                flush(s, c);
            queue_waiting_pong(s, c); /* marks it dirty again: this loop writes it */
        }
        if (s->batch)
            run_batch(s);
    }
}

/* ---- birth and death ---- */

struct conn *conn_new(struct conn_set *s, const struct conn_handoff *h)
{
    size_t idlen = strlen(h->client_id);
    struct conn *c = calloc(1, sizeof(*c) + idlen + 1);
    if (c)
        c->io.fn = on_io;
    if (!c || loop_add(&s->loop, h->fd, &c->io, EPOLLIN) < 0 ||
        room_add(&s->all, &c->any_m) < 0) {
        if (c)
            loop_del(&s->loop, h->fd);
        close(h->fd);
        free(c);
        bump(&s->counters->closed, 1);
        return NULL;
    }
    memcpy(c->id, h->client_id, idlen + 1);
    c->addr = h->client_addr;
    c->counted = h->ip_counted;
    c->fd = h->fd;
    c->kind = (uint8_t)h->kind;
    c->read_only = h->read_only;
    c->last_rx_ms = s->loop.now;
    ws_frame_parser_init(&c->parser, WS_ROLE_SERVER, s->cfg->max_message);
    if (h->pmd.on) {
        c->parser.deflate = 1;
        c->pmd = (uint8_t)(CONN_PMD_ON | (ws_pmd_takes_stream(&h->pmd) ? CONN_PMD_STREAM : 0) |
                           (ws_pmd_takes_alone(&h->pmd) ? CONN_PMD_ALONE : 0));
        bump(&s->counters->deflate_connections, 1);
    }
    if (h->token_exp)
        conn_token_deadline(s, c, h->token_exp);
    schedule_check(s, c, s->loop.now);
    return c;
}

static void free_conn(struct conn_set *s, struct conn *c)
{
    loop_del(&s->loop, c->fd);
    close(c->fd);
    wheel_cancel(&s->wheel, &c->timer);
    s->calls->gone(s->owner, c); /* reads c->hold: a room member or one waiting */
    if (c->hold == CONN_HOLD_CREDIT) {
        /* A message the client sent and we could not pass on before it went. */
        bump(&s->counters->dropped, 1);
        fbuf_unref(c->held->credit.parked);
    }
    if (c->held) {
        size_t len;
        free(drop_hold(s, c, &len));
    }
    if (c->pong)
        fbuf_unref(c->pong);
    room_remove(&s->all, &c->any_m);
    send_ring_free(&c->ring);
    ws_frame_parser_free(&c->parser);
    if (c->pmd)
        bump(&s->counters->deflate_connections, -1);
    free(c);
    bump(&s->counters->connections, -1);
    bump(&s->counters->closed, 1);
}

void conn_reap(struct conn_set *s)
{
    while (s->dead) {
        struct conn *c = s->dead;
        s->dead = c->dead_next;
        free_conn(s, c);
    }
}

/* The wheel's tick: an eighth of the shortest heartbeat span, 5-250 ms (a
 * token's expiry closes its connection within a second of exp). */
static uint64_t tick_for(const struct config *cfg)
{
    uint32_t shortest = cfg->ping_interval_ms;
    uint32_t grace = cfg->pong_timeout_ms - cfg->ping_interval_ms;
    if (grace < shortest)
        shortest = grace;
    uint64_t tick_ms = shortest / 8;
    if (tick_ms < 5)
        tick_ms = 5;
    if (tick_ms > 250)
        tick_ms = 250;
    return tick_ms;
}

int conn_set_init(struct conn_set *s, unsigned id, const struct config *cfg,
                  struct worker_counters *counters, const struct conn_calls *calls, void *owner,
                  char *why, size_t n)
{
    s->id = id;
    s->cfg = cfg;
    s->counters = counters;
    s->calls = calls;
    s->owner = owner;
    compressor_init(&s->z, cfg->compression_streams, counters);
    int rc = loop_init(&s->loop);
    wheel_init(&s->wheel, tick_for(cfg), s->loop.now);
    s->ping = fbuf_new_frame(WS_OP_PING, NULL, 0);
    if (!s->ping || rc < 0) {
        conn_set_free(s);
        return -1;
    }
    snprintf(why, n, "IO_URING=off");
    if (cfg->io_uring)
        s->batch = send_batch_create(why, n);
    return 0;
}

void conn_set_free(struct conn_set *s)
{
    conn_kill_all(s);
    conn_reap(s); /* their rooms forget their streams first (calls->gone) */
    compressor_free(&s->z);
    free(s->all.members);
    s->all.members = NULL;
    send_batch_destroy(s->batch);
    s->batch = NULL;
    if (s->ping)
        fbuf_unref(s->ping);
    s->ping = NULL;
    loop_free(&s->loop);
}
