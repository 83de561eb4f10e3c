/* worker.c: the epoll loop that owns connections.
 *
 * DESIGN: one pass of the loop
 *   1. waits on epoll (the inbox eventfd and every socket, level-triggered);
 *   2. reads at most one buffer per readable socket into the worker's single
 *      read buffer (connections hold no read buffer of their own) and runs
 *      the frame parser on it; takes the inbox batch and appends each frame
 *      to the send ring of every member of its room;
 *   3. fires due heartbeat timers from a timer wheel;
 *   4. writes every connection that got something, one writev gathering its
 *      whole ring, arming EPOLLOUT only after a short write;
 *   5. frees the connections that died during the pass. Until then a dead
 *      connection is only marked, so events for it later in the same epoll
 *      batch are recognised and skipped (nginx's stale-event rule).
 * Nothing here blocks, and nothing takes a lock except the inbox swap and
 * the room registry on join and leave. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fbuf.h"
#include "inbox.h"
#include "json.h"
#include "log.h"
#include "room/envelope.h"
#include "room/room.h"
#include "server.h"
#include "ws/frame.h"

#define READ_BUF_SIZE 65536
#define MAX_EVENTS 256
#define IOV_BATCH 64
/* Ring slots beyond SEND_BUFFER, kept for control frames (pong, close). */
#define CONTROL_SLOTS 4
/* The ring's size while idle: room for a few frames without growing. */
#define RING_MIN 4
/* How long we wait for the client's close after sending ours. */
#define CLOSE_WAIT_MS 2000
#define WHEEL_SLOTS 256

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
    uint8_t wr_shut;         /* shutdown(SHUT_WR) done */
    uint8_t pinged;          /* a ping went out since the last byte arrived */
    uint8_t in_chat;         /* chat_m is in the worker's chat list */
    uint8_t in_all;          /* any_m is in the worker's list of all connections */
    struct ws_frame_parser parser;
    struct room *room;         /* NULL on a global connection */
    struct room_member room_m; /* in room */
    struct room_member chat_m; /* in the worker's list of chat connections */
    struct room_member any_m;  /* in the worker's list of all connections */
    char *client_id;

    /* Frames waiting to be written, oldest at ring_head; each slot owns one
     * reference. RING_MIN slots while idle, up to SEND_BUFFER + CONTROL_SLOTS
     * under a burst. */
    struct fbuf **ring;
    uint32_t ring_head, ring_n, ring_cap;
    uint32_t head_off; /* bytes of the oldest frame already written */

    uint64_t last_rx_ms;
    uint64_t close_deadline_ms;
    uint64_t due_tick;
    struct conn *tw_prev, *tw_next; /* timer wheel slot list */
    struct conn *dirty_next;
    struct conn *dead_next;
};

/* Heartbeat timers: every connection sits in one slot; a slot's
 * connections are looked at when its tick comes, and put back where their
 * next deadline falls. Receiving data only updates last_rx_ms, so a busy
 * connection costs nothing until its slot comes round. */
struct wheel {
    struct conn *slot[WHEEL_SLOTS];
    uint64_t tick_ms;
    uint64_t cur_tick;
};

struct worker {
    unsigned id;
    pthread_t thread;
    bool started;
    struct server *srv;
    const struct config *cfg;
    struct worker_counters *counters; /* written by this worker only */
    int epfd;
    struct inbox inbox;

    struct room_index rooms;
    struct room chat; /* every chat connection, for global messages */
    struct room all;  /* every connection */
    size_t nconns;

    struct wheel wheel;
    struct conn *dirty;
    struct conn *dead;
    struct fbuf *ping; /* shared empty ping frame */
    struct json_out out;
    uint64_t rng;
    bool draining;
    uint64_t drain_deadline_ms;
    uint64_t now;
    uint8_t rbuf[READ_BUF_SIZE];
};

/* An idle connection costs this struct, its id, three list slots and a
 * RING_MIN ring: well under 1 KiB of user memory. Keep it that way. */
_Static_assert(sizeof(struct conn) <= 256, "struct conn grew: idle connections must stay small");

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

/* ---- timer wheel ---- */

static void wheel_unlink(struct worker *w, struct conn *c)
{
    if (c->tw_prev)
        c->tw_prev->tw_next = c->tw_next;
    else if (w->wheel.slot[c->due_tick % WHEEL_SLOTS] == c)
        w->wheel.slot[c->due_tick % WHEEL_SLOTS] = c->tw_next;
    if (c->tw_next)
        c->tw_next->tw_prev = c->tw_prev;
    c->tw_prev = c->tw_next = NULL;
}

static void wheel_schedule(struct worker *w, struct conn *c, uint64_t at_ms)
{
    uint64_t tick = at_ms / w->wheel.tick_ms;
    if (tick <= w->wheel.cur_tick)
        tick = w->wheel.cur_tick + 1;
    if (tick - w->wheel.cur_tick >= WHEEL_SLOTS)
        tick = w->wheel.cur_tick + WHEEL_SLOTS - 1;
    c->due_tick = tick;
    struct conn **head = &w->wheel.slot[tick % WHEEL_SLOTS];
    c->tw_prev = NULL;
    c->tw_next = *head;
    if (*head)
        (*head)->tw_prev = c;
    *head = c;
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
    if (c->head_off != 0 || c->close_queued)
        return;
    uint8_t frame[128];
    size_t n = ws_frame_encode_close(frame, sizeof(frame), code, reason, strlen(reason));
    ssize_t rc = write(c->fd, frame, n);
    (void)rc;
}

static void set_out(struct worker *w, struct conn *c, bool on)
{
    if (c->out_armed == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->out_armed = on;
    else
        kill_conn(w, c);
}

static void ring_pop(struct conn *c)
{
    fbuf_unref(c->ring[c->ring_head]);
    c->ring_head = (c->ring_head + 1) % c->ring_cap;
    c->ring_n--;
    c->head_off = 0;
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

/* Writes as much of the ring as the socket takes. */
static void flush(struct worker *w, struct conn *c)
{
    while (c->ring_n > 0 && c->state != CONN_DEAD) {
        struct iovec iov[IOV_BATCH];
        size_t k = 0, total = 0;
        for (uint32_t i = 0; i < c->ring_n && k < IOV_BATCH; i++) {
            struct fbuf *b = c->ring[(c->ring_head + i) % c->ring_cap];
            size_t skip = i == 0 ? c->head_off : 0;
            iov[k].iov_base = b->data + skip;
            iov[k].iov_len = b->len - skip;
            total += iov[k].iov_len;
            k++;
        }
        ssize_t n = writev(c->fd, iov, (int)k);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_out(w, c, true);
                return;
            }
            if (errno == EINTR)
                continue;
            kill_conn(w, c);
            return;
        }
        size_t left = (size_t)n;
        while (left > 0) {
            struct fbuf *b = c->ring[c->ring_head];
            size_t rest = b->len - c->head_off;
            if (left >= rest) {
                left -= rest;
                ring_pop(c);
            } else {
                c->head_off += (uint32_t)left;
                left = 0;
            }
        }
        if ((size_t)n < total) {
            set_out(w, c, true);
            return;
        }
    }
    if (c->state == CONN_DEAD)
        return;
    set_out(w, c, false);
    if (c->close_queued)
        after_close_sent(w, c);
}

static void mark_dirty(struct worker *w, struct conn *c)
{
    if (c->dirty || c->state == CONN_DEAD)
        return;
    c->dirty = 1;
    c->dirty_next = w->dirty;
    w->dirty = c;
}

/* Resizes the ring to cap slots (>= ring_n), oldest first at slot 0. */
static bool ring_resize(struct conn *c, uint32_t cap)
{
    struct fbuf **r = malloc(cap * sizeof(*r));
    if (!r)
        return false;
    for (uint32_t i = 0; i < c->ring_n; i++)
        r[i] = c->ring[(c->ring_head + i) % c->ring_cap];
    free(c->ring);
    c->ring = r;
    c->ring_cap = cap;
    c->ring_head = 0;
    return true;
}

/* Appends b to the ring; the slot owns a reference, taken here unless the
 * caller paid for it in advance (prepaid). The ring starts small and
 * doubles under a burst, up to SEND_BUFFER plus the control slots; it
 * shrinks back when the connection is idle (heartbeat). Returns false when
 * it cannot take b; the connection is then dropped. */
static bool ring_store(struct worker *w, struct conn *c, struct fbuf *b, bool prepaid)
{
    uint32_t max = w->cfg->send_buffer + CONTROL_SLOTS;
    if (c->ring_n == c->ring_cap) {
        uint32_t cap = c->ring_cap ? c->ring_cap * 2 : RING_MIN;
        if (cap > max)
            cap = max;
        if (c->ring_n == cap || !ring_resize(c, cap)) {
            kill_conn(w, c);
            return false;
        }
    }
    if (!prepaid)
        fbuf_ref(b);
    c->ring[(c->ring_head + c->ring_n) % c->ring_cap] = b;
    c->ring_n++;
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
    if (c->ring_n >= w->cfg->send_buffer) {
        flush(w, c);
        if (c->state != CONN_OPEN)
            return false;
        if (c->ring_n >= w->cfg->send_buffer) {
            bump(&w->counters->slow_consumers_closed, 1);
            log_debug("worker %u: closing slow consumer %s", w->id, c->client_id);
            write_close_now(c, WS_CLOSE_POLICY, "slow consumer: send queue full");
            kill_conn(w, c);
            return false;
        }
    }
    return ring_store(w, c, b, prepaid);
}

static void queue_control(struct worker *w, struct conn *c, uint8_t opcode, const void *payload,
                          size_t len)
{
    struct fbuf *b = fbuf_new_frame(opcode, payload, len);
    if (!b) {
        kill_conn(w, c);
        return;
    }
    ring_push(w, c, b);
    fbuf_unref(b);
}

/* Queues our close frame (payload: code and reason, or empty) after what is
 * already queued, and gives the client until the deadline to finish. */
static void queue_close(struct worker *w, struct conn *c, const uint8_t *body, size_t len,
                        bool then_drop)
{
    c->state = CONN_CLOSING;
    c->close_then_drop = then_drop;
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
    wheel_unlink(w, c);
    wheel_schedule(w, c, c->close_deadline_ms);
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

static void fill_ctx(struct worker *w, struct conn *c, struct envelope_ctx *ctx)
{
    ctx->client_id = c->client_id;
    ctx->room = c->room ? c->room->name : NULL;
    ctx->pod_id = w->cfg->pod_id;
    ctx->now_ms = server_wall_ms();
    uint64_t a = next_random(w), b = next_random(w);
    memcpy(ctx->rand, &a, 8);
    memcpy(ctx->rand + 8, &b, 8);
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
    int rc = envelope_from_client(&ctx, (const char *)ev->data, ev->len, &w->out);
    if (rc < 0) {
        bump(&w->counters->dropped, 1);
        w->out.len = 0;
        w->out.oom = false;
        envelope_error(&ctx, rc, &w->out);
        if (!w->out.oom)
            send_system(w, c, &w->out);
        return;
    }
    struct fbuf *b = fbuf_new_broadcast(w->out.p, w->out.len, ctx.room);
    if (!b) {
        bump(&w->counters->dropped, 1);
        return;
    }
    unsigned missed = worker_broadcast(w->srv, b);
    if (missed)
        bump(&w->counters->dropped, missed);
    w->srv->broker.publish(&w->srv->broker, b);
    bump(&w->counters->published, 1);
    fbuf_unref(b);
}

static void on_message(struct worker *w, struct conn *c, const struct ws_event *ev)
{
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
            break;
        case WS_EV_PING:
            if (c->state == CONN_OPEN)
                queue_control(w, c, WS_OP_PONG, ev.data, ev.len);
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
    c->pinged = 0;
    process_bytes(w, c, w->rbuf, (size_t)n);
}

/* ---- adopting and freeing connections ---- */

static void adopt(struct worker *w, struct conn_handoff *h)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(h->fd);
        free(h);
        return;
    }
    c->fd = h->fd;
    c->kind = (uint8_t)h->kind;
    c->client_id = strdup(h->client_id);
    ws_frame_parser_init(&c->parser, WS_ROLE_SERVER, w->cfg->max_message);
    c->last_rx_ms = w->now;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    bool ok = c->client_id && epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0 &&
              room_add(&w->all, &c->any_m) == 0;
    if (!ok) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        free(c->client_id);
        free(c);
        free(h);
        bump(&w->counters->closed, 1);
        return;
    }
    c->in_all = 1;
    w->nconns++;
    wheel_schedule(w, c, w->now + w->cfg->ping_interval_ms);

    if (c->kind == CONN_CHAT) {
        if (room_add(&w->chat, &c->chat_m) == 0)
            c->in_chat = 1;
        else
            kill_conn(w, c);
        if (h->has_room) {
            c->room = room_join(&w->rooms, h->room, &c->room_m);
            if (c->room)
                stats_room_join(&w->srv->rooms, h->room);
            else
                kill_conn(w, c);
        }
        if (c->state == CONN_OPEN) {
            struct envelope_ctx ctx;
            fill_ctx(w, c, &ctx);
            w->out.len = 0;
            envelope_welcome(&ctx, &w->out);
            if (!w->out.oom)
                send_system(w, c, &w->out);
        }
    }
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
    wheel_unlink(w, c);
    if (c->room) {
        stats_room_leave(&w->srv->rooms, c->room->name);
        room_leave(&w->rooms, c->room, &c->room_m);
    }
    if (c->in_chat)
        room_remove(&w->chat, &c->chat_m);
    if (c->in_all)
        room_remove(&w->all, &c->any_m);
    while (c->ring_n > 0)
        ring_pop(c);
    free(c->ring);
    ws_frame_parser_free(&c->parser);
    free(c->client_id);
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

static void heartbeat(struct worker *w, struct conn *c)
{
    uint64_t now = w->now;
    if (c->state == CONN_CLOSING) {
        if (now >= c->close_deadline_ms)
            kill_conn(w, c);
        else
            wheel_schedule(w, c, c->close_deadline_ms);
        return;
    }
    uint64_t idle = now - c->last_rx_ms;
    if (idle >= w->cfg->pong_timeout_ms) {
        bump(&w->counters->heartbeat_timeouts, 1);
        write_close_now(c, WS_CLOSE_GOING_AWAY, "no pong within PONG_TIMEOUT");
        kill_conn(w, c);
        return;
    }
    if (idle >= w->cfg->ping_interval_ms && !c->pinged) {
        ring_push(w, c, w->ping);
        c->pinged = 1;
    }
    /* An idle connection gives back what a burst made it take. */
    if (c->ring_n == 0 && c->ring_cap > RING_MIN)
        ring_resize(c, RING_MIN);
    ws_frame_parser_shrink(&c->parser);
    wheel_schedule(
        w, c, c->last_rx_ms + (c->pinged ? w->cfg->pong_timeout_ms : w->cfg->ping_interval_ms));
}

/* Fires every slot up to now. A slot's list is detached first; heartbeat()
 * touches only the connection it is given (it marks, never frees), so the
 * rest of the detached list stays intact while it runs. */
static void run_timers(struct worker *w)
{
    uint64_t target = w->now / w->wheel.tick_ms;
    while (w->wheel.cur_tick < target) {
        w->wheel.cur_tick++;
        struct conn **slot = &w->wheel.slot[w->wheel.cur_tick % WHEEL_SLOTS];
        struct conn *list = *slot;
        *slot = NULL;
        while (list) {
            struct conn *c = list;
            list = c->tw_next;
            c->tw_prev = c->tw_next = NULL;
            if (list)
                list->tw_prev = NULL;
            if (c->state != CONN_DEAD)
                heartbeat(w, c);
        }
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
    size_t n = inbox_take(&w->inbox, &items);
    for (size_t i = 0; i < n; i++) {
        switch (items[i].kind) {
        case INBOX_CONN: adopt(w, items[i].ptr); break;
        case INBOX_FRAME:
            deliver(w, items[i].ptr);
            fbuf_unref(items[i].ptr);
            break;
        case INBOX_SHUTDOWN: begin_drain(w); break;
        }
    }
}

static void flush_dirty(struct worker *w)
{
    while (w->dirty) {
        struct conn *list = w->dirty;
        w->dirty = NULL;
        while (list) {
            struct conn *c = list;
            list = c->dirty_next;
            c->dirty = 0;
            if (c->state != CONN_DEAD)
                flush(w, c);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    w->now = server_now_ms();
    w->wheel.cur_tick = w->now / w->wheel.tick_ms;

    for (;;) {
        int timeout = (int)w->wheel.tick_ms;
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("worker %u: epoll_wait: %s", w->id, strerror(errno));
            abort();
        }
        w->now = server_now_ms();
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                process_inbox(w);
                continue;
            }
            if (c->state == CONN_DEAD)
                continue;
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(w, c);
            if (c->state != CONN_DEAD && (events[i].events & EPOLLOUT))
                flush(w, c);
        }
        run_timers(w);
        flush_dirty(w);
        if (w->draining && w->now >= w->drain_deadline_ms) {
            for (uint32_t i = 0; i < w->all.n; i++)
                kill_conn(w, container_of(w->all.members[i], struct conn, any_m));
        }
        reap(w);
        if (w->draining && w->nconns == 0)
            break;
    }
    return NULL;
}

struct worker *worker_create(struct server *srv, unsigned id)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->id = id;
    w->srv = srv;
    w->cfg = &srv->cfg;
    w->counters = &srv->counters[id];
    w->epfd = -1;
    uint32_t shortest = w->cfg->ping_interval_ms;
    uint32_t grace = w->cfg->pong_timeout_ms - w->cfg->ping_interval_ms;
    if (grace < shortest)
        shortest = grace;
    w->wheel.tick_ms = shortest / 8;
    if (w->wheel.tick_ms < 5)
        w->wheel.tick_ms = 5;
    if (w->wheel.tick_ms > 1000)
        w->wheel.tick_ms = 1000;
    if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || w->rng == 0)
        w->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)id;
    w->ping = fbuf_new_frame(WS_OP_PING, NULL, 0);
    if (!w->ping || inbox_init(&w->inbox) < 0) {
        if (w->ping)
            fbuf_unref(w->ping);
        free(w);
        return NULL;
    }
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (w->epfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->inbox.efd, &ev) < 0) {
        worker_destroy(w);
        return NULL;
    }
    return w;
}

int worker_start(struct worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0)
        return -rc;
    w->started = true;
    return 0;
}

void worker_join(struct worker *w)
{
    if (w->started && pthread_join(w->thread, NULL) != 0)
        abort();
    w->started = false;
}

void worker_destroy(struct worker *w)
{
    if (!w)
        return;
    /* Whatever is still in the inbox owns references or sockets. */
    struct inbox_item *items;
    size_t n = inbox_take(&w->inbox, &items);
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind == INBOX_FRAME) {
            fbuf_unref(items[i].ptr);
        } else if (items[i].kind == INBOX_CONN) {
            struct conn_handoff *h = items[i].ptr;
            close(h->fd);
            free(h);
        }
    }
    for (uint32_t i = w->all.n; i > 0; i--)
        kill_conn(w, container_of(w->all.members[i - 1], struct conn, any_m));
    reap(w);
    room_index_free(&w->rooms);
    free(w->chat.members);
    free(w->all.members);
    json_out_free(&w->out);
    fbuf_unref(w->ping);
    if (w->epfd >= 0)
        close(w->epfd);
    inbox_destroy(&w->inbox);
    free(w);
}

struct inbox *worker_inbox(struct worker *w)
{
    return &w->inbox;
}

unsigned worker_broadcast(struct server *srv, struct fbuf *msg)
{
    unsigned missed = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        fbuf_ref(msg);
        struct inbox_item it = {INBOX_FRAME, msg};
        if (inbox_push(worker_inbox(srv->workers[i]), it) < 0) {
            fbuf_unref(msg);
            missed++;
        }
    }
    return missed;
}
