/* worker.c: the epoll loop that owns connections.
 *
 * DESIGN: one pass of the loop
 *   1. waits on epoll (the inbox eventfd and every socket, level-triggered);
 *   2. reads at most one buffer per readable socket into the worker's single
 *      read buffer (connections hold no read buffer of their own) and runs
 *      the frame parser on it; takes the inbox batch and appends each frame
 *      to the send ring of every member of its room, giving its credit back
 *      (fanout.h); retries the connections it stopped reading;
 *   3. fires due heartbeat timers from a timer wheel;
 *   4. writes every connection that got something, one writev gathering its
 *      whole ring, arming EPOLLOUT only after a short write;
 *   5. frees the connections that died during the pass. Until then a dead
 *      connection is only marked, so events for it later in the same epoll
 *      batch are recognised and skipped (nginx's stale-event rule).
 * Nothing here blocks, and nothing takes a lock except the inbox swap and
 * the room registry on join and leave.
 *
 * Backpressure: a client message that some lane cannot admit is parked on
 * its connection, with the bytes read after it, and the connection is no
 * longer read (TCP then slows the sender) until a kick says credit came back
 * and the message is admitted. Nothing a client sent is dropped for this,
 * and the worker's other connections are served as before. */
#include "worker.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_seam.h"
#include "clock.h"
#include "config.h"
#include "fanout.h"
#include "fbuf.h"
#include "inbox.h"
#include "ipaddr.h"
#include "json.h"
#include "list.h"
#include "log.h"
#include "room/envelope.h"
#include "room/registry.h"
#include "room/room.h"
#include "send_batch.h"
#include "send_ring.h"
#include "stats.h"
#include "thread.h"
#include "wheel.h"
#include "ws/auth.h"
#include "ws/frame.h"

#define READ_BUF_SIZE 65536
#define MAX_EVENTS 256
/* Pongs a connection may have queued: each ping gets its own pong up to
 * this many unwritten ones (strict peers, Autobahn 2.10, expect one per
 * ping); past it, only the latest is answered (RFC 6455 5.5.3), so a
 * pipelined-ping flood costs one pending frame more, never a growing queue. */
#define PONG_MAX 16
/* Ring slots beyond SEND_BUFFER, kept for control frames (pongs, our ping,
 * close). */
#define CONTROL_SLOTS (PONG_MAX + 4)
/* How long we wait for the client's close after sending ours. */
#define CLOSE_WAIT_MS 2000
/* The envelope buffer is kept between messages up to this size; a larger
 * one (a big message) is given back at once. */
#define OUT_KEEP (256u << 10)
/* How often a worker hands freed memory back to the kernel (malloc_trim):
 * a flood's backlog is freed when it is delivered, but the allocator would
 * keep the pages, and RSS would show the peak of the last burst forever. */
#define TRIM_EVERY_MS 10000
/* After a burst of this many new connections the trim comes within
 * TRIM_SOON_MS: their handoffs, freed here, were the acceptor's. */
#define TRIM_AFTER_BURST 64
#define TRIM_SOON_MS 200

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

enum conn_state {
    CONN_OPEN,
    CONN_CLOSING, /* our close frame is queued or sent */
    CONN_DEAD,    /* freed at the end of this loop pass */
};

/* One client connection; owned by its worker alone. */
struct conn {
    int fd;
    uint8_t kind;            /* enum conn_kind */
    uint8_t state;           /* enum conn_state */
    uint8_t out_armed;       /* EPOLLOUT is registered */
    uint8_t dirty;           /* on the worker's list of connections to write */
    uint8_t close_queued;    /* our close frame is in the ring */
    uint8_t close_then_drop; /* we answered the client's close: drop once sent */
    uint8_t read_only;       /* its token allows receiving only */
    uint8_t wr_shut;         /* shutdown(SHUT_WR) done */
    uint8_t in_chat;         /* chat_m is in the worker's chat list */
    uint8_t in_all;          /* any_m is in the worker's list of all connections */
    uint8_t awaiting;        /* waits for its room's subscription: in the room's waiting
                              * list, not read, no welcome yet (registry.h) */
    uint8_t pongs_queued;    /* pongs in the ring, not yet fully written (<= PONG_MAX) */
    struct ws_frame_parser parser;
    struct room *room;         /* NULL on a global connection */
    struct room_member room_m; /* in room */
    struct room_member chat_m; /* in the worker's list of chat connections */
    struct room_member any_m;  /* in the worker's list of all connections */
    uint8_t counted;           /* in the server's per-address counts: released on free */

    /* Frames waiting to be written: SEND_RING_MIN slots once used, up to
     * SEND_BUFFER + CONTROL_SLOTS under a burst (send_ring.h). */
    struct send_ring ring;

    uint64_t last_rx_ms;
    union {
        uint64_t last_ping_ms;      /* CONN_OPEN: when our last ping went out (0: none) */
        uint64_t close_deadline_ms; /* CONN_CLOSING: when we stop waiting for the client */
    };
    uint64_t expires_ms; /* when its token expires (monotonic); 0: never */
    struct wheel_timer timer; /* its next heartbeat look (or close deadline) */
    struct conn *dirty_next;
    struct conn *dead_next;
    struct fbuf *pong;      /* past PONG_MAX: the answer to the latest ping, waiting for
                             * a queued pong to be written */
    struct held_input *held; /* set while the connection is not read, for one of two
                              * reasons: awaiting (its room's subscription) or on
                              * the worker's credit_wait list (a message no inbox
                              * could admit yet) */
    /* Who it is, in the same allocation: an idle connection is one block. */
    struct ipaddr addr; /* the client address (ipaddr.h) */
    char id[];          /* the client id, NUL-terminated */
};

/* What a connection holds while it is not read: the bytes that came after
 * the point where reading stopped and, while waiting for credit, the message
 * no inbox could admit. Owned by the connection's worker. Waiting for credit,
 * it is on that worker's credit_wait list, oldest first; awaiting its room's
 * subscription, on no list (the room's waiting list holds the connection). */
struct held_input {
    struct conn *conn;
    struct fbuf *parked; /* one reference */
    uint8_t *rest;       /* heap copy of the unparsed bytes, or NULL */
    size_t rest_len;
    uint64_t gen; /* while awaiting: the subscriber connection it waits on */
    struct list_node link; /* waiting for credit: in the worker's credit_wait list */
};

struct worker {
    unsigned id;
    struct thread thread;
    struct worker_env env;   /* the pod's parts it uses (worker.h) */
    const struct config *cfg;
    struct worker_counters *counters; /* written by this worker only */
    struct fanout *fan;               /* the lanes; this worker consumes lane id */
    int epfd;

    struct room_index rooms;
    struct room chat; /* every chat connection, for global messages */
    struct room all;  /* every connection */
    size_t nconns;

    struct wheel wheel;
    struct send_batch *batch; /* this worker's io_uring for sends; NULL: writev (IO_URING) */
    struct conn *dirty;
    struct conn *dead;
    struct list credit_wait; /* of held_input: connections not read until a message of
                              * theirs is admitted, oldest first */
    struct fbuf *ping; /* shared empty ping frame */
    struct json_out out;
    uint64_t rng;
    bool draining;
    uint64_t drain_deadline_ms;
    uint64_t next_trim_ms;
    unsigned adopted_since_trim;
    uint64_t pass_work; /* costs of the frames taken from the inbox since the last pass began */
    uint64_t now;
    uint8_t rbuf[READ_BUF_SIZE];
};

/* An idle connection costs this struct with its id (one allocation: with
 * the 16-character ids the server makes, a 304-byte block) and three list
 * slots; its send ring is allocated when something must wait in it. Keep it
 * that way: bench/README.md measures it (idle). */
_Static_assert(sizeof(struct conn) <= 272, "struct conn grew: idle connections must stay small");

static uint64_t next_random(struct worker *w)
{
    /* xorshift64*: ids and UUIDs need to be unique, not secret. */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 2685821657736338717ull;
}

static void bump(atomic_uint_fast64_t *c, int64_t by)
{
    atomic_fetch_add_explicit(c, (uint_fast64_t)by, memory_order_relaxed);
}

/* ---- connection death and writing ---- */

static void kill_conn(struct worker *w, struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    c->state = CONN_DEAD;
    c->dead_next = w->dead;
    w->dead = c;
}

/* Writes a close frame straight to the socket, for connections we drop
 * without waiting (slow consumers, silent peers). Only when no frame is
 * half written, so the stream stays well formed. */
static void write_close_now(struct conn *c, uint16_t code, const char *reason)
{
    if (c->ring.head_off != 0 || c->close_queued)
        return;
    uint8_t frame[128];
    size_t n = ws_frame_encode_close(frame, sizeof(frame), code, reason, strlen(reason));
    ssize_t rc = write(c->fd, frame, n);
    (void)rc;
}

/* Registers what we wait for: input unless the connection holds its input,
 * output only after a short write. */
static void watch(struct worker *w, struct conn *c, bool out)
{
    struct epoll_event ev = {.events = (c->held ? 0 : EPOLLIN) | (out ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->out_armed = out;
    else
        kill_conn(w, c);
}

static void set_out(struct worker *w, struct conn *c, bool on)
{
    if (c->out_armed != on)
        watch(w, c, on);
}

static void queue_close(struct worker *w, struct conn *c, const uint8_t *body, size_t len,
                        bool then_drop);

/* A client whose queue is full while its socket takes nothing more is closed
 * so it never holds up anyone else (interface.md). What was queued for it is
 * dropped, but for a frame already half written (the stream stays well
 * formed), and a 1008 close takes its place: the client finds it as soon as
 * it reads again, within the usual wait for its answer. */
static void close_slow_consumer(struct worker *w, struct conn *c)
{
    bump(&w->counters->slow_consumers_closed, 1);
    log_debug("worker %u: closing slow consumer %s", w->id, c->id);
    if (c->state != CONN_OPEN) {
        kill_conn(w, c);
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
    queue_close(w, c, frame + 2, n - 2, false);
}

/* What happens once everything queued, our close frame included, is out. */
static void after_close_sent(struct worker *w, struct conn *c)
{
    if (c->close_then_drop) {
        /* RFC 6455 7.1.1: after the closing handshake the server closes TCP first. */
        kill_conn(w, c);
    } else if (!c->wr_shut) {
        /* We started the close: say we are done writing and wait for the
         * client's close, or EOF, until close_deadline_ms. */
        shutdown(c->fd, SHUT_WR);
        c->wr_shut = 1;
    }
}

static void mark_dirty(struct worker *w, struct conn *c);

/* What a write of c's ring came to (rc as send_ring_write's, or 2: all that
 * was submitted went out and more is queued, so it is written again in this
 * pass). */
static void written(struct worker *w, struct conn *c, int rc, unsigned pongs)
{
    c->pongs_queued = (uint8_t)(c->pongs_queued - pongs);
    if (rc < 0) {
        kill_conn(w, c);
        return;
    }
    if (rc == 2) {
        mark_dirty(w, c);
        return;
    }
    set_out(w, c, rc == 0);
    if (rc == 1 && c->close_queued)
        after_close_sent(w, c);
}

/* Writes as much of the ring as the socket takes. */
static void flush(struct worker *w, struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    unsigned pongs;
    int rc = send_ring_write(&c->ring, c->fd, &pongs);
    written(w, c, rc, pongs);
}

static bool queue_pong(struct worker *w, struct conn *c, struct fbuf *pong);

/* Queues the held pong once queued ones have been written (marking c
 * dirty, so flush_dirty writes it). */
static bool queue_held_pong(struct worker *w, struct conn *c)
{
    if (!c->pong || c->pongs_queued >= PONG_MAX || c->state != CONN_OPEN)
        return false;
    struct fbuf *pong = c->pong;
    c->pong = NULL;
    return queue_pong(w, c, pong);
}

static void mark_dirty(struct worker *w, struct conn *c)
{
    if (c->dirty || c->state == CONN_DEAD)
        return;
    c->dirty = 1;
    c->dirty_next = w->dirty;
    w->dirty = c;
}

/* Appends b to the ring; the slot owns a reference, taken here unless the
 * caller paid for it in advance (prepaid). The ring grows under a burst up to
 * SEND_BUFFER plus the control slots and shrinks back when the connection is
 * idle (heartbeat). A ring that cannot take b is a slow consumer: the
 * connection is closed and false returned (a prepaid reference is still the
 * caller's). */
static bool ring_store(struct worker *w, struct conn *c, struct fbuf *b, bool prepaid)
{
    if (!send_ring_push(&c->ring, b, w->cfg->send_buffer + CONTROL_SLOTS)) {
        close_slow_consumer(w, c);
        return false;
    }
    if (!prepaid)
        fbuf_ref(b); /* the slot's; the caller still holds b */
    mark_dirty(w, c);
    return true;
}

static bool ring_push(struct worker *w, struct conn *c, struct fbuf *b)
{
    return ring_store(w, c, b, false);
}

/* Queues a message for a client. A full ring whose socket takes nothing
 * more is a slow consumer: it is closed so it cannot hold up anyone else.
 * Returns whether the ring kept b (using a prepaid reference if given). */
static bool enqueue_message(struct worker *w, struct conn *c, struct fbuf *b, bool prepaid)
{
    if (c->state != CONN_OPEN)
        return false;
    if (c->ring.n >= w->cfg->send_buffer) {
        flush(w, c);
        if (c->state != CONN_OPEN)
            return false;
        if (c->ring.n >= w->cfg->send_buffer) {
            close_slow_consumer(w, c);
            return false;
        }
    }
    return ring_store(w, c, b, prepaid);
}

/* Puts pong (the caller's reference) in the ring, in order with what is
 * queued. Returns false when the ring could not take it (the connection is
 * then closed as a slow consumer). */
static bool queue_pong(struct worker *w, struct conn *c, struct fbuf *pong)
{
    if (!ring_store(w, c, pong, true)) {
        fbuf_unref(pong);
        return false;
    }
    c->pongs_queued++;
    return true;
}

/* Answers a ping: every ping gets its own pong, in order, while fewer than
 * PONG_MAX are unwritten; past that only the latest waits (RFC 6455 5.5.3
 * allows answering just the latest), so pipelined pings never make a
 * queue that fills up. */
static void answer_ping(struct worker *w, struct conn *c, const void *payload, size_t len)
{
    struct fbuf *b = fbuf_new_frame(WS_OP_PONG, payload, len);
    if (!b) {
        kill_conn(w, c);
        return;
    }
    if (c->pongs_queued < PONG_MAX && !c->pong) {
        queue_pong(w, c, b);
        return;
    }
    if (c->pong)
        fbuf_unref(c->pong);
    c->pong = b;
    mark_dirty(w, c);
}

/* Queues our close frame (payload: code and reason, or empty) after what is
 * already queued, and gives the client until the deadline to finish. */
static void queue_close(struct worker *w, struct conn *c, const uint8_t *body, size_t len,
                        bool then_drop)
{
    c->state = CONN_CLOSING;
    c->close_then_drop = then_drop;
    /* Nothing may follow our close frame (RFC 6455 5.5.1): a pending pong
     * goes before it. */
    if (c->pong) {
        struct fbuf *pong = c->pong;
        c->pong = NULL;
        if (!queue_pong(w, c, pong))
            return;
    }
    struct fbuf *b = fbuf_new_frame(WS_OP_CLOSE, body, len);
    if (!b || !ring_push(w, c, b)) {
        if (b)
            fbuf_unref(b);
        kill_conn(w, c);
        return;
    }
    fbuf_unref(b);
    c->close_queued = 1;
    c->close_deadline_ms = w->draining ? w->drain_deadline_ms : w->now + CLOSE_WAIT_MS;
    wheel_cancel(&w->wheel, &c->timer);
    wheel_schedule(&w->wheel, &c->timer, c->close_deadline_ms);
}

/* Starts the closing handshake from our side, after what is queued. */
static void start_close(struct worker *w, struct conn *c, uint16_t code, const char *reason)
{
    if (c->state != CONN_OPEN)
        return;
    uint8_t frame[128];
    size_t n = ws_frame_encode_close(frame, sizeof(frame), code, reason, strlen(reason));
    queue_close(w, c, frame + 2, n - 2, false);
}

/* ---- messages ---- */

static void send_system(struct worker *w, struct conn *c, const struct json_out *o)
{
    struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, o->p, o->len);
    if (!b)
        return;
    enqueue_message(w, c, b, false);
    fbuf_unref(b);
}

/* The welcome is a connection's first frame: written at once when the
 * socket takes it whole (it nearly always does), so an idle connection never
 * allocates its send ring; queued like any frame otherwise. */
static void send_welcome(struct worker *w, struct conn *c, const struct json_out *o)
{
    struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, o->p, o->len);
    if (!b)
        return;
    size_t sent = 0;
    if (c->ring.n == 0) {
        ssize_t n = send(c->fd, b->data, b->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            kill_conn(w, c);
            fbuf_unref(b);
            return;
        }
        sent = n > 0 ? (size_t)n : 0;
    }
    /* Part of it went out: it is the ring's only frame, its rest goes first. */
    if (sent < b->len && enqueue_message(w, c, b, false) && sent > 0)
        c->ring.head_off = (uint32_t)sent;
    fbuf_unref(b);
}

static void fill_ctx(struct worker *w, struct conn *c, struct envelope_ctx *ctx)
{
    ctx->client_id = c->id;
    ctx->room = c->room ? c->room->name : NULL;
    ctx->pod_id = w->cfg->pod_id;
    ctx->max_len = w->cfg->max_message + ENVELOPE_SLACK;
    ctx->now_ms = clock_wall_ms();
    uint64_t a = next_random(w), b = next_random(w);
    memcpy(ctx->rand, &a, 8);
    memcpy(ctx->rand + 8, &b, 8);
}

/* Hands an accepted message to every worker and to the broker. Returns
 * false, having done nothing, when some lane cannot admit it now. */
static bool publish(struct worker *w, struct fbuf *b)
{
    int rc = fanout_post(w->fan, b, FANOUT_FROM_CLIENT);
    if (rc == -EAGAIN)
        return false;
    if (rc > 0)
        bump(&w->counters->dropped, rc);
    w->env.broker->publish(w->env.broker, b);
    bump(&w->counters->published, 1);
    return true;
}

/* Stops reading c, keeping b (the caller's reference becomes the held input's)
 * and the bytes after it, until retry_paused gets b admitted. */
static void pause_reading(struct worker *w, struct conn *c, struct fbuf *b)
{
    struct held_input *bl = calloc(1, sizeof(*bl));
    if (!bl) {
        bump(&w->counters->dropped, 1);
        fbuf_unref(b);
        kill_conn(w, c);
        return;
    }
    bl->conn = c;
    bl->parked = b;
    list_push_tail(&w->credit_wait, &bl->link);
    c->held = bl;
    bump(&w->counters->reads_paused, 1);
    bump(&w->counters->paused_now, 1);
    watch(w, c, c->out_armed);
}

/* Takes c off the credit_wait list and frees its held input (the
 * parked message is the caller's to have dealt with). Returns the unparsed
 * bytes it held, which the caller frees. */
static uint8_t *unpause(struct worker *w, struct conn *c, size_t *rest_len)
{
    struct held_input *bl = c->held;
    list_unlink(&w->credit_wait, &bl->link);
    uint8_t *rest = bl->rest;
    *rest_len = bl->rest_len;
    free(bl);
    c->held = NULL;
    bump(&w->counters->paused_now, -1);
    return rest;
}

static void process_bytes(struct worker *w, struct conn *c, uint8_t *buf, size_t n);

/* Gives each paused connection, oldest first, one try at getting its parked
 * message admitted; those that succeed are read again, starting with the
 * bytes they held back (which may pause them again, at the back). */
static void retry_paused(struct worker *w)
{
    size_t tries = 0;
    for (struct list_node *n = w->credit_wait.head; n; n = n->next)
        tries++;
    while (tries-- > 0 && w->credit_wait.head) {
        struct conn *c = list_entry(w->credit_wait.head, struct held_input, link)->conn;
        if (c->state == CONN_DEAD || !publish(w, c->held->parked)) {
            /* Still waiting: to the back, so every connection gets its turn. */
            list_push_tail(&w->credit_wait, list_pop_head(&w->credit_wait));
            continue;
        }
        fbuf_unref(c->held->parked);
        size_t len;
        uint8_t *rest = unpause(w, c, &len);
        /* The wait was ours, not the client's silence. */
        c->last_rx_ms = w->now;
        watch(w, c, c->out_armed);
        if (rest && c->state != CONN_DEAD)
            process_bytes(w, c, rest, len);
        free(rest);
    }
}

static void on_chat_message(struct worker *w, struct conn *c, const struct ws_event *ev)
{
    if (ev->opcode == WS_OP_BINARY) {
        /* RFC 6455 7.4.1: 1003, data of a type the endpoint cannot accept. */
        bump(&w->counters->protocol_errors, 1);
        start_close(w, c, WS_CLOSE_UNSUPPORTED, "binary messages are not accepted");
        return;
    }
    struct envelope_ctx ctx;
    fill_ctx(w, c, &ctx);
    w->out.len = 0;
    int rc = c->read_only ? ENVELOPE_ERR_READ_ONLY
                          : envelope_from_client(&ctx, (const char *)ev->data, ev->len, &w->out);
    struct fbuf *b = rc < 0 ? NULL : fbuf_new_broadcast(w->out.p, w->out.len, ctx.room);
    if (w->out.cap > OUT_KEEP)
        json_out_free(&w->out);
    if (rc < 0) {
        bump(&w->counters->dropped, 1);
        if (rc == ENVELOPE_ERR_TOO_LARGE)
            bump(&w->counters->too_large, 1);
        if (rc == ENVELOPE_ERR_READ_ONLY)
            bump(&w->counters->read_only, 1);
        w->out.len = 0;
        w->out.oom = false;
        envelope_error(&ctx, rc, &w->out);
        if (!w->out.oom)
            send_system(w, c, &w->out);
        return;
    }
    if (!b) {
        bump(&w->counters->dropped, 1);
        return;
    }
    if (publish(w, b))
        fbuf_unref(b);
    else
        pause_reading(w, c, b);
}

/* Closes c with 1008 if its token has passed exp + leeway. */
static bool token_expired(struct worker *w, struct conn *c)
{
    if (!c->expires_ms || clock_now_ms() < c->expires_ms)
        return false;
    if (c->state == CONN_OPEN) {
        bump(&w->counters->tokens_expired, 1);
        start_close(w, c, WS_CLOSE_POLICY, "token expired");
    }
    return true;
}

static void on_message(struct worker *w, struct conn *c, const struct ws_event *ev)
{
    /* Nothing sent after the token's end is delivered, even what arrives
     * before the heartbeat's next look. */
    if (token_expired(w, c))
        return;
    bump(&w->counters->received, 1);
    if (c->kind == CONN_ECHO) {
        struct fbuf *b = fbuf_new_frame(ev->opcode, ev->data, ev->len);
        if (!b) {
            kill_conn(w, c);
            return;
        }
        enqueue_message(w, c, b, false);
        fbuf_unref(b);
        return;
    }
    on_chat_message(w, c, ev);
}

static void on_close_frame(struct worker *w, struct conn *c, const struct ws_event *ev)
{
    if (c->state == CONN_CLOSING) {
        /* The client answered our close: the handshake is complete. */
        kill_conn(w, c);
        return;
    }
    /* RFC 6455 5.5.1: answer with a close, echoing the client's code, then
     * close TCP once it is sent (7.1.1). */
    uint8_t body[2] = {(uint8_t)(ev->close_code >> 8), (uint8_t)ev->close_code};
    queue_close(w, c, body, ev->close_code ? 2 : 0, true);
}

/* Runs the parser over bytes from the socket (or handed over with it). */
static void process_bytes(struct worker *w, struct conn *c, uint8_t *buf, size_t n)
{
    size_t off = 0;
    while (off < n && c->state != CONN_DEAD) {
        struct ws_event ev;
        off += ws_frame_parse(&c->parser, buf + off, n - off, &ev);
        switch (ev.type) {
        case WS_EV_NONE: return;
        case WS_EV_MESSAGE:
            if (c->state == CONN_OPEN)
                on_message(w, c, &ev);
            if (c->held) {
                /* Keep what came after the parked message for later; the
                 * buffer is shared (or about to be freed). */
                if (off < n) {
                    c->held->rest = malloc(n - off);
                    if (!c->held->rest) {
                        kill_conn(w, c);
                        return;
                    }
                    memcpy(c->held->rest, buf + off, n - off);
                    c->held->rest_len = n - off;
                }
                return;
            }
            break;
        case WS_EV_PING:
            if (c->state == CONN_OPEN)
                answer_ping(w, c, ev.data, ev.len);
            break;
        case WS_EV_PONG: break;
        case WS_EV_CLOSE: on_close_frame(w, c, &ev); return;
        case WS_EV_ERROR:
            if (c->state == CONN_OPEN) {
                bump(&w->counters->protocol_errors, 1);
                start_close(w, c, ws_close_code_for(ev.err),
                            ev.err == WS_ERR_TOO_BIG ? "message too big"
                            : ev.err == WS_ERR_UTF8  ? "invalid UTF-8"
                                                     : "protocol error");
            }
            return;
        }
    }
}

static void on_readable(struct worker *w, struct conn *c)
{
    ssize_t n = read(c->fd, w->rbuf, sizeof(w->rbuf));
    if (n == 0) {
        kill_conn(w, c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            kill_conn(w, c);
        return;
    }
    c->last_rx_ms = w->now;
    process_bytes(w, c, w->rbuf, (size_t)n);
}

/* ---- adopting and freeing connections ---- */

static void schedule_check(struct worker *w, struct conn *c, uint64_t since);

/* Counts a connection out of its client address. */
static void release_addr(struct worker *w, const struct ipaddr *addr, bool counted)
{
    if (counted)
        ip_counts_release(w->env.ip_counts, addr);
}

/* Makes c a recipient (of its room, if any, and of global messages) and
 * sends its welcome. */
static void admit(struct worker *w, struct conn *c)
{
    if (c->room)
        fanout_member(w->fan, w->id, fanout_room_bucket(c->room->hn.hash), 1);
    if (room_add(&w->chat, &c->chat_m) < 0) {
        kill_conn(w, c);
        return;
    }
    c->in_chat = 1;
    fanout_member(w->fan, w->id, FANOUT_GLOBAL, 1);
    if (c->state == CONN_OPEN) {
        struct envelope_ctx ctx;
        fill_ctx(w, c, &ctx);
        w->out.len = 0;
        envelope_welcome(&ctx, &w->out);
        if (!w->out.oom)
            send_welcome(w, c, &w->out);
    }
}

/* Stops reading c until its room is ready, keeping the bytes it sent with
 * its request head. Returns 0 or -ENOMEM. */
static int hold(struct worker *w, struct conn *c, const uint8_t *extra, size_t len, uint64_t gen)
{
    struct held_input *bl = calloc(1, sizeof(*bl));
    if (!bl || (len && !(bl->rest = malloc(len)))) {
        free(bl);
        return -ENOMEM;
    }
    if (len)
        memcpy(bl->rest, extra, len);
    bl->rest_len = len;
    bl->conn = c;
    bl->gen = gen;
    c->held = bl;
    c->awaiting = 1;
    watch(w, c, c->out_armed);
    return 0;
}

/* c's room is subscribed (or Redis went away): it becomes a member, gets
 * its welcome and is read again, starting with what it sent meanwhile. */
static void release(struct worker *w, struct conn *c)
{
    struct held_input *bl = c->held;
    c->held = NULL;
    c->awaiting = 0;
    if (room_admit(c->room, &c->room_m) < 0) {
        registry_leave(w->env.rooms, c->room->name, w->now);
        room_leave_waiting(&w->rooms, c->room, &c->room_m);
        c->room = NULL;
        free(bl->rest);
        free(bl);
        kill_conn(w, c);
        return;
    }
    admit(w, c);
    c->last_rx_ms = w->now; /* the wait was ours, not the client's silence */
    if (c->state != CONN_DEAD)
        watch(w, c, c->out_armed);
    if (bl->rest && c->state != CONN_DEAD)
        process_bytes(w, c, bl->rest, bl->rest_len);
    free(bl->rest);
    free(bl);
}

/* Releases the connections waiting for room; for NULL, all of those that
 * wait on subscriber connection gen or an earlier one. */
static void on_room_ready(struct worker *w, const char *room, uint64_t gen)
{
    if (room) {
        struct room *r = room_find(&w->rooms, room, room_hash(room, strlen(room)));
        while (r && r->waiting && r->waiting->n > 0)
            release(w, container_of(r->waiting->members[r->waiting->n - 1], struct conn, room_m));
        return;
    }
    for (uint32_t i = 0; i < w->all.n; i++) {
        struct conn *c = container_of(w->all.members[i], struct conn, any_m);
        if (c->awaiting && c->held->gen <= gen)
            release(w, c);
    }
}

/* A connection for h's socket, registered with epoll and counted in the
 * worker's list of all connections; NULL (the socket closed, h still the
 * caller's) when that fails. */
static struct conn *new_conn(struct worker *w, const struct conn_handoff *h)
{
    size_t idlen = strlen(h->client_id);
    struct conn *c = calloc(1, sizeof(*c) + idlen + 1);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (!c || epoll_ctl(w->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0 ||
        room_add(&w->all, &c->any_m) < 0) {
        if (c)
            epoll_ctl(w->epfd, EPOLL_CTL_DEL, h->fd, NULL);
        close(h->fd);
        release_addr(w, &h->client_addr, h->ip_counted);
        free(c);
        bump(&w->counters->closed, 1);
        return NULL;
    }
    memcpy(c->id, h->client_id, idlen + 1);
    c->addr = h->client_addr;
    c->counted = h->ip_counted;
    c->fd = h->fd;
    c->kind = (uint8_t)h->kind;
    c->in_all = 1;
    c->read_only = h->read_only;
    c->last_rx_ms = w->now;
    ws_frame_parser_init(&c->parser, WS_ROLE_SERVER, w->cfg->max_message);
    w->nconns++;
    return c;
}

/* The token is good until exp plus the leeway the upgrade allowed (auth.h):
 * one rule. exp is wall-clock time (at most WS_AUTH_EXP_MAX, so this cannot
 * overflow); the wheel runs on the monotonic clock. */
static void token_deadline(struct worker *w, struct conn *c, int64_t exp)
{
    int64_t left = (exp + WS_AUTH_LEEWAY_S) * 1000 - (int64_t)clock_wall_ms();
    c->expires_ms = w->now + (left > 0 ? (uint64_t)left : 0);
    if (c->expires_ms == 0)
        c->expires_ms = 1;
}

/* A chat connection joins its room (or the global scope): admitted at once
 * when the room is ready on this pod, held until its subscription is
 * confirmed otherwise. */
static void enter_room(struct worker *w, struct conn *c, struct conn_handoff *h)
{
    uint64_t gen = 0;
    int ready = h->has_room ? registry_join(w->env.rooms, h->room, &gen) : 1;
    if (ready > 0) {
        c->room = h->has_room ? room_join(&w->rooms, h->room, &c->room_m) : NULL;
        if (h->has_room && !c->room)
            registry_leave(w->env.rooms, h->room, w->now);
        if (h->has_room == (c->room != NULL))
            admit(w, c);
        else
            kill_conn(w, c);
        return;
    }
    if (ready < 0) {
        kill_conn(w, c);
        return;
    }
    /* Its room's subscription is on its way: the welcome (and reading what
     * it sends) waits for Redis' confirmation. */
    c->room = room_join_waiting(&w->rooms, h->room, &c->room_m);
    if (c->room && hold(w, c, h->extra, h->extra_len, gen) == 0) {
        h->extra_len = 0;
        return;
    }
    if (c->room)
        room_leave_waiting(&w->rooms, c->room, &c->room_m);
    c->room = NULL;
    registry_leave(w->env.rooms, h->room, w->now);
    kill_conn(w, c);
}

static void adopt(struct worker *w, struct conn_handoff *h)
{
    w->adopted_since_trim++;
    struct conn *c = new_conn(w, h);
    if (!c) {
        free(h);
        return;
    }
    if (h->token_exp)
        token_deadline(w, c, h->token_exp);
    schedule_check(w, c, w->now);
    if (c->kind == CONN_CHAT)
        enter_room(w, c, h);
    /* Counted once it is in its room, so stats never show a connection
     * without its room. */
    bump(&w->counters->connections, 1);
    if (w->draining)
        start_close(w, c, WS_CLOSE_GOING_AWAY, "server shutting down");
    /* The client may have sent frames right behind its request head. */
    if (h->extra_len && c->state != CONN_DEAD)
        process_bytes(w, c, h->extra, h->extra_len);
    free(h);
}

static void free_conn(struct worker *w, struct conn *c)
{
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    wheel_cancel(&w->wheel, &c->timer);
    if (c->awaiting) {
        free(c->held->rest);
        free(c->held);
        c->held = NULL;
    }
    if (c->held) {
        /* A message the client sent and we could not pass on before it went. */
        bump(&w->counters->dropped, 1);
        fbuf_unref(c->held->parked);
        size_t len;
        free(unpause(w, c, &len));
    }
    if (c->pong)
        fbuf_unref(c->pong);
    if (c->room) {
        registry_leave(w->env.rooms, c->room->name, w->now);
        if (c->awaiting) {
            room_leave_waiting(&w->rooms, c->room, &c->room_m);
        } else {
            fanout_member(w->fan, w->id, fanout_room_bucket(c->room->hn.hash), -1);
            room_leave(&w->rooms, c->room, &c->room_m);
        }
    }
    if (c->in_chat) {
        fanout_member(w->fan, w->id, FANOUT_GLOBAL, -1);
        room_remove(&w->chat, &c->chat_m);
    }
    if (c->in_all)
        room_remove(&w->all, &c->any_m);
    send_ring_free(&c->ring);
    ws_frame_parser_free(&c->parser);
    release_addr(w, &c->addr, c->counted);
    free(c);
    w->nconns--;
    bump(&w->counters->connections, -1);
    bump(&w->counters->closed, 1);
}

static void reap(struct worker *w)
{
    while (w->dead) {
        struct conn *c = w->dead;
        w->dead = c->dead_next;
        free_conn(w, c);
    }
}

/* ---- heartbeat ---- */

/* Puts c in the wheel for its next look: the next ping (the last one, or the
 * last byte received, being at since), the pong timeout, or its token's
 * expiry, whichever comes first. */
static void schedule_check(struct worker *w, struct conn *c, uint64_t since)
{
    uint64_t at = since + w->cfg->ping_interval_ms;
    uint64_t timeout = c->last_rx_ms + w->cfg->pong_timeout_ms;
    if (timeout < at)
        at = timeout;
    if (c->expires_ms && c->expires_ms < at)
        at = c->expires_ms;
    wheel_schedule(&w->wheel, &c->timer, at);
}

static void heartbeat(struct worker *w, struct conn *c)
{
    uint64_t now = w->now;
    if (c->state == CONN_CLOSING) {
        if (now >= c->close_deadline_ms)
            kill_conn(w, c);
        else
            wheel_schedule(&w->wheel, &c->timer, c->close_deadline_ms);
        return;
    }
    if (c->held) {
        /* Not read by our choice: its silence is not the client's. */
        c->last_rx_ms = now;
    }
    /* The token that let it in is no longer valid: the client reconnects
     * with a fresh one. */
    if (token_expired(w, c))
        return;
    uint64_t idle = now - c->last_rx_ms;
    if (idle >= w->cfg->pong_timeout_ms) {
        bump(&w->counters->heartbeat_timeouts, 1);
        write_close_now(c, WS_CLOSE_GOING_AWAY, "no pong within PONG_TIMEOUT");
        kill_conn(w, c);
        return;
    }
    /* interface.md: a silent connection is pinged every PING_INTERVAL until
     * PONG_TIMEOUT closes it; anything it sends restarts the count. */
    uint64_t since = c->last_ping_ms > c->last_rx_ms ? c->last_ping_ms : c->last_rx_ms;
    if (now - since >= w->cfg->ping_interval_ms) {
        if (!ring_push(w, c, w->ping))
            return;
        c->last_ping_ms = since = now;
    }
    /* An idle connection gives back what a burst made it take. */
    send_ring_shrink(&c->ring);
    ws_frame_parser_shrink(&c->parser);
    schedule_check(w, c, since);
}

/* Looks at every connection whose tick has come; heartbeat() marks, never
 * frees, and schedules again only into later ticks (wheel.h). */
static void run_timers(struct worker *w)
{
    struct wheel_timer *t;
    while ((t = wheel_expire(&w->wheel, w->now))) {
        struct conn *c = list_entry(t, struct conn, timer);
        if (c->state != CONN_DEAD)
            heartbeat(w, c);
    }
}

/* ---- inbox, drain, loop ---- */

/* Appends b to the ring of every member of its room (or every chat
 * connection). The references are taken with one atomic add for all of
 * them, and those not used (closed or slow members) are given back. */
static void deliver(struct worker *w, struct fbuf *b)
{
    struct room *r = b->room ? room_find(&w->rooms, b->room, b->room_hash) : &w->chat;
    if (!r || r->n == 0)
        return;
    uint32_t n = r->n, used = 0;
    fbuf_ref_n(b, n);
    for (uint32_t i = 0; i < n; i++) {
        struct conn *c = b->room ? container_of(r->members[i], struct conn, room_m)
                                 : container_of(r->members[i], struct conn, chat_m);
        used += enqueue_message(w, c, b, true);
    }
    bump(&w->counters->delivered, used);
    fbuf_unref_n(b, n - used);
}

static void begin_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    w->drain_deadline_ms = w->now + w->cfg->shutdown_timeout_ms;
    for (uint32_t i = 0; i < w->all.n; i++) {
        struct conn *c = container_of(w->all.members[i], struct conn, any_m);
        if (c->state == CONN_OPEN)
            start_close(w, c, WS_CLOSE_GOING_AWAY, "server shutting down");
        else if (c->state == CONN_CLOSING && c->close_deadline_ms > w->drain_deadline_ms)
            c->close_deadline_ms = w->drain_deadline_ms;
    }
}

static void process_inbox(struct worker *w)
{
    struct inbox_item *items;
    size_t n = inbox_take(fanout_inbox(w->fan, w->id), &items);
    for (size_t i = 0; i < n; i++) {
        switch (items[i].kind) {
        case INBOX_CONN: adopt(w, items[i].ptr); break;
        case INBOX_READY:
            on_room_ready(w, items[i].ptr, items[i].gen);
            free(items[i].ptr);
            break;
        case INBOX_FRAME:
            w->pass_work += items[i].cost;
            deliver(w, items[i].ptr);
            fanout_delivered(w->fan, w->id, &items[i]);
            fbuf_unref(items[i].ptr);
            break;
        }
    }
    fanout_batch_done(w->fan, w->id);
}

/* A batched write's outcome (send_batch.h). */
static void batch_written(void *arg, void *owner, int rc, int err, unsigned pongs)
{
    struct worker *w = arg;
    struct conn *c = owner;
    (void)err;
    written(w, c, rc, pongs);
    queue_held_pong(w, c); /* marks it dirty again: flush_dirty writes it */
}

static void run_batch(struct worker *w)
{
    if (!send_batch_run(w->batch, batch_written, w)) {
        log_warn("worker %u: io_uring failed; writing with writev from now on", w->id);
        send_batch_destroy(w->batch);
        w->batch = NULL;
    }
}

/* Adds c's ring to the worker's batch, running the batch first when it is
 * full. False when the worker writes with writev. */
static bool batch_add(struct worker *w, struct conn *c)
{
    if (!w->batch)
        return false;
    if (send_batch_add(w->batch, &c->ring, c->fd, c))
        return true;
    run_batch(w);
    return w->batch && send_batch_add(w->batch, &c->ring, c->fd, c);
}

/* Writes every connection that got something this pass: through the
 * worker's io_uring, all of them in one system call per SEND_BATCH_MAX, or
 * one writev each. */
static void flush_dirty(struct worker *w)
{
    while (w->dirty) {
        struct conn *list = w->dirty;
        w->dirty = NULL;
        while (list) {
            struct conn *c = list;
            list = c->dirty_next;
            c->dirty = 0;
            if (c->state != CONN_DEAD && c->ring.n > 0 && batch_add(w, c))
                continue; /* batch_written has its outcome */
            if (c->state != CONN_DEAD)
                flush(w, c);
            queue_held_pong(w, c); /* marks it dirty again: this loop writes it */
        }
        if (w->batch)
            run_batch(w);
    }
}

/* Hands freed pages back to the kernel. Under a sanitizer the allocator is
 * the sanitizer's own, and glibc's arenas must not be touched: trimming them
 * from a thread that never used them breaks glibc's count of arena users
 * (an assertion at thread exit). */
static void give_back_memory(void)
{
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    malloc_trim(0);
#endif
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    w->now = clock_now_ms();

    for (;;) {
        int timeout = (int)w->wheel.tick_ms;
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("worker %u: epoll_wait: %s", w->id, strerror(errno));
            abort();
        }
        w->now = clock_now_ms();
        /* The last pass took and wrote pass_work: the budget follows. */
        fanout_lane_pace(w->fan, w->id, w->pass_work, w->now);
        w->pass_work = 0;
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                process_inbox(w);
                continue;
            }
            if (c->state == CONN_DEAD)
                continue;
            if (c->held && (events[i].events & (EPOLLHUP | EPOLLERR)))
                kill_conn(w, c); /* gone while we were not reading it */
            else if (!c->held && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                on_readable(w, c);
            if (c->state != CONN_DEAD && (events[i].events & EPOLLOUT)) {
                flush(w, c);
                queue_held_pong(w, c);
            }
        }
        if (w->credit_wait.head)
            retry_paused(w);
        /* SIGTERM: the main thread sets the flag and kicks every worker. */
        if (!w->draining && atomic_load(w->env.shutting_down))
            begin_drain(w);
        run_timers(w);
        flush_dirty(w);
        if (w->draining && w->now >= w->drain_deadline_ms) {
            for (uint32_t i = 0; i < w->all.n; i++)
                kill_conn(w, container_of(w->all.members[i], struct conn, any_m));
        }
        reap(w);
        if (w->draining && w->nconns == 0)
            break;
        if (w->adopted_since_trim >= TRIM_AFTER_BURST && w->next_trim_ms > w->now + TRIM_SOON_MS)
            w->next_trim_ms = w->now + TRIM_SOON_MS;
        if (w->now >= w->next_trim_ms) {
            give_back_memory();
            w->next_trim_ms = w->now + TRIM_EVERY_MS;
            w->adopted_since_trim = 0;
        }
    }
    atomic_fetch_add(w->env.workers_ended, 1);
    return NULL;
}

struct worker *worker_create(const struct worker_env *env, unsigned id)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->id = id;
    w->env = *env;
    w->cfg = env->cfg;
    w->counters = &env->counters[id];
    w->fan = env->fanout;
    w->epfd = -1;
    uint32_t shortest = w->cfg->ping_interval_ms;
    uint32_t grace = w->cfg->pong_timeout_ms - w->cfg->ping_interval_ms;
    if (grace < shortest)
        shortest = grace;
    uint64_t tick_ms = shortest / 8;
    if (tick_ms < 5)
        tick_ms = 5;
    /* At most a quarter second: a token's expiry closes its connection
     * within a second of exp. */
    if (tick_ms > 250)
        tick_ms = 250;
    wheel_init(&w->wheel, tick_ms, clock_now_ms());
    if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || w->rng == 0)
        w->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)id;
    w->ping = fbuf_new_frame(WS_OP_PING, NULL, 0);
    if (!w->ping) {
        free(w);
        return NULL;
    }
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (w->epfd < 0 ||
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, fanout_inbox(w->fan, id)->efd, &ev) < 0) {
        worker_destroy(w);
        return NULL;
    }
    char why[128] = "IO_URING=off";
    if (w->cfg->io_uring)
        w->batch = send_batch_create(why, sizeof(why));
    /* One line for all the workers: they all meet the same kernel. */
    if (id == 0 && w->batch)
        log_info("workers send through io_uring (IO_URING=off writes with writev)");
    else if (id == 0)
        log_info("workers send with writev (%s)", why);
    return w;
}

int worker_start(struct worker *w)
{
    return thread_start(&w->thread, worker_main, w);
}

void worker_join(struct worker *w)
{
    thread_join(&w->thread);
}

void worker_destroy(struct worker *w)
{
    if (!w)
        return;
    /* What is still in its inbox is the fanout's to release. */
    for (uint32_t i = w->all.n; i > 0; i--)
        kill_conn(w, container_of(w->all.members[i - 1], struct conn, any_m));
    reap(w);
    room_index_free(&w->rooms);
    free(w->chat.members);
    free(w->all.members);
    json_out_free(&w->out);
    send_batch_destroy(w->batch);
    fbuf_unref(w->ping);
    if (w->epfd >= 0)
        close(w->epfd);
    free(w);
}
