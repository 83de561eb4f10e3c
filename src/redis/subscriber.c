/* subscriber.c: the subscriber thread, one loop for every mode.
 *
 * DESIGN: the subscriber subscribes each room this pod hosts on the node
 * that serves its channel's slot (route.h): SUBSCRIBE in single Redis and
 * Sentinel mode, SSUBSCRIBE for a cluster's rooms (one command per slot, as
 * Redis wants), and realtime:global on one master. The room registry
 * (registry.h) keeps each room's state; a joining client's welcome waits
 * for Redis' confirmation.
 * Every node has its own link, pinged every second; a node that does not
 * answer for REDIS_LINK_COMMAND_MS, dies, or pushes sunsubscribe (its slot
 * moved) stalls only its own rooms: joins stop waiting for them, the map is
 * fetched again, and they are subscribed where they now live, twice a
 * second until that works. realtime:global moves to another master when its
 * node fails (cluster).
 * Each node's subscription commands are remembered in order until Redis
 * has confirmed every channel, so an error answer names its command: a
 * command of several channels is split in two and sent again, until the
 * refused channel is alone; that room alone is set aside (its members are
 * told with a system error, room_unavailable) and retried with backoff. The
 * pod stays connected and ready.
 * What arrives is checked and delivered by receive.c.
 *
 * Owner: the subscriber thread owns everything here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "common.h"
#include "config.h"
#include "dest.h"
#include "fanout.h"
#include "fbuf.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "redis/backoff.h"
#include "redis/broker_internal.h"
#include "redis/message.h"
#include "redis/nodes.h"
#include "redis/receive.h"
#include "redis/sub_fifo.h"
#include "room/envelope.h"
#include "room/registry.h"

/* Each link is pinged this often while nothing else is asked of it. */
#define SUB_PING_MS 1000
/* A subscriber link that is down is tried at least this often. */
#define SUB_RETRY_MAX_MS 1000
/* Stalled rooms are tried again this often. */
#define STALL_RETRY_MS 500
/* Refused rooms retried per retry round (every refused room in turn). */
#define REFUSED_RETRY_MAX 256
/* Refused rooms logged one by one per REFUSED_LOG_MS; the rest are counted
 * in one line at its end. */
#define REFUSED_LOG_EACH 5
#define REFUSED_LOG_MS 60000
/* A subscription command carries at most this many channels. */
#define CHANNELS_PER_COMMAND 1000

/* Room channels collected to be sent (heap names). */
struct chan_batch {
    char **names;
    size_t n, cap;
    bool oom;
};

/* The subscriber's part of a node (nodes.h). */
struct sub_node {
    struct redis_node *node;
    struct sub_fifo cmds; /* commands awaiting answers (sub_fifo.h) */
    bool global;          /* realtime:global is subscribed (or asked) here */
    struct chan_batch pending; /* rooms to subscribe once the link is ready */
    uint64_t last_ping_ms;
};

struct sub {
    struct redis_broker *rb;
    struct loop loop;          /* stop_efd, wake_efd and every node's link */
    struct loop_handler stop;  /* stop_efd's handler */
    struct loop_handler woken; /* wake_efd's handler */
    bool stopping;             /* stop_efd was written */
    struct redis_nodes *ns; /* the nodes and the slot map (nodes.h) */
    struct chan_batch batch;
    bool live;                 /* registry_sub_live done (a map came) */
    bool stalled;              /* rooms wait to be subscribed again */
    uint64_t next_stall_try_ms;
    bool ever_ready;
    struct redis_backoff refused_bo; /* refused rooms are retried this slowly */
    uint64_t refused_retry_ms;       /* 0: none refused */
    unsigned back_seen;              /* rb->back_gen when last looked at */
    uint64_t refused_log_since_ms;   /* the log period under way */
    unsigned refused_logged;         /* rooms logged one by one in it */
    unsigned refused_unlogged;       /* rooms refused in it past those */
    struct redis_receiver in; /* checks and delivers what arrives */
};

/* Which rooms a registry walk picks (registry_sub_stall): those on a node,
 * or those whose slot changed masters from an old map. */
struct pick {
    struct sub *s;
    const struct redis_node *node;
    const struct redis_cluster_map *old;
};

/* ---- rooms and the registry ---- */

static const char *room_of(const char *channel)
{
    return channel + strlen(REDIS_CHANNEL_ROOM_PREFIX);
}

/* Tells the workers that whoever waited for room may have its welcome. */
static void release_waiters(void *arg, const char *room)
{
    struct redis_broker *rb = arg;
    if (fanout_room_ready(rb->fanout, room, 0))
        log_error("redis: out of memory telling workers about room %s", room);
}

static void batch_add_channel(struct chan_batch *cb, const char *channel)
{
    if (cb->n == cb->cap) {
        size_t cap = cb->cap ? cb->cap * 2 : 64;
        char **grown = realloc(cb->names, cap * sizeof(*grown));
        if (!grown) {
            cb->oom = true;
            return;
        }
        cb->names = grown;
        cb->cap = cap;
    }
    if (!(cb->names[cb->n] = strdup(channel))) {
        cb->oom = true;
        return;
    }
    cb->n++;
}

/* Collects one room's channel (registry_emit_fn; called under the
 * registry's lock, so it only copies). */
static void batch_add(void *arg, const char *room)
{
    char channel[192];
    redis_msg_channel(room, channel, sizeof(channel));
    batch_add_channel(arg, channel);
}

static void batch_clear(struct chan_batch *cb)
{
    for (size_t i = 0; i < cb->n; i++)
        free(cb->names[i]);
    cb->n = 0;
    cb->oom = false;
}

static bool pick_any(void *arg, const char *room)
{
    (void)arg;
    (void)room;
    return true;
}

static bool pick_on_node(void *arg, const char *room)
{
    const struct pick *k = arg;
    unsigned slot = dest_room_slot(room);
    return !redis_nodes_owner(k->s->ns, slot) || redis_nodes_serves_slot(k->s->ns, k->node, slot);
}

static bool pick_moved(void *arg, const char *room)
{
    const struct pick *k = arg;
    unsigned slot = dest_room_slot(room);
    const struct redis_cluster_node *a = redis_cluster_owner(k->old, slot);
    const struct redis_cluster_node *b = redis_nodes_owner(k->s->ns, slot);
    return !a || !b || !redis_cluster_same(a, b);
}

static void stall_room(struct sub *s, const char *room)
{
    bool waited;
    if (registry_sub_stall_room(s->rb->rooms, room, &waited) && waited)
        release_waiters(s->rb, room);
    s->stalled = true;
}

/* Tells the room's members on this pod that Redis refused its channel. */
static void tell_refused(struct sub *s, const char *room)
{
    struct envelope_ctx c = {.room = room,
                             .pod_id = s->rb->cfg->pod_id,
                             .now_ms = clock_wall_ms()};
    if (getrandom(c.rand, sizeof(c.rand), 0) != sizeof(c.rand))
        memset(c.rand, 0x5a, sizeof(c.rand));
    struct json_out out = {0};
    envelope_error(&c, ENVELOPE_ERR_UNAVAILABLE, &out);
    struct dest d;
    dest_of_room(&d, room);
    struct fbuf *b = out.oom ? NULL : dest_frame(out.p, out.len, &d);
    json_out_free(&out);
    if (!b)
        return;
    if (fanout_post(s->rb->fanout, b, d.bucket, FANOUT_FROM_REDIS) == -EAGAIN)
        redis_receive_overload(&s->in);
    fbuf_unref(b);
}

static void refuse_room(struct sub *s, const char *room, const char *why)
{
    bool waited;
    if (!registry_sub_refuse_room(s->rb->rooms, room, &waited))
        return;
    if (waited)
        release_waiters(s->rb, room);
    atomic_fetch_add(&s->rb->counters.refused, 1);
    /* Told once per refusal, not at every retry; logged a few at a time. */
    if (registry_sub_told(s->rb->rooms, room)) {
        atomic_store(&s->rb->counters.rooms_refused, registry_sub_refused_rooms(s->rb->rooms));
        uint64_t now = clock_now_ms();
        if (!s->refused_log_since_ms)
            s->refused_log_since_ms = now;
        if (s->refused_logged < REFUSED_LOG_EACH) {
            s->refused_logged++;
            log_warn("redis: Redis refused the channel of room %s (%s); its members are told "
                     "(room_unavailable) and it is retried with backoff (counted as "
                     "broker.refused)",
                     room, why);
        } else {
            s->refused_unlogged++;
        }
        tell_refused(s, room);
    }
    if (s->refused_retry_ms == 0)
        s->refused_retry_ms = clock_now_ms() + redis_backoff_next(&s->refused_bo);
}

/* ---- nodes and their commands ---- */

static struct sub_node *sub_of(struct redis_node *n)
{
    return n ? redis_node_data(n) : NULL;
}

static bool node_init(void *owner, struct redis_node *n)
{
    (void)owner;
    struct sub_node *sn = redis_node_data(n);
    sn->node = n;
    return true;
}

static void node_drop(void *owner, struct redis_node *n)
{
    (void)owner;
    struct sub_node *sn = redis_node_data(n);
    sub_fifo_free(&sn->cmds);
    batch_clear(&sn->pending);
    free(sn->pending.names);
}

/* Kept while it has commands or rooms waiting, or its link is up. */
static bool node_busy(void *owner, const struct redis_node *n)
{
    (void)owner;
    const struct sub_node *sn = redis_node_data((struct redis_node *)n);
    return sn->global || sn->cmds.n || sn->pending.n || !redis_node_down(n);
}

static const char *verb(const struct sub *s, enum sub_cmd_kind k)
{
    bool sharded = redis_nodes_sharded(s->ns);
    switch (k) {
    case SUB_CMD_PING: return "PING";
    case SUB_CMD_SUB: return sharded ? "SSUBSCRIBE" : "SUBSCRIBE";
    case SUB_CMD_UNSUB: return sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE";
    case SUB_CMD_GLOBAL: return "SUBSCRIBE";
    case SUB_CMD_UNGLOBAL: return "UNSUBSCRIBE";
    }
    return "PING";
}

/* Sends a command for channels ch[0..n), remembered until answered.
 * Returns false when the link failed or memory ran out (the caller then
 * fails the link). */
static bool send_cmd(struct sub *s, struct sub_node *sn, enum sub_cmd_kind k, char *const *ch,
                     size_t n)
{
    const char *argv[CHANNELS_PER_COMMAND + 1];
    size_t len[CHANNELS_PER_COMMAND + 1];
    if (!sub_fifo_push(&sn->cmds, k, ch, n))
        return false;
    argv[0] = verb(s, k);
    len[0] = strlen(argv[0]);
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = ch[i];
        len[i + 1] = strlen(ch[i]);
    }
    return redis_node_send(sn->node, (int)n + 1, argv, len) && redis_node_flush(sn->node);
}

static void fail(struct sub *s, struct sub_node *sn, uint64_t now)
{
    redis_nodes_fail(s->ns, sn->node, now, false);
}

struct slotted {
    unsigned slot;
    char *channel;
};

static int by_slot(const void *a, const void *b)
{
    const struct slotted *x = a, *y = b;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* Subscribes (or unsubscribes) the channels collected in s->batch on the
 * node serving each one's slot: one command per slot in a cluster (Redis
 * refuses channels of several slots in one), CHANNELS_PER_COMMAND at a time
 * otherwise. A room whose node is not ready stalls when subscribing (tried
 * again when the link is ready), and is let be when unsubscribing.
 * Empties the batch. */
static void route(struct sub *s, bool subscribe, uint64_t now)
{
    struct redis_broker *rb = s->rb;
    struct chan_batch *cb = &s->batch;
    size_t n = cb->n;
    struct slotted *v = n && !cb->oom ? malloc(n * sizeof(*v)) : NULL;
    if (cb->oom || (n && !v)) {
        /* Out of memory, with rooms taken from the registry as sent: every
         * subscribed room stalls, so all are tried again. */
        log_error("redis: out of memory listing rooms to subscribe");
        batch_clear(cb);
        if (subscribe)
            registry_sub_stall(rb->rooms, pick_any, NULL, release_waiters, rb);
        s->stalled = true;
        return;
    }
    if (n == 0)
        return;
    bool per_slot = redis_nodes_sharded(s->ns);
    for (size_t i = 0; i < n; i++)
        v[i] = (struct slotted){redis_cluster_slot(cb->names[i], strlen(cb->names[i])),
                                cb->names[i]};
    if (per_slot)
        qsort(v, n, sizeof(*v), by_slot);
    char *chans[CHANNELS_PER_COMMAND];
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && (!per_slot || v[end].slot == v[i].slot) &&
               end - i < CHANNELS_PER_COMMAND)
            end++;
        struct sub_node *sn = sub_of(redis_nodes_for_slot(s->ns, v[i].slot));
        if (sn)
            redis_nodes_open(s->ns, sn->node, now);
        bool coming = sn && !redis_node_down(sn->node) && !redis_node_ready(sn->node);
        if (subscribe && coming) {
            /* Its link is being made: the rooms wait for it (and their
             * joins for them); a failure stalls them. */
            for (size_t j = i; j < end; j++)
                batch_add_channel(&sn->pending, v[j].channel);
        } else if (sn && redis_node_ready(sn->node)) {
            for (size_t j = i; j < end; j++)
                chans[j - i] = v[j].channel;
            if (!send_cmd(s, sn, subscribe ? SUB_CMD_SUB : SUB_CMD_UNSUB, chans, end - i))
                fail(s, sn, now);
            else
                atomic_fetch_add(subscribe ? &rb->counters.subscribes : &rb->counters.unsubscribes,
                                 (uint64_t)(end - i));
        } else if (subscribe) {
            /* Its node is down: a failover may have moved the slot, so the
             * map is asked again (at most every 200 ms) while rooms wait. */
            for (size_t j = i; j < end; j++)
                stall_room(s, room_of(v[j].channel));
            redis_nodes_want_map(s->ns);
        }
        i = end;
    }
    free(v);
    batch_clear(cb);
}

/* What the subscriber lets go of with a node's link: realtime:global
 * moves (to another master, in a cluster), its commands are forgotten, and
 * its rooms stall until they are subscribed where their slot is served. */
static void let_go(struct sub *s, struct sub_node *sn)
{
    struct redis_broker *rb = s->rb;
    if (sn->global) {
        atomic_store(&rb->sub_ready, 0);
        sn->global = false;
        redis_nodes_let_go_global(s->ns, redis_nodes_sharded(s->ns));
    } else if (redis_nodes_carrier(s->ns) == sn->node) {
        redis_nodes_let_go_global(s->ns, false);
    }
    sub_fifo_clear(&sn->cmds);
    batch_clear(&sn->pending);
    struct pick k = {.s = s, .node = sn->node};
    registry_sub_stall(rb->rooms, pick_on_node, &k, release_waiters, rb);
    s->stalled = true;
}

/* A link failed (redis_nodes_calls.failed): its rooms stall until they
 * are subscribed again. */
static void node_failed(void *owner, struct redis_node *n, uint64_t now)
{
    struct sub *s = owner;
    struct sub_node *sn = redis_node_data(n);
    (void)now;
    if (redis_node_ready(n) || sn->global) {
        if (sn->global)
            log_warn("redis: the link carrying realtime:global failed (%s); local delivery goes "
                     "on, /readyz answers 503 until it is back",
                     redis_node_err(n));
        else
            log_warn("redis: %s; its rooms are subscribed again where Redis then serves them",
                     redis_node_err(n));
        atomic_fetch_add(&s->rb->counters.reconnects, 1);
    } else {
        redis_node_log_failure(n, "subscriber", redis_node_err(n));
    }
    let_go(s, sn);
}

/* The node that carries realtime:global: one master, a different one after
 * each failure; subscribed once its link is ready. */
static void ensure_global(struct sub *s, uint64_t now)
{
    struct sub_node *sn = sub_of(redis_nodes_global(s->ns, now));
    if (!sn || sn->global)
        return;
    redis_nodes_open(s->ns, sn->node, now);
    if (!redis_node_ready(sn->node))
        return;
    char *g = REDIS_CHANNEL_GLOBAL;
    if (!send_cmd(s, sn, SUB_CMD_GLOBAL, &g, 1)) {
        fail(s, sn, now);
        return;
    }
    sn->global = true;
}

/* Redis refused a command. */
static void on_error(struct sub *s, struct sub_node *sn, const redisReply *r, bool *fail)
{
    struct sub_cmd *c = sub_fifo_head(&sn->cmds);
    if (!c || c->kind == SUB_CMD_PING || c->kind == SUB_CMD_GLOBAL) {
        redis_node_fail_why(sn->node, "%s:%u refused %s: %.200s", redis_node_host(sn->node),
                            redis_node_port(sn->node),
                            c && c->kind == SUB_CMD_GLOBAL ? "realtime:global" : "a command",
                            r->str);
        *fail = true;
        return;
    }
    struct sub_cmd cmd;
    sub_fifo_take(&sn->cmds, &cmd);
    if (cmd.kind == SUB_CMD_SUB) {
        bool moved = strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0;
        if (moved) {
            for (size_t i = cmd.next; i < cmd.n; i++)
                stall_room(s, room_of(cmd.ch[i]));
            redis_nodes_want_map(s->ns);
        } else if (cmd.n - cmd.next > 1) {
            /* One of them is refused: each half is asked on its own, until
             * the refused channel is alone. */
            size_t left = cmd.n - cmd.next, half = left / 2;
            if (!send_cmd(s, sn, SUB_CMD_SUB, cmd.ch + cmd.next, half) ||
                !send_cmd(s, sn, SUB_CMD_SUB, cmd.ch + cmd.next + half, left - half))
                *fail = true;
        } else if (cmd.n > cmd.next) {
            refuse_room(s, room_of(cmd.ch[cmd.next]), r->str);
        }
    }
    /* An unsubscription refused changes nothing we rely on. */
    sub_cmd_free(&cmd);
}

/* A confirmation of kind for channel: the oldest command's next channel,
 * or else a push of the node's own (a slot that moved away). */
static void on_confirm(struct sub *s, struct sub_node *sn, const char *kind, const redisReply *ch)
{
    bool sub = strcmp(kind, "subscribe") == 0 || strcmp(kind, "ssubscribe") == 0;
    bool unsub = strcmp(kind, "unsubscribe") == 0 || strcmp(kind, "sunsubscribe") == 0;
    if (!sub && !unsub)
        return;
    bool ours = sub_fifo_confirm(&sn->cmds, sub, ch->str, ch->len);
    char room[WS_HS_ROOM_MAX + 1];
    if (redis_msg_room(ch->str, ch->len, room) < 0)
        return;
    struct redis_broker *rb = s->rb;
    if (sub && !room[0]) {
        if (!atomic_load(&rb->sub_ready)) {
            atomic_store(&rb->sub_ready, 1);
            redis_node_worked(sn->node);
            if (s->ever_ready)
                log_info("redis: subscriber subscribed again (realtime:global on %s:%u)",
                         redis_node_host(sn->node), redis_node_port(sn->node));
            else
                log_info("redis: connected to %s:%u, subscribed", redis_node_host(sn->node),
                         redis_node_port(sn->node));
            s->ever_ready = true;
        }
    } else if (sub) {
        redis_node_worked(sn->node);
        if (registry_sub_allowed(rb->rooms, room)) {
            log_info("redis: Redis now allows the channel of room %s", room);
            atomic_store(&rb->counters.rooms_refused, registry_sub_refused_rooms(rb->rooms));
        }
        if (registry_sub_confirmed(rb->rooms, room))
            release_waiters(rb, room);
    } else if (!ours && room[0]) {
        /* The node no longer serves the room's slot. */
        stall_room(s, room);
        redis_nodes_want_map(s->ns);
    }
}

/* One reply on a node's link (redis_nodes_calls.reply). Returns false when
 * the link must go. */
static bool on_reply(void *owner, struct redis_node *n, redisReply *r, uint64_t now)
{
    struct sub *s = owner;
    struct sub_node *sn = redis_node_data(n);
    bool failed = false;
    (void)now;
    if (r->type == REDIS_REPLY_ERROR) {
        on_error(s, sn, r, &failed);
        return !failed;
    }
    if (r->type == REDIS_REPLY_STATUS) { /* +PONG outside subscribe mode */
        sub_fifo_pong(&sn->cmds);
        return true;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return true;
    const char *kind = r->element[0]->str;
    if ((strcmp(kind, "message") == 0 || strcmp(kind, "smessage") == 0) && r->elements == 3) {
        redis_receive(&s->in, r->element[1], r->element[2]);
        return true;
    }
    if (strcmp(kind, "pong") == 0) {
        sub_fifo_pong(&sn->cmds);
        return true;
    }
    if (r->element[1]->type == REDIS_REPLY_STRING)
        on_confirm(s, sn, kind, r->element[1]);
    return true;
}

/* ---- the loop ---- */

/* A new map (redis_nodes_calls.new_map): at the first, every hosted room
 * is subscribed; later, rooms whose slot changed masters stall, to be
 * subscribed where they now live. */
static void new_map(void *owner, const struct redis_cluster_map *old, uint64_t now)
{
    struct sub *s = owner;
    struct redis_broker *rb = s->rb;
    if (!s->live) {
        s->live = true;
        registry_sub_live(rb->rooms, batch_add, &s->batch);
        route(s, true, now);
        return;
    }
    struct pick k = {.s = s, .old = old};
    registry_sub_stall(rb->rooms, pick_moved, &k, release_waiters, rb);
    s->stalled = true;
    /* realtime:global stays where it is while that node is a master. */
    struct sub_node *g = sub_of(redis_nodes_carrier(s->ns));
    if (g && !redis_nodes_serves(s->ns, g->node)) {
        char *gc = REDIS_CHANNEL_GLOBAL;
        bool was = g->global;
        g->global = false;
        redis_nodes_let_go_global(s->ns, false);
        if (was) {
            atomic_store(&rb->sub_ready, 0);
            if (redis_node_ready(g->node) && !send_cmd(s, g, SUB_CMD_UNGLOBAL, &gc, 1))
                fail(s, g, now);
        }
    }
    /* A node that is no master of any slot now (a demoted master, which may
     * replicate the new one) is let go: rooms still subscribed there would
     * otherwise arrive twice, from it and from where they moved. */
    for (unsigned i = 0; i < redis_nodes_count(s->ns); i++) {
        struct sub_node *sn = sub_of(redis_nodes_get(s->ns, i));
        if (!redis_node_down(sn->node) && !redis_nodes_serves(s->ns, sn->node)) {
            log_info("redis: %s:%u serves no slot now; its subscriptions are let go",
                     redis_node_host(sn->node), redis_node_port(sn->node));
            let_go(s, sn);
            redis_nodes_close(s->ns, sn->node, now);
        }
    }
}

/* A node answered the publisher again: links that are down, and the
 * rooms stalled on them, are tried now rather than after their backoff. */
static void retry_now(struct sub *s, uint64_t now)
{
    redis_nodes_retry_now(s->ns, now);
    s->next_stall_try_ms = now;
}

/* Per pass: new rooms, rooms let go, stalled and refused rooms, global,
 * pings and hangs. Returns the next deadline. */
static uint64_t tend(struct sub *s, uint64_t now)
{
    struct redis_broker *rb = s->rb;
    struct room_registry *reg = rb->rooms;
    redis_receiver_tick(&s->in, now);
    uint64_t next = now + SUB_PING_MS / 2;
    if (!s->live)
        return next;
    if (redis_broker_back_news(rb, &s->back_seen))
        retry_now(s, now);
    if (s->stalled && now >= s->next_stall_try_ms) {
        s->next_stall_try_ms = now + STALL_RETRY_MS;
        s->stalled = false;
        registry_sub_take_stalled(reg, batch_add, &s->batch);
        route(s, true, now);
    }
    if (s->refused_retry_ms && now >= s->refused_retry_ms) {
        /* A bounded number each time: the rest wait for the next round. */
        s->refused_retry_ms = 0;
        if (registry_sub_take_refused(reg, REFUSED_RETRY_MAX, batch_add, &s->batch))
            s->refused_retry_ms = now + redis_backoff_next(&s->refused_bo);
        route(s, true, now);
        atomic_store(&rb->counters.rooms_refused, registry_sub_refused_rooms(reg));
    }
    if (s->refused_log_since_ms && now >= s->refused_log_since_ms + REFUSED_LOG_MS) {
        if (s->refused_unlogged)
            log_warn("redis: Redis refused the channels of %u more rooms in the last %d s (each "
                     "told once, retried with backoff; counted as broker.refused)",
                     s->refused_unlogged, REFUSED_LOG_MS / 1000);
        s->refused_log_since_ms = 0;
        s->refused_logged = s->refused_unlogged = 0;
    }
    registry_sub_take_queued(reg, batch_add, &s->batch);
    route(s, true, now);
    uint64_t linger = rb->cfg->room_linger_ms;
    if (now > linger) {
        registry_sub_take_expired(reg, now - linger, batch_add, &s->batch);
        route(s, false, now);
    }
    ensure_global(s, now);
    for (unsigned i = 0; i < redis_nodes_count(s->ns); i++) {
        struct sub_node *sn = sub_of(redis_nodes_get(s->ns, i));
        /* Pinged every SUB_PING_MS: silence means it hangs. */
        uint64_t owed = redis_node_ready(sn->node) ? redis_node_last_read(sn->node) : 0;
        if (!redis_nodes_watch(s->ns, sn->node, owed, now, &next))
            continue;
        if (redis_node_ready(sn->node) && now - sn->last_ping_ms >= SUB_PING_MS) {
            sn->last_ping_ms = now;
            if (!send_cmd(s, sn, SUB_CMD_PING, NULL, 0))
                fail(s, sn, now);
        }
    }
    if (s->stalled && s->next_stall_try_ms < next)
        next = s->next_stall_try_ms;
    if (s->refused_retry_ms && s->refused_retry_ms < next)
        next = s->refused_retry_ms;
    uint64_t rd = redis_nodes_due(s->ns);
    if (rd && rd < next)
        next = rd;
    return next;
}

/* A node's link is ready (redis_nodes_calls.ready): its stalled rooms are
 * subscribed at once, and the rooms that waited for the link are sent. */
static void link_ready(void *owner, struct redis_node *n, bool was_failing, uint64_t now)
{
    struct sub *s = owner;
    struct sub_node *sn = redis_node_data(n);
    if (was_failing)
        redis_broker_node_back(s->rb, false);
    sn->last_ping_ms = now;
    s->stalled = true;
    s->next_stall_try_ms = 0;
    struct chan_batch keep = s->batch;
    s->batch = sn->pending;
    sn->pending = (struct chan_batch){0};
    route(s, true, now);
    sn->pending = s->batch;
    s->batch = keep;
}

static const struct redis_nodes_calls CALLS = {
    .init = node_init,
    .drop = node_drop,
    .busy = node_busy,
    .ready = link_ready,
    .reply = on_reply,
    .failed = node_failed,
    .new_map = new_map,
};

/* The broker stops (stop_efd). */
static void on_stop(struct loop *l, struct loop_handler *h, uint32_t events)
{
    (void)l;
    (void)events;
    container_of(h, struct sub, stop)->stopping = true;
}

/* A worker woke the subscriber (wake_efd): rooms to subscribe. */
static void on_woken(struct loop *l, struct loop_handler *h, uint32_t events)
{
    (void)l;
    (void)events;
    loop_eventfd_clear(container_of(h, struct sub, woken)->rb->wake_efd);
}

static void run(struct sub *s)
{
    if (redis_nodes_have_map(s->ns)) { /* single Redis: the map is known from the start */
        struct redis_cluster_map none = {0};
        new_map(s, &none, clock_now_ms());
    }
    for (;;) {
        uint64_t now = clock_now_ms();
        redis_nodes_step(s->ns, now);
        uint64_t next = tend(s, now);
        redis_nodes_forget(s->ns, now);
        if (loop_run_once(&s->loop, next) < 0 || s->stopping)
            break;
    }
}

void *redis_sub_main(void *arg)
{
    struct redis_broker *rb = arg;
    struct sub *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->rb = rb;
    s->stop.fn = on_stop;
    s->woken.fn = on_woken;
    if (loop_init(&s->loop) < 0 || redis_receiver_init(&s->in, rb) < 0 ||
        !(s->ns = redis_nodes_new(rb->cfg, &s->loop, rb->tls_sub, &CALLS, s,
                                  sizeof(struct sub_node), SUB_RETRY_MAX_MS)) ||
        loop_add(&s->loop, rb->stop_efd, &s->stop, EPOLLIN) < 0 ||
        loop_add(&s->loop, rb->wake_efd, &s->woken, EPOLLIN) < 0) {
        log_error("redis: the subscriber cannot start (out of memory or descriptors)");
        abort();
    }
    redis_backoff_init(&s->refused_bo);
    run(s);
    atomic_store(&rb->sub_ready, 0);
    /* Nothing is subscribed now: whoever waits for a room gets its welcome. */
    uint64_t gen = registry_sub_gone(rb->rooms);
    if (fanout_room_ready(rb->fanout, NULL, gen))
        log_error("redis: out of memory telling workers that Redis went away");
    redis_nodes_free(s->ns);
    batch_clear(&s->batch);
    free(s->batch.names);

    redis_receiver_free(&s->in);
    loop_free(&s->loop);
    free(s);
    return NULL;
}
