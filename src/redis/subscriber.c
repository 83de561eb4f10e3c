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
#include "config.h"
#include "fanout.h"
#include "fbuf.h"
#include "json.h"
#include "log.h"
#include "redis/backoff.h"
#include "redis/broker_internal.h"
#include "redis/link.h"
#include "redis/message.h"
#include "redis/receive.h"
#include "redis/route.h"
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

enum cmd_kind { CMD_PING, CMD_SUB, CMD_UNSUB, CMD_GLOBAL, CMD_UNGLOBAL };

/* A command sent on a link, kept until Redis answered it all. */
struct sub_cmd {
    enum cmd_kind kind;
    char **ch; /* its channels, heap */
    size_t n, next; /* confirmations come in argument order */
};

/* Room channels collected to be sent (heap names). */
struct chan_batch {
    char **names;
    size_t n, cap;
    bool oom;
};

struct sub_node {
    struct redis_link link;
    struct sub_cmd *cmds; /* ring of commands awaiting answers */
    size_t chead, cn, ccap;
    bool global;          /* realtime:global is subscribed (or asked) here */
    struct chan_batch pending; /* rooms to subscribe once the link is ready */
    uint64_t last_ping_ms;
};

struct sub {
    struct redis_broker *rb;
    int epfd;
    struct redis_route rt;
    struct sub_node *nodes[REDIS_NODES_MAX];
    unsigned nnodes;
    struct chan_batch batch;
    bool live;                 /* registry_sub_live done (a map came) */
    bool stalled;              /* rooms wait to be subscribed again */
    uint64_t next_stall_try_ms;
    unsigned global_pick;
    bool ever_ready;
    struct redis_backoff refused_bo; /* refused rooms are retried this slowly */
    uint64_t refused_retry_ms;       /* 0: none refused */
    unsigned back_seen;              /* rb->back_gen when last looked at */
    uint64_t forget_at_ms;           /* forget_nodes looks again then */
    uint64_t refused_log_since_ms;   /* the log period under way */
    unsigned refused_logged;         /* rooms logged one by one in it */
    unsigned refused_unlogged;       /* rooms refused in it past those */
    struct redis_receiver in; /* checks and delivers what arrives */
    const struct redis_cluster_node *failed; /* for pick_on_node */
    const struct redis_cluster_map *old_map; /* for pick_moved */
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
    struct sub *s = arg;
    char channel[192];
    redis_msg_channel(room, channel, sizeof(channel));
    const struct redis_cluster_node *o = redis_route_owner(&s->rt, redis_route_slot(channel));
    return !o || redis_same_node(o, s->failed->host, s->failed->port);
}

static bool pick_moved(void *arg, const char *room)
{
    struct sub *s = arg;
    char channel[192];
    redis_msg_channel(room, channel, sizeof(channel));
    unsigned slot = redis_route_slot(channel);
    const struct redis_cluster_node *a = redis_cluster_owner(s->old_map, slot);
    const struct redis_cluster_node *b = redis_route_owner(&s->rt, slot);
    return !a || !b || !redis_same_node(a, b->host, b->port);
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
    struct fbuf *b = out.oom ? NULL : fbuf_new_broadcast(out.p, out.len, room);
    json_out_free(&out);
    if (!b)
        return;
    if (fanout_post(s->rb->fanout, b, FANOUT_FROM_REDIS) == -EAGAIN)
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

static struct sub_node *node_for(struct sub *s, const struct redis_cluster_node *n)
{
    if (!n)
        return NULL;
    for (unsigned i = 0; i < s->nnodes; i++)
        if (redis_same_node(n, s->nodes[i]->link.host, s->nodes[i]->link.port))
            return s->nodes[i];
    if (s->nnodes == REDIS_NODES_MAX)
        return NULL;
    struct sub_node *sn = calloc(1, sizeof(*sn));
    if (!sn)
        return NULL;
    redis_link_init(&sn->link, n->host, n->port, &s->rt.env);
    /* While a subscription is down, other pods' messages are lost for this
     * pod: its links retry at least every SUB_RETRY_MAX_MS, which is also
     * what a publisher's hold on a node that returns waits for (unless the
     * node refuses the pod: drop_link). */
    redis_backoff_cap(&sn->link.bo, SUB_RETRY_MAX_MS);
    s->nodes[s->nnodes++] = sn;
    return sn;
}

static void cmd_free(struct sub_cmd *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->ch[i]);
    free(c->ch);
    c->ch = NULL;
    c->n = 0;
}

static struct sub_cmd *cmd_head(struct sub_node *sn)
{
    return sn->cn ? &sn->cmds[sn->chead] : NULL;
}

static void cmd_pop(struct sub_node *sn)
{
    cmd_free(&sn->cmds[sn->chead]);
    sn->chead = (sn->chead + 1) % sn->ccap;
    sn->cn--;
}

static bool cmd_push(struct sub_node *sn, struct sub_cmd c)
{
    if (sn->cn == sn->ccap) {
        size_t cap = sn->ccap ? sn->ccap * 2 : 16;
        struct sub_cmd *v = malloc(cap * sizeof(*v));
        if (!v)
            return false;
        for (size_t i = 0; i < sn->cn; i++)
            v[i] = sn->cmds[(sn->chead + i) % sn->ccap];
        free(sn->cmds);
        sn->cmds = v;
        sn->ccap = cap;
        sn->chead = 0;
    }
    sn->cmds[(sn->chead + sn->cn) % sn->ccap] = c;
    sn->cn++;
    return true;
}

static const char *verb(const struct sub *s, enum cmd_kind k)
{
    bool sharded = s->rt.mode == REDIS_ROUTE_CLUSTER;
    switch (k) {
    case CMD_PING: return "PING";
    case CMD_SUB: return sharded ? "SSUBSCRIBE" : "SUBSCRIBE";
    case CMD_UNSUB: return sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE";
    case CMD_GLOBAL: return "SUBSCRIBE";
    case CMD_UNGLOBAL: return "UNSUBSCRIBE";
    }
    return "PING";
}

/* Sends a command for channels ch[0..n) (copied). Returns false when the
 * link failed or memory ran out (the link is then failed by the caller). */
static bool send_cmd(struct sub *s, struct sub_node *sn, enum cmd_kind k, char *const *ch, size_t n)
{
    const char *argv[CHANNELS_PER_COMMAND + 1];
    size_t len[CHANNELS_PER_COMMAND + 1];
    struct sub_cmd c = {.kind = k, .n = 0};
    if (n && !(c.ch = calloc(n, sizeof(*c.ch))))
        return false;
    argv[0] = verb(s, k);
    len[0] = strlen(argv[0]);
    for (size_t i = 0; i < n; i++) {
        if (!(c.ch[i] = strdup(ch[i]))) {
            c.n = i;
            cmd_free(&c);
            return false;
        }
        c.n = i + 1;
        argv[i + 1] = c.ch[i];
        len[i + 1] = strlen(c.ch[i]);
    }
    if (k == CMD_PING)
        c.n = 0;
    if (!cmd_push(sn, c)) {
        cmd_free(&c);
        return false;
    }
    return redis_link_send(&sn->link, (int)n + 1, argv, len) && redis_link_flush(&sn->link);
}

static void node_failed(struct sub *s, struct sub_node *sn, uint64_t now, bool hung);
static void drop_link(struct sub *s, struct sub_node *sn, uint64_t now, bool hung);

struct slotted {
    unsigned slot;
    char *channel;
};

static int by_slot(const void *a, const void *b)
{
    const struct slotted *x = a, *y = b;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* Opens a link that is down when its backoff allows. */
static void wake_link(struct sub *s, struct sub_node *sn, uint64_t now)
{
    if (sn->link.phase == REDIS_LINK_DOWN && now >= sn->link.retry_at_ms &&
        !redis_link_open(&sn->link, now))
        node_failed(s, sn, now, false);
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
    bool per_slot = s->rt.mode == REDIS_ROUTE_CLUSTER;
    for (size_t i = 0; i < n; i++)
        v[i] = (struct slotted){redis_route_slot(cb->names[i]), cb->names[i]};
    if (per_slot)
        qsort(v, n, sizeof(*v), by_slot);
    char *chans[CHANNELS_PER_COMMAND];
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && (!per_slot || v[end].slot == v[i].slot) &&
               end - i < CHANNELS_PER_COMMAND)
            end++;
        struct sub_node *sn = node_for(s, redis_route_owner(&s->rt, v[i].slot));
        if (sn)
            wake_link(s, sn, now);
        bool coming = sn && sn->link.phase != REDIS_LINK_DOWN && sn->link.phase != REDIS_LINK_READY;
        if (subscribe && coming) {
            /* Its link is being made: the rooms wait for it (and their
             * joins for them); a failure stalls them. */
            for (size_t j = i; j < end; j++)
                batch_add_channel(&sn->pending, v[j].channel);
        } else if (sn && sn->link.phase == REDIS_LINK_READY) {
            for (size_t j = i; j < end; j++)
                chans[j - i] = v[j].channel;
            if (!send_cmd(s, sn, subscribe ? CMD_SUB : CMD_UNSUB, chans, end - i))
                node_failed(s, sn, now, false);
            else
                atomic_fetch_add(subscribe ? &rb->counters.subscribes : &rb->counters.unsubscribes,
                                 (uint64_t)(end - i));
        } else if (subscribe) {
            /* Its node is down: a failover may have moved the slot, so the
             * map is asked again (at most every 200 ms) while rooms wait. */
            for (size_t j = i; j < end; j++)
                stall_room(s, room_of(v[j].channel));
            redis_route_want(&s->rt);
        }
        i = end;
    }
    free(v);
    batch_clear(cb);
}

/* A link failed: its rooms stall until they are subscribed again. */
static void node_failed(struct sub *s, struct sub_node *sn, uint64_t now, bool hung)
{
    struct redis_broker *rb = s->rb;
    struct redis_link *l = &sn->link;
    if (l->phase == REDIS_LINK_READY || sn->global) {
        if (sn->global)
            log_warn("redis: the link carrying realtime:global failed (%s); local delivery goes "
                     "on, /readyz answers 503 until it is back",
                     l->err);
        else
            log_warn("redis: %s; its rooms are subscribed again where Redis then serves them",
                     l->err);
        atomic_fetch_add(&rb->counters.reconnects, 1);
    } else {
        redis_backoff_log(&l->bo, "subscriber", l->err);
    }
    if (hung)
        redis_route_sick(&s->rt, l->host, l->port, now);
    drop_link(s, sn, now, hung);
    redis_route_want(&s->rt);
}

/* Closes a node's link: global moves, its commands are forgotten and its
 * rooms stall until they are subscribed where their slot is served. */
static void drop_link(struct sub *s, struct sub_node *sn, uint64_t now, bool hung)
{
    struct redis_broker *rb = s->rb;
    struct redis_link *l = &sn->link;
    if (sn->global) {
        atomic_store(&rb->sub_ready, 0);
        sn->global = false;
        if (s->rt.mode == REDIS_ROUTE_CLUSTER)
            s->global_pick++;
    }
    while (sn->cn)
        cmd_pop(sn);
    batch_clear(&sn->pending);
    /* A node that refuses the pod (a password it does not have) is tried
     * ever more slowly; one that was away, at least every second. */
    redis_backoff_cap(&l->bo, l->refused ? REDIS_BACKOFF_MAX_MS : SUB_RETRY_MAX_MS);
    redis_link_close(l, now, hung);
    struct redis_cluster_node node;
    snprintf(node.host, sizeof(node.host), "%s", l->host);
    node.port = l->port;
    s->failed = &node;
    registry_sub_stall(rb->rooms, pick_on_node, s, release_waiters, rb);
    s->failed = NULL;
    s->stalled = true;
}

/* The node that carries realtime:global: one master, a different one after
 * each failure; subscribed once its link is ready. */
static void ensure_global(struct sub *s, uint64_t now)
{
    for (unsigned i = 0; i < s->nnodes; i++)
        if (s->nodes[i]->global)
            return;
    const struct redis_cluster_map *m = &s->rt.map;
    if (!s->rt.have_map || m->n == 0)
        return;
    struct sub_node *sn = NULL;
    /* A master that is not known to hang and did not just fail. */
    for (size_t k = 0; k < m->n && !sn; k++) {
        size_t i = (s->global_pick + k) % m->n;
        struct sub_node *c = node_for(s, &m->ranges[i].master);
        if (c && !redis_link_sick(&c->link, now) &&
            !(c->link.phase == REDIS_LINK_DOWN && now < c->link.retry_at_ms)) {
            s->global_pick = (unsigned)i;
            sn = c;
        }
    }
    if (!sn)
        sn = node_for(s, &m->ranges[s->global_pick % m->n].master);
    if (!sn)
        return;
    wake_link(s, sn, now);
    if (sn->link.phase != REDIS_LINK_READY)
        return;
    char *g = REDIS_CHANNEL_GLOBAL;
    if (!send_cmd(s, sn, CMD_GLOBAL, &g, 1)) {
        node_failed(s, sn, now, false);
        return;
    }
    sn->global = true;
}

/* Redis refused a command. */
static void on_error(struct sub *s, struct sub_node *sn, const redisReply *r, uint64_t now,
                     bool *fail)
{
    struct sub_cmd *c = cmd_head(sn);
    if (!c || c->kind == CMD_PING || c->kind == CMD_GLOBAL) {
        snprintf(sn->link.err, sizeof(sn->link.err), "%s:%u refused %s: %.200s", sn->link.host,
                 sn->link.port, c && c->kind == CMD_GLOBAL ? "realtime:global" : "a command",
                 r->str);
        *fail = true;
        return;
    }
    struct sub_cmd cmd = *c;
    c->ch = NULL;
    c->n = 0;
    cmd_pop(sn);
    if (cmd.kind == CMD_SUB) {
        bool moved = strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0;
        if (moved) {
            for (size_t i = cmd.next; i < cmd.n; i++)
                stall_room(s, room_of(cmd.ch[i]));
            redis_route_want(&s->rt);
        } else if (cmd.n - cmd.next > 1) {
            /* One of them is refused: each half is asked on its own, until
             * the refused channel is alone. */
            size_t left = cmd.n - cmd.next, half = left / 2;
            if (!send_cmd(s, sn, CMD_SUB, cmd.ch + cmd.next, half) ||
                !send_cmd(s, sn, CMD_SUB, cmd.ch + cmd.next + half, left - half))
                *fail = true;
        } else if (cmd.n > cmd.next) {
            refuse_room(s, room_of(cmd.ch[cmd.next]), r->str);
        }
    }
    /* An unsubscription refused changes nothing we rely on. */
    cmd_free(&cmd);
    (void)now;
}

/* A confirmation of kind for channel: the oldest command's next channel,
 * or else a push of the node's own (a slot that moved away). */
static void on_confirm(struct sub *s, struct sub_node *sn, const char *kind, const redisReply *ch)
{
    bool sub = strcmp(kind, "subscribe") == 0 || strcmp(kind, "ssubscribe") == 0;
    bool unsub = strcmp(kind, "unsubscribe") == 0 || strcmp(kind, "sunsubscribe") == 0;
    if (!sub && !unsub)
        return;
    struct sub_cmd *c = cmd_head(sn);
    bool ours = c && c->next < c->n &&
                (sub ? (c->kind == CMD_SUB || c->kind == CMD_GLOBAL)
                     : (c->kind == CMD_UNSUB || c->kind == CMD_UNGLOBAL)) &&
                strlen(c->ch[c->next]) == ch->len && memcmp(c->ch[c->next], ch->str, ch->len) == 0;
    if (ours && ++c->next == c->n)
        cmd_pop(sn);
    char room[WS_HS_ROOM_MAX + 1];
    if (redis_msg_room(ch->str, ch->len, room) < 0)
        return;
    struct redis_broker *rb = s->rb;
    if (sub && !room[0]) {
        if (!atomic_load(&rb->sub_ready)) {
            atomic_store(&rb->sub_ready, 1);
            redis_link_worked(&sn->link);
            if (s->ever_ready)
                log_info("redis: subscriber subscribed again (realtime:global on %s:%u)",
                         sn->link.host, sn->link.port);
            else
                log_info("redis: connected to %s:%u, subscribed", sn->link.host, sn->link.port);
            s->ever_ready = true;
        }
    } else if (sub) {
        redis_link_worked(&sn->link);
        if (registry_sub_allowed(rb->rooms, room)) {
            log_info("redis: Redis now allows the channel of room %s", room);
            atomic_store(&rb->counters.rooms_refused, registry_sub_refused_rooms(rb->rooms));
        }
        if (registry_sub_confirmed(rb->rooms, room))
            release_waiters(rb, room);
    } else if (!ours && room[0]) {
        /* The node no longer serves the room's slot. */
        stall_room(s, room);
        redis_route_want(&s->rt);
    }
}

/* Handles one reply on a node's link. Returns false when the link must go. */
static bool on_reply(struct sub *s, struct sub_node *sn, redisReply *r, uint64_t now)
{
    bool fail = false;
    if (r->type == REDIS_REPLY_ERROR) {
        on_error(s, sn, r, now, &fail);
        return !fail;
    }
    struct sub_cmd *c = cmd_head(sn);
    if (r->type == REDIS_REPLY_STATUS) { /* +PONG outside subscribe mode */
        if (c && c->kind == CMD_PING)
            cmd_pop(sn);
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
        if (c && c->kind == CMD_PING)
            cmd_pop(sn);
        return true;
    }
    if (r->element[1]->type == REDIS_REPLY_STRING)
        on_confirm(s, sn, kind, r->element[1]);
    return true;
}

/* ---- the loop ---- */

/* A new map: at the first, every hosted room is subscribed; later, rooms
 * whose slot changed masters stall, to be subscribed where they now live. */
static void new_map(struct sub *s, const struct redis_cluster_map *old, uint64_t now)
{
    struct redis_broker *rb = s->rb;
    if (!s->live) {
        s->live = true;
        registry_sub_live(rb->rooms, batch_add, &s->batch);
        route(s, true, now);
        return;
    }
    s->old_map = old;
    registry_sub_stall(rb->rooms, pick_moved, s, release_waiters, rb);
    s->old_map = NULL;
    s->stalled = true;
    /* realtime:global stays where it is while that node is a master. */
    for (unsigned i = 0; i < s->nnodes; i++) {
        struct sub_node *sn = s->nodes[i];
        if (!sn->global)
            continue;
        if (!redis_route_is_master(&s->rt, sn->link.host, sn->link.port)) {
            char *g = REDIS_CHANNEL_GLOBAL;
            sn->global = false;
            atomic_store(&rb->sub_ready, 0);
            if (sn->link.phase == REDIS_LINK_READY && !send_cmd(s, sn, CMD_UNGLOBAL, &g, 1))
                node_failed(s, sn, now, false);
        }
    }
    /* A node that is no master of any slot now (a demoted master, which may
     * replicate the new one) is let go: rooms still subscribed there would
     * otherwise arrive twice, from it and from where they moved. */
    for (unsigned i = 0; i < s->nnodes; i++) {
        struct sub_node *sn = s->nodes[i];
        if (sn->link.phase != REDIS_LINK_DOWN &&
            !redis_route_is_master(&s->rt, sn->link.host, sn->link.port)) {
            log_info("redis: %s:%u serves no slot now; its subscriptions are let go",
                     sn->link.host, sn->link.port);
            drop_link(s, sn, now, false);
        }
    }
}

static void step_route(struct sub *s, uint32_t events, uint64_t now)
{
    struct redis_cluster_map old = {0};
    if (redis_route_step(&s->rt, events, now, &old) == 1) {
        new_map(s, &old, now);
        redis_cluster_map_free(&old);
    }
}

/* A node answered the publisher again: links that are down, and the
 * rooms stalled on them, are tried now rather than after their backoff. */
static void retry_now(struct sub *s, uint64_t now)
{
    for (unsigned i = 0; i < s->nnodes; i++) {
        struct redis_link *l = &s->nodes[i]->link;
        if (l->phase == REDIS_LINK_DOWN && l->retry_at_ms > now)
            l->retry_at_ms = now;
    }
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
    for (unsigned i = 0; i < s->nnodes; i++) {
        struct sub_node *sn = s->nodes[i];
        struct redis_link *l = &sn->link;
        if (redis_link_late(l, now)) {
            node_failed(s, sn, now, true);
            continue;
        }
        if (l->phase == REDIS_LINK_READY) {
            if (now >= l->last_read_ms + REDIS_LINK_COMMAND_MS) {
                snprintf(l->err, sizeof(l->err), "%s:%u: no answer for %d ms", l->host, l->port,
                         REDIS_LINK_COMMAND_MS);
                node_failed(s, sn, now, true);
                continue;
            }
            if (now - sn->last_ping_ms >= SUB_PING_MS) {
                sn->last_ping_ms = now;
                if (!send_cmd(s, sn, CMD_PING, NULL, 0))
                    node_failed(s, sn, now, false);
            }
        } else if (l->phase != REDIS_LINK_DOWN && l->deadline_ms < next) {
            next = l->deadline_ms;
        } else if (l->phase == REDIS_LINK_DOWN && l->retry_at_ms > now && l->retry_at_ms < next) {
            next = l->retry_at_ms;
        }
    }
    if (s->stalled && s->next_stall_try_ms < next)
        next = s->next_stall_try_ms;
    if (s->refused_retry_ms && s->refused_retry_ms < next)
        next = s->refused_retry_ms;
    uint64_t rd = redis_route_due(&s->rt);
    if (rd && rd < next)
        next = rd;
    return next;
}

/* A node's link is ready: its stalled rooms are subscribed at once, and
 * the rooms that waited for the link are sent. */
static void link_ready(struct sub *s, struct sub_node *sn, uint64_t now)
{
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

static void on_event(struct sub *s, void *ptr, uint32_t events, uint64_t now)
{
    if (redis_route_owns(&s->rt, ptr)) {
        step_route(s, events, now);
        return;
    }
    struct sub_node *sn = NULL;
    for (unsigned i = 0; i < s->nnodes && !sn; i++)
        if (&s->nodes[i]->link == ptr)
            sn = s->nodes[i];
    if (!sn)
        return;
    for (unsigned reads = 1;; reads++, events = EPOLLIN) {
        bool ready;
        if (!redis_link_io(&sn->link, events, now, &ready)) {
            node_failed(s, sn, now, false);
            return;
        }
        if (ready) {
            if (redis_backoff_failing(&sn->link.bo))
                redis_broker_node_back(s->rb, false);
            link_ready(s, sn, now);
        }
        /* The replies of each chunk before the next (link.h). */
        redisReply *r;
        int got;
        while ((got = redis_link_reply(&sn->link, &r)) > 0) {
            bool keep = on_reply(s, sn, r, now);
            freeReplyObject(r);
            if (!keep) {
                node_failed(s, sn, now, false);
                return;
            }
        }
        if (got < 0) {
            node_failed(s, sn, now, false);
            return;
        }
        if (!redis_link_again(&sn->link, reads))
            return;
    }
}

/* Frees a node's link and queues. */
static void free_node(struct sub_node *sn)
{
    while (sn->cn)
        cmd_pop(sn);
    free(sn->cmds);
    batch_clear(&sn->pending);
    free(sn->pending.names);
    redis_link_free(&sn->link);
    free(sn);
}

/* Nodes that serve no slot of the map, are down and hold nothing are
 * freed, so a pod that sees many masters over its life (Kubernetes gives a
 * restarted Redis a new address) never runs out of REDIS_NODES_MAX. Called
 * between epoll batches, never inside one (a batch may still name them). */
static void forget_nodes(struct sub *s, uint64_t now)
{
    if (!s->rt.have_map || now < s->forget_at_ms)
        return;
    s->forget_at_ms = now + NODES_FORGET_MS;
    for (unsigned i = 0; i < s->nnodes;) {
        struct sub_node *sn = s->nodes[i];
        bool serves = redis_route_is_master(&s->rt, sn->link.host, sn->link.port);
        if (serves || sn->global || sn->cn || sn->pending.n || sn->link.phase != REDIS_LINK_DOWN) {
            i++;
            continue;
        }
        free_node(sn);
        s->nodes[i] = s->nodes[--s->nnodes];
    }
}

static void run(struct sub *s)
{
    struct redis_broker *rb = s->rb;
    struct epoll_event evs[64];
    if (s->rt.have_map) { /* single Redis: the map is known from the start */
        struct redis_cluster_map none = {0};
        new_map(s, &none, clock_now_ms());
    }
    for (;;) {
        uint64_t now = clock_now_ms();
        step_route(s, 0, now);
        uint64_t next = tend(s, now);
        forget_nodes(s, now);
        int timeout = next > now ? (int)(next - now) : 0;
        int ne = epoll_wait(s->epfd, evs, 64, timeout);
        if (ne < 0 && errno != EINTR)
            break;
        now = clock_now_ms();
        for (int i = 0; i < ne; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &rb->stop_efd)
                return;
            if (ptr == &rb->wake_efd) {
                uint64_t v;
                ssize_t rd = read(rb->wake_efd, &v, sizeof(v));
                (void)rd;
                continue;
            }
            on_event(s, ptr, evs[i].events, now);
        }
    }
}

void *redis_sub_main(void *arg)
{
    struct redis_broker *rb = arg;
    struct sub *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->rb = rb;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev1 = {.events = EPOLLIN, .data.ptr = &rb->stop_efd};
    struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = &rb->wake_efd};
    if (s->epfd < 0 || redis_receiver_init(&s->in, rb) < 0 || redis_route_init(&s->rt, rb->cfg, s->epfd, rb->tls_sub) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, rb->stop_efd, &ev1) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, rb->wake_efd, &ev2) < 0) {
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
    for (unsigned i = 0; i < s->nnodes; i++)
        free_node(s->nodes[i]);
    redis_route_free(&s->rt);
    batch_clear(&s->batch);
    free(s->batch.names);

    redis_receiver_free(&s->in);
    close(s->epfd);
    free(s);
    return NULL;
}
