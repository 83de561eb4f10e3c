/* worker.c: the epoll loop that owns connections.
 *
 * DESIGN: one pass of the loop
 *   1. waits on epoll (the inbox eventfd and every socket, level-triggered);
 *   2. hands each socket's events to its connection (conn.h: reading, the
 *      frame parser, pings, the close handshake), which gives each whole
 *      message back here (on_message); takes the inbox batch and appends
 *      each frame to the send ring of every member of its room, giving its
 *      credit back (fanout.h); retries the connections held for credit;
 *   3. fires due heartbeat timers;
 *   4. writes every connection that got something;
 *   5. frees the connections that died during the pass.
 * The connection module owns everything about one connection; this file
 * owns what connects them: the loop, the inbox, rooms and delivery.
 * Nothing here blocks, and nothing takes a lock except the inbox swap and
 * the room registry on join and leave.
 *
 * Backpressure: a client message that some lane cannot admit is held on
 * its connection, with the bytes read after it, and the connection is no
 * longer read (TCP then slows the sender) until a retry gets the message
 * admitted. Nothing a client sent is dropped for this, and the worker's
 * other connections are served as before. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "broker_seam.h"
#include "clock.h"
#include "common.h"
#include "compressor.h"
#include "config.h"
#include "conn.h"
#include "deliver.h"
#include "dest.h"
#include "fanout.h"
#include "fbuf.h"
#include "inbox.h"
#include "ipaddr.h"
#include "json.h"
#include "log.h"
#include "room/envelope.h"
#include "room/registry.h"
#include "room/room.h"
#include "stats.h"
#include "thread.h"

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

struct worker {
    unsigned id;
    struct thread thread;
    struct worker_env env;   /* the pod's parts it uses (worker.h) */
    const struct config *cfg;
    struct worker_counters *counters; /* written by this worker only */
    struct fanout *fan;               /* the lanes; this worker consumes lane id */
    struct conn_set conns;            /* its connections, their loop and heartbeats (conn.h) */
    struct loop_handler inbox_io;     /* its inbox's eventfd in that loop */

    struct room_index rooms;
    struct room chat; /* every chat connection, for global messages */
    struct json_out out;
    uint64_t rng; /* xorshift state for ids (common.h) */
    uint64_t next_trim_ms;
    unsigned adopted_since_trim;
    uint64_t pass_work; /* costs of the frames taken from the inbox since the last pass began */
};

/* An idle connection costs this struct with its id (one allocation: with
 * the 16-character ids the server makes, a 304-byte block) and three list
 * slots; its send ring is allocated when something must wait in it. Keep it
 * that way: bench/README.md measures it (idle). */
_Static_assert(sizeof(struct conn) <= 272, "struct conn grew: idle connections must stay small");

static void bump(atomic_uint_fast64_t *c, int64_t by)
{
    atomic_fetch_add_explicit(c, (uint_fast64_t)by, memory_order_relaxed);
}

/* ---- messages ---- */

static void send_system(struct worker *w, struct conn *c, const struct json_out *o)
{
    struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, o->p, o->len);
    if (!b)
        return;
    conn_send(&w->conns, c, b, false);
    fbuf_unref(b);
}

static void fill_ctx(struct worker *w, struct conn *c, struct envelope_ctx *ctx)
{
    ctx->client_id = c->id;
    ctx->room = c->room ? c->room->name : NULL;
    ctx->pod_id = w->cfg->pod_id;
    ctx->max_len = w->cfg->max_message + ENVELOPE_SLACK;
    ctx->now_ms = clock_wall_ms();
    uint64_t a = rng_next(&w->rng), b = rng_next(&w->rng);
    memcpy(ctx->rand, &a, 8);
    memcpy(ctx->rand + 8, &b, 8);
}

static void deliver_to(struct worker *w, struct room *r, struct fbuf *b);

/* Hands c's accepted message to every other worker and to the broker, and
 * delivers it to this worker's own members of c's room here and now (no
 * round trip through its own inbox: a lock, an eventfd write and another
 * loop pass saved per message). Returns false, having done nothing, when
 * some other lane cannot admit it now. */
static bool publish(struct worker *w, struct conn *c, struct fbuf *b)
{
    unsigned bucket = dest_of_frame(b)->bucket;
    int rc = fanout_post_except(w->fan, b, bucket, FANOUT_FROM_CLIENT, w->id);
    if (rc == -EAGAIN)
        return false;
    if (rc > 0)
        bump(&w->counters->dropped, rc);
    w->pass_work += fanout_cost(w->fan, w->id, b, bucket);
    deliver_to(w, c->room ? c->room : &w->chat, b);
    w->env.broker->publish(w->env.broker, b);
    bump(&w->counters->published, 1);
    return true;
}

static void on_chat_message(struct worker *w, struct conn *c, const struct ws_event *ev)
{
    if (ev->opcode == WS_OP_BINARY) {
        /* RFC 6455 7.4.1: 1003, data of a type the endpoint cannot accept. */
        bump(&w->counters->protocol_errors, 1);
        conn_close(&w->conns, c, WS_CLOSE_UNSUPPORTED, "binary messages are not accepted");
        return;
    }
    struct envelope_ctx ctx;
    fill_ctx(w, c, &ctx);
    w->out.len = 0;
    int rc = c->read_only ? ENVELOPE_ERR_READ_ONLY
                          : envelope_from_client(&ctx, (const char *)ev->data, ev->len, &w->out);
    struct dest d;
    if (rc >= 0)
        dest_of_room(&d, ctx.room); /* the message's routing, once for every hop */
    struct fbuf *b = rc < 0 ? NULL : dest_frame(w->out.p, w->out.len, &d);
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
    if (publish(w, c, b))
        fbuf_unref(b);
    else
        conn_hold_credit(&w->conns, c, b); /* read again when a retry takes it */
}

/* A whole message from an open connection (conn_calls.message). */
static void on_message(void *owner, struct conn *c, const struct ws_event *ev)
{
    struct worker *w = owner;
    if (c->kind == CONN_ECHO) {
        /* Echoes are compressed alone when agreed, so conformance suites
         * test this path (RFC 7692 with Autobahn's 12.x and 13.x). */
        struct fbuf *b = c->pmd & CONN_PMD_ALONE
                             ? compressor_alone(&w->conns.z, ev->opcode, ev->data, ev->len)
                             : NULL;
        if (!b)
            b = fbuf_new_frame(ev->opcode, ev->data, ev->len);
        if (!b) {
            conn_kill(&w->conns, c);
            return;
        }
        conn_send(&w->conns, c, b, false);
        fbuf_unref(b);
        return;
    }
    on_chat_message(w, c, ev);
}

/* A held message's next try (conn_calls.retry). */
static bool retry_held(void *owner, struct conn *c, struct fbuf *parked)
{
    return publish(owner, c, parked);
}

/* ---- rooms ---- */

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
    if (c->room) {
        fanout_member(w->fan, w->id, fanout_room_bucket(room_hash_of(c->room)), 1);
        deliver_join(c->room, c);
    }
    if (room_add(&w->chat, &c->chat_m) < 0) {
        conn_kill(&w->conns, c);
        return;
    }
    c->in_chat = 1;
    fanout_member(w->fan, w->id, FANOUT_GLOBAL, 1);
    if (c->state != CONN_OPEN)
        return;
    struct envelope_ctx ctx;
    fill_ctx(w, c, &ctx);
    w->out.len = 0;
    envelope_welcome(&ctx, &w->out);
    struct fbuf *b = w->out.oom ? NULL : fbuf_new_frame(WS_OP_TEXT, w->out.p, w->out.len);
    if (b) {
        conn_send_first(&w->conns, c, b);
        fbuf_unref(b);
    }
}

/* c's room is subscribed (or Redis went away): it becomes a member, gets
 * its welcome and is read again, starting with what it sent meanwhile. */
static void release(struct worker *w, struct conn *c)
{
    size_t len;
    uint8_t *rest = conn_unhold(&w->conns, c, &len);
    if (room_admit(c->room, &c->room_m) < 0) {
        registry_leave(w->env.rooms, c->room->name, w->conns.loop.now);
        room_leave_waiting(&w->rooms, c->room, &c->room_m);
        c->room = NULL;
        free(rest);
        conn_kill(&w->conns, c);
        return;
    }
    admit(w, c);
    if (rest && c->state != CONN_DEAD)
        conn_feed(&w->conns, c, rest, len);
    free(rest);
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
    struct room *all = &w->conns.all;
    for (uint32_t i = 0; i < all->n; i++) {
        struct conn *c = container_of(all->members[i], struct conn, any_m);
        if (conn_awaits(c, gen))
            release(w, c);
    }
}

/* A chat connection joins its room (or the global scope): admitted at once
 * when the room is ready on this pod, held until its subscription is
 * confirmed otherwise. */
static void enter_room(struct worker *w, struct conn *c, struct conn_handoff *h)
{
    uint64_t gen = 0;
    uint64_t now = w->conns.loop.now;
    int ready = h->has_room ? registry_join(w->env.rooms, h->room, &gen) : 1;
    if (ready > 0) {
        c->room = h->has_room ? room_join(&w->rooms, h->room, &c->room_m) : NULL;
        if (h->has_room && !c->room)
            registry_leave(w->env.rooms, h->room, now);
        if (h->has_room == (c->room != NULL))
            admit(w, c);
        else
            conn_kill(&w->conns, c);
        return;
    }
    if (ready < 0) {
        conn_kill(&w->conns, c);
        return;
    }
    /* Its room's subscription is on its way: the welcome (and reading what
     * it sends) waits for Redis' confirmation. */
    c->room = room_join_waiting(&w->rooms, h->room, &c->room_m);
    if (c->room && conn_hold_room(&w->conns, c, h->extra, h->extra_len, gen) == 0) {
        h->extra_len = 0;
        return;
    }
    if (c->room)
        room_leave_waiting(&w->rooms, c->room, &c->room_m);
    c->room = NULL;
    registry_leave(w->env.rooms, h->room, now);
    conn_kill(&w->conns, c);
}

static void adopt(struct worker *w, struct conn_handoff *h)
{
    w->adopted_since_trim++;
    struct conn *c = conn_new(&w->conns, h);
    if (!c) {
        release_addr(w, &h->client_addr, h->ip_counted);
        free(h);
        return;
    }
    if (c->kind == CONN_CHAT)
        enter_room(w, c, h);
    /* Counted once it is in its room, so stats never show a connection
     * without its room. */
    bump(&w->counters->connections, 1);
    if (w->conns.draining)
        conn_close(&w->conns, c, WS_CLOSE_GOING_AWAY, "server shutting down");
    /* The client may have sent frames right behind its request head. */
    if (h->extra_len && c->state != CONN_DEAD)
        conn_feed(&w->conns, c, h->extra, h->extra_len);
    free(h);
}

/* c is about to be freed: out of its room, the global list and its address's
 * count (conn_calls.gone). */
static void on_gone(void *owner, struct conn *c)
{
    struct worker *w = owner;
    if (c->room) {
        registry_leave(w->env.rooms, c->room->name, w->conns.loop.now);
        if (c->hold == CONN_HOLD_ROOM) {
            room_leave_waiting(&w->rooms, c->room, &c->room_m);
        } else {
            fanout_member(w->fan, w->id, fanout_room_bucket(room_hash_of(c->room)), -1);
            deliver_leave(&w->conns, c->room, c);
            room_leave(&w->rooms, c->room, &c->room_m);
        }
    }
    if (c->in_chat) {
        fanout_member(w->fan, w->id, FANOUT_GLOBAL, -1);
        room_remove(&w->chat, &c->chat_m);
    }
    release_addr(w, &c->addr, c->counted);
}

static const struct conn_calls CALLS = {
    .message = on_message,
    .retry = retry_held,
    .gone = on_gone,
};

/* ---- inbox, drain, loop ---- */

/* Appends b to the ring of every member of r (a room, or the list of every
 * chat connection), each member getting the frame its compression calls for
 * (deliver.h). */
static void deliver_to(struct worker *w, struct room *r, struct fbuf *b)
{
    bump(&w->counters->delivered, deliver_frames(&w->conns, r, r == &w->chat, b));
}

/* b from the inbox: to the members of the room its record names. */
static void deliver(struct worker *w, struct fbuf *b)
{
    const struct dest *d = dest_of_frame(b);
    const char *room = dest_room(d);
    struct room *r = room ? room_find(&w->rooms, room, d->hash) : &w->chat;
    if (r)
        deliver_to(w, r, b);
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

/* After the pass: shutdown's deadline, and memory given back now and then. */
static void after_pass(struct worker *w)
{
    struct conn_set *s = &w->conns;
    if (s->draining && s->loop.now >= s->drain_deadline_ms)
        conn_kill_all(s);
    conn_reap(s);
    compressor_sweep(&s->z, s->loop.now);
    if (w->adopted_since_trim >= TRIM_AFTER_BURST && w->next_trim_ms > s->loop.now + TRIM_SOON_MS)
        w->next_trim_ms = s->loop.now + TRIM_SOON_MS;
    if (s->loop.now >= w->next_trim_ms) {
        give_back_memory();
        w->next_trim_ms = s->loop.now + TRIM_EVERY_MS;
        w->adopted_since_trim = 0;
    }
}

/* The inbox's eventfd is readable (its loop handler). */
static void on_inbox(struct loop *l, struct loop_handler *h, uint32_t events)
{
    (void)l;
    (void)events;
    process_inbox(container_of(h, struct worker, inbox_io));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct conn_set *s = &w->conns;
    for (;;) {
        /* The wheel's tick is the loop's one timer. */
        if (loop_wait(&s->loop, s->loop.now + wheel_tick_ms(&s->wheel)) < 0) {
            log_error("worker %u: epoll_wait: %s", w->id, strerror(errno));
            abort();
        }
        /* The last pass took and wrote pass_work: the budget follows. */
        fanout_lane_pace(w->fan, w->id, w->pass_work, s->loop.now);
        w->pass_work = 0;
        loop_dispatch(&s->loop);
        if (s->credit_wait.head)
            conn_retry_held(s);
        /* SIGTERM: the main thread sets the flag and kicks every worker. */
        if (!s->draining && atomic_load(w->env.shutting_down))
            conn_drain(s, s->loop.now + w->cfg->shutdown_timeout_ms);
        conn_run_timers(s);
        conn_flush_dirty(s);
        after_pass(w);
        if (s->draining && s->all.n == 0)
            break;
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
    rng_seed(&w->rng, id);
    char why[128];
    if (conn_set_init(&w->conns, id, w->cfg, w->counters, &CALLS, w, why, sizeof(why)) < 0) {
        free(w);
        return NULL;
    }
    w->inbox_io.fn = on_inbox;
    if (loop_add(&w->conns.loop, fanout_inbox_fd(w->fan, id), &w->inbox_io, EPOLLIN) < 0) {
        worker_destroy(w);
        return NULL;
    }
    /* One line for all the workers: they all meet the same kernel. */
    if (id == 0 && w->conns.batch)
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
    conn_set_free(&w->conns);
    room_index_free(&w->rooms);
    free(w->chat.members);
    json_out_free(&w->out);
    free(w);
}
