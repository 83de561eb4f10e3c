/* broker_cluster.c: the broker's two threads against a Redis Cluster
 * (REDIS_CLUSTER=true).
 *
 * DESIGN: each thread keeps its own copy of the slot map (CLUSTER SLOTS,
 * cluster.h) and its own links, one connection per node it needs.
 * - The publisher sends a room's message with SPUBLISH to the master that
 *   owns its channel's slot, and a global message with PUBLISH to any master
 *   (classic pub/sub is broadcast over the cluster bus, so every node's
 *   subscribers see it). A batch is pipelined per node; on each node the
 *   first failure (a broken link, MOVED, an error answer) makes that message
 *   and the ones after it on that node unconfirmed: they go back to the front
 *   of the outbox, in order, and the map is fetched again. A room's messages
 *   all go to one node, so their order holds.
 * - The subscriber SSUBSCRIBEs each hosted room on the master that owns its
 *   slot (channels of one slot per command) and SUBSCRIBEs realtime:global on
 *   one master. A link that fails or hangs (no answer to its PING for 3 s),
 *   a node that pushes sunsubscribe (its slot moved), or a new map that moves
 *   slots, stalls the rooms concerned (registry.h: their joins stop waiting);
 *   the subscriber fetches the map again and subscribes them where they now
 *   live, twice a second until that works. A failover is therefore "the
 *   node's link fails, the map shows the promoted replica, the rooms are
 *   subscribed there". Rooms on other nodes are not touched. */
#include <errno.h>
#include <hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fanout.h"
#include "fbuf.h"
#include "log.h"
#include "redis/broker_internal.h"
#include "redis/cluster.h"
#include "redis/message.h"
#include "room/registry.h"
#include "server.h"

#define LINKS_MAX 64
/* The map is fetched at most this often, however many failures ask. */
#define REFRESH_MIN_MS 200
/* Stalled rooms are tried again this often. */
#define STALL_RETRY_MS 500
/* A node that refused a connection is not tried again before this. */
#define LINK_RETRY_MS 250

struct link {
    struct redis_cluster_node node;
    redisContext *c; /* NULL while not connected */
    int fd;          /* c's socket, or -1: written under rb->lock */
    uint64_t last_seen_ms, last_ping_ms, retry_at_ms;
    bool global; /* the subscriber's link that carries realtime:global */
};

/* One thread's view of the cluster; owned by that thread, except that
 * nlinks and each link's fd change under rb->lock (cluster_shutdown_sockets
 * reads them). */
struct redis_cluster_state {
    struct link links[LINKS_MAX];
    unsigned nlinks;
    int probe_fd; /* the connection fetching the map, or -1 */
    struct redis_cluster_map map;
    bool have_map, need_refresh;
    uint64_t last_refresh_ms;
    unsigned global_pick; /* which master carries realtime:global (subscriber) */
};

/* ---- the map ---- */

static unsigned channel_slot(const char *channel)
{
    return redis_cluster_slot(channel, strlen(channel));
}

static bool same_node(const struct redis_cluster_node *a, const struct redis_cluster_node *b)
{
    return a && b && a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* Fetches CLUSTER SLOTS from the first node that answers: the masters of
 * the map we have, then the seeds of REDIS_URL. Keeps the old map in *old
 * (the caller frees it) when old is not NULL. */
static bool fetch_map(struct redis_broker *rb, struct redis_cluster_state *cs,
                      struct redis_cluster_map *old, char *err, size_t errlen)
{
    const struct redis_url *u = &rb->cfg->redis;
    size_t ncand = cs->map.n + u->nseeds;
    cs->last_refresh_ms = server_now_ms();
    snprintf(err, errlen, "no node of the cluster answered");
    for (size_t i = 0; i < ncand; i++) {
        const char *host;
        uint16_t port;
        if (i < cs->map.n) {
            host = cs->map.ranges[i].master.host;
            port = cs->map.ranges[i].master.port;
        } else {
            host = u->seeds[i - cs->map.n].host;
            port = u->seeds[i - cs->map.n].port;
        }
        redisContext *c = connect_node(rb, host, port, &cs->probe_fd, err, errlen);
        if (!c)
            continue;
        redisReply *r = redisCommand(c, "CLUSTER SLOTS");
        struct redis_cluster_map m = {0};
        bool ok = r && redis_cluster_parse_slots(r, &m) == 0 && m.n > 0;
        if (!ok)
            snprintf(err, errlen, "%s:%u gave no usable CLUSTER SLOTS%s%s", host, port,
                     r && r->type == REDIS_REPLY_ERROR ? ": " : "",
                     r && r->type == REDIS_REPLY_ERROR ? r->str : "");
        if (r)
            freeReplyObject(r);
        free_context(rb, c, &cs->probe_fd);
        if (!ok) {
            redis_cluster_map_free(&m);
            continue;
        }
        if (old)
            *old = cs->map;
        else
            redis_cluster_map_free(&cs->map);
        cs->map = m;
        cs->have_map = true;
        cs->need_refresh = false;
        return true;
    }
    if (old)
        *old = (struct redis_cluster_map){0};
    return false;
}

/* ---- links ---- */

static struct link *find_link(struct redis_broker *rb, struct redis_cluster_state *cs,
                              const struct redis_cluster_node *n)
{
    for (unsigned i = 0; i < cs->nlinks; i++)
        if (same_node(&cs->links[i].node, n))
            return &cs->links[i];
    if (cs->nlinks == LINKS_MAX)
        return NULL;
    pthread_mutex_lock(&rb->lock);
    struct link *l = &cs->links[cs->nlinks];
    *l = (struct link){.node = *n, .fd = -1};
    cs->nlinks++;
    pthread_mutex_unlock(&rb->lock);
    return l;
}

/* The connected link to node n, connecting when needed (not more often than
 * LINK_RETRY_MS). NULL with why in err. */
static struct link *link_to(struct redis_broker *rb, struct redis_cluster_state *cs,
                            const struct redis_cluster_node *n, uint64_t now, char *err,
                            size_t errlen)
{
    struct link *l = n ? find_link(rb, cs, n) : NULL;
    if (!l) {
        snprintf(err, errlen, n ? "too many cluster nodes" : "no node serves that slot");
        return NULL;
    }
    if (l->c)
        return l;
    if (now < l->retry_at_ms) {
        snprintf(err, errlen, "%s:%u refused a moment ago", n->host, n->port);
        return NULL;
    }
    l->c = connect_node(rb, n->host, n->port, &l->fd, err, errlen);
    if (!l->c) {
        l->retry_at_ms = now + LINK_RETRY_MS;
        return NULL;
    }
    l->last_seen_ms = l->last_ping_ms = now;
    return l;
}

static void link_close(struct redis_broker *rb, struct link *l, uint64_t now)
{
    if (l->c)
        free_context(rb, l->c, &l->fd);
    l->c = NULL;
    l->global = false;
    l->retry_at_ms = now + LINK_RETRY_MS;
}

void cluster_shutdown_sockets(struct redis_broker *rb)
{
    struct redis_cluster_state *both[2] = {rb->pub_cl, rb->sub_cl};
    for (int k = 0; k < 2; k++) {
        struct redis_cluster_state *cs = both[k];
        if (!cs)
            continue;
        if (cs->probe_fd >= 0)
            shutdown(cs->probe_fd, SHUT_RDWR);
        for (unsigned i = 0; i < cs->nlinks; i++)
            if (cs->links[i].fd >= 0)
                shutdown(cs->links[i].fd, SHUT_RDWR);
    }
}

static struct redis_cluster_state *state_new(void)
{
    struct redis_cluster_state *cs = calloc(1, sizeof(*cs));
    if (cs)
        cs->probe_fd = -1;
    return cs;
}

static void state_free(struct redis_cluster_state *cs)
{
    if (!cs)
        return;
    redis_cluster_map_free(&cs->map);
    free(cs);
}

void cluster_free(struct redis_broker *rb)
{
    state_free(rb->pub_cl);
    state_free(rb->sub_cl);
    rb->pub_cl = rb->sub_cl = NULL;
}

int cluster_init(struct redis_broker *rb)
{
    rb->pub_cl = state_new();
    rb->sub_cl = state_new();
    if (!rb->pub_cl || !rb->sub_cl) {
        cluster_free(rb);
        return -1;
    }
    return 0;
}

/* ---- publisher ---- */

/* A link to any master, for realtime:global (classic pub/sub reaches every
 * node's subscribers whichever node it is published on). */
static struct link *any_master(struct redis_broker *rb, struct redis_cluster_state *cs,
                               uint64_t now, char *err, size_t errlen)
{
    for (size_t k = 0; k < cs->map.n; k++) {
        size_t i = (cs->global_pick + k) % cs->map.n;
        struct link *l = link_to(rb, cs, &cs->map.ranges[i].master, now, err, errlen);
        if (l) {
            cs->global_pick = (unsigned)i;
            return l;
        }
    }
    return NULL;
}

/* The publisher's loop. A batch is the oldest parked messages (those whose
 * node could not take them before) followed by new ones from the outbox.
 * What a node does not confirm is parked again, in order (parked ones in
 * front, new ones behind), so messages for the other nodes never wait behind
 * a node that is down, and one channel's messages never overtake each other:
 * all of a channel's go to one node, and after a failure on a link nothing
 * more is sent on it in that pass. */
static void publisher_loop(struct redis_broker *rb, struct outbox *parked,
                           struct outbox_item *batch, int *where, bool *ok)
{
    struct redis_cluster_state *cs = rb->pub_cl;
    struct backoff bo;
    backoff_init(&bo);
    uint64_t last_sweep = server_now_ms();
    char channel[192];
    for (;;) {
        if (!cs->have_map || cs->need_refresh) {
            uint64_t since = server_now_ms() - cs->last_refresh_ms;
            if (cs->have_map && since < REFRESH_MIN_MS &&
                !nap(rb, (uint32_t)(REFRESH_MIN_MS - since)))
                break;
            char err[600];
            if (!fetch_map(rb, cs, NULL, err, sizeof(err))) {
                atomic_store(&rb->pub_connected, 0);
                if (is_stopping(rb))
                    break;
                backoff_log(&bo, "publisher", err);
                if (!nap(rb, backoff_next(&bo)))
                    break;
                continue;
            }
            atomic_store(&rb->pub_connected, 1);
        }
        uint32_t from_parked = outbox_take(parked, batch, BATCH_MAX);
        pthread_mutex_lock(&rb->lock);
        while (rb->outbox.n == 0 && !rb->stopping && from_parked == 0)
            pthread_cond_wait(&rb->cond, &rb->lock);
        bool stopping = rb->stopping;
        uint32_t n = from_parked + outbox_take(&rb->outbox, batch + from_parked,
                                               BATCH_MAX - from_parked);
        pthread_mutex_unlock(&rb->lock);

        uint64_t now = server_now_ms();
        char why[600] = "";
        /* Send: each message to its node's link, pipelined. */
        for (uint32_t i = 0; i < n; i++) {
            struct fbuf *b = batch[i].msg;
            size_t clen = redis_msg_channel(b->room, channel, sizeof(channel));
            struct link *l =
                b->room ? link_to(rb, cs, redis_cluster_owner(&cs->map, channel_slot(channel)), now,
                                  why, sizeof(why))
                        : any_master(rb, cs, now, why, sizeof(why));
            where[i] = -1;
            ok[i] = false;
            if (!l) {
                cs->need_refresh = true;
                continue;
            }
            size_t plen = numbered_payload(rb, &batch[i], channel, clen, now);
            const char *payload = plen ? rb->scratch : (const char *)fbuf_payload(b);
            if (!plen)
                plen = b->len - b->hdr_len;
            if (redisAppendCommand(l->c, b->room ? "SPUBLISH %b %b" : "PUBLISH %b %b", channel,
                                   clen, payload, plen) != REDIS_OK) {
                snprintf(why, sizeof(why), "%s", l->c->errstr);
                link_close(rb, l, now);
                continue;
            }
            where[i] = (int)(l - cs->links);
        }
        /* Confirm: per link, replies come in the order sent; the first
         * failure ends the link (and with it the replies after it). A link
         * closed in this pass is not opened again in it (same now). */
        for (unsigned k = 0; k < cs->nlinks; k++)
            if (cs->links[k].c && !flush_out(cs->links[k].c)) {
                snprintf(why, sizeof(why), "%s", cs->links[k].c->errstr);
                link_close(rb, &cs->links[k], now);
            }
        uint32_t done = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (where[i] < 0)
                continue;
            struct link *l = &cs->links[where[i]];
            if (!l->c)
                continue;
            redisReply *r = NULL;
            if (redisGetReply(l->c, (void **)&r) != REDIS_OK || !r) {
                snprintf(why, sizeof(why), "%s:%u: %s", l->node.host, l->node.port, l->c->errstr);
                link_close(rb, l, now);
                cs->need_refresh = true;
                continue;
            }
            if (r->type == REDIS_REPLY_ERROR) {
                snprintf(why, sizeof(why), "%s:%u answered %s", l->node.host, l->node.port, r->str);
                link_close(rb, l, now);
                cs->need_refresh = true;
            } else {
                ok[i] = true;
                done++;
            }
            freeReplyObject(r);
        }
        /* Confirmed ones are done; the rest are parked, in order. */
        uint32_t back = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (ok[i])
                fbuf_unref(batch[i].msg);
            else if (i < from_parked)
                batch[back++] = batch[i];
        }
        outbox_requeue(parked, batch, back);
        for (uint32_t i = from_parked; i < n; i++)
            if (!ok[i])
                outbox_append(parked, &batch[i]);
        atomic_store(&rb->parked, parked->n);
        atomic_store(&rb->parked_dropped, parked->dropped);
        if (done > 0)
            backoff_reset(&bo);
        now = server_now_ms();
        if (now - last_sweep >= SEQ_SWEEP_MS) {
            seq_table_sweep(rb->tx_seq, now > SEQ_FORGET_TX_MS ? now - SEQ_FORGET_TX_MS : 0);
            last_sweep = now;
        }
        if (done < n) {
            char err[800];
            snprintf(err, sizeof(err), "publishing failed: %s; messages wait in the outbox", why);
            backoff_log(&bo, "publisher", err);
            if (stopping && done == 0)
                break;
            /* Nothing went through: wait a little (a node that is down is
             * tried again about twice a second until the cluster has moved
             * its slots elsewhere). */
            uint32_t wait = backoff_next(&bo);
            if (done == 0 && !nap(rb, wait < STALL_RETRY_MS ? wait : STALL_RETRY_MS))
                break;
            continue;
        }
        if (stopping && n < BATCH_MAX && parked->n == 0)
            break;
    }
}

void *cluster_publisher_main(void *arg)
{
    struct redis_broker *rb = arg;
    struct outbox parked;
    struct outbox_item *batch = malloc(BATCH_MAX * sizeof(*batch));
    int *where = malloc(BATCH_MAX * sizeof(*where));
    bool *ok = malloc(BATCH_MAX * sizeof(*ok));
    if (!batch || !where || !ok || outbox_init(&parked, rb->cfg->redis_outbox) < 0)
        abort();
    publisher_loop(rb, &parked, batch, where, ok);
    atomic_store(&rb->pub_connected, 0);
    uint64_t now = server_now_ms();
    for (unsigned k = 0; k < rb->pub_cl->nlinks; k++)
        link_close(rb, &rb->pub_cl->links[k], now);
    if (parked.n)
        log_warn("redis: %u messages for cluster nodes that were down were never published",
                 parked.n);
    outbox_free(&parked);
    free(batch);
    free(where);
    free(ok);
    return NULL;
}

/* ---- subscriber ---- */

/* What the subscriber carries between passes; its own. */
struct sub {
    struct redis_broker *rb;
    struct redis_cluster_state *cs;
    struct backoff bo;
    bool ever_ready;
    bool stalled;              /* rooms wait to be subscribed again */
    uint64_t last_stall_try_ms;
    const struct redis_cluster_node *failed; /* for pick_on_node */
    const struct redis_cluster_map *old_map; /* for pick_moved */
};

static const char *room_of(const char *channel)
{
    return channel + strlen(REDIS_CHANNEL_ROOM_PREFIX);
}

/* Tells the workers that whoever waited for room may have its welcome. */
static void release_waiters(void *arg, const char *room)
{
    struct redis_broker *rb = arg;
    if (fanout_room_ready(rb->srv->fanout, room, 0))
        log_error("redis: out of memory telling workers about room %s", room);
}

/* Nothing is subscribed any more: every waiter gets its welcome. */
static void all_gone(struct redis_broker *rb)
{
    uint64_t gen = registry_sub_gone(&rb->srv->rooms);
    if (fanout_room_ready(rb->srv->fanout, NULL, gen))
        log_error("redis: out of memory telling workers that the cluster went away");
}

static bool pick_on_node(void *arg, const char *room)
{
    struct sub *s = arg;
    char channel[192];
    redis_msg_channel(room, channel, sizeof(channel));
    return same_node(redis_cluster_owner(&s->cs->map, channel_slot(channel)), s->failed);
}

static bool pick_any(void *arg, const char *room)
{
    (void)arg;
    (void)room;
    return true;
}

static bool pick_moved(void *arg, const char *room)
{
    struct sub *s = arg;
    char channel[192];
    redis_msg_channel(room, channel, sizeof(channel));
    unsigned slot = channel_slot(channel);
    return !same_node(redis_cluster_owner(s->old_map, slot), redis_cluster_owner(&s->cs->map, slot));
}

/* A link failed: its rooms stall until they are subscribed again. */
static void link_failed(struct sub *s, struct link *l, const char *why, uint64_t now)
{
    struct redis_broker *rb = s->rb;
    if (l->global) {
        atomic_store(&rb->sub_ready, 0);
        s->cs->global_pick++;
        log_warn("redis: the link carrying realtime:global (%s:%u) failed (%s); moving it",
                 l->node.host, l->node.port, why);
    } else {
        log_warn("redis: cluster node %s:%u failed (%s); its rooms are subscribed again where "
                 "the cluster now serves them",
                 l->node.host, l->node.port, why);
    }
    atomic_fetch_add(&rb->reconnects, 1);
    struct redis_cluster_node node = l->node;
    link_close(rb, l, now);
    s->failed = &node;
    registry_sub_stall(&rb->srv->rooms, pick_on_node, s, release_waiters, rb);
    s->failed = NULL;
    s->stalled = true;
    s->cs->need_refresh = true;
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

/* Sends SSUBSCRIBE (subscribe) or SUNSUBSCRIBE for the channels collected in
 * rb->subs to the node of each channel's slot, one command per slot (Redis
 * refuses channels of several slots in one). A room whose node cannot be
 * reached stalls when subscribing, and is let be when unsubscribing (nothing
 * to undo on a node we have no link to). Empties rb->subs. */
static void route(struct sub *s, bool subscribe, uint64_t now)
{
    struct redis_broker *rb = s->rb;
    struct chan_batch *cb = &rb->subs;
    size_t n = cb->n;
    struct slotted *v = n && !cb->oom ? malloc(n * sizeof(*v)) : NULL;
    if (cb->oom || (n && !v)) {
        /* Out of memory, with rooms taken from the registry as sent: every
         * subscribed room stalls, so all are tried again (subscribing a
         * room twice is harmless). */
        log_error("redis: out of memory listing rooms to subscribe");
        batch_clear(cb);
        if (subscribe)
            registry_sub_stall(&rb->srv->rooms, pick_any, NULL, release_waiters, rb);
        s->stalled = true;
        return;
    }
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        v[i] = (struct slotted){channel_slot(cb->names[i]), cb->names[i]};
    qsort(v, n, sizeof(*v), by_slot);
    const char *argv[CHANNELS_PER_COMMAND + 1];
    size_t argvlen[CHANNELS_PER_COMMAND + 1];
    argv[0] = subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE";
    argvlen[0] = strlen(argv[0]);
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && v[end].slot == v[i].slot && end - i < CHANNELS_PER_COMMAND)
            end++;
        const struct redis_cluster_node *node = redis_cluster_owner(&s->cs->map, v[i].slot);
        struct link *l = NULL;
        char err[600];
        if (subscribe) {
            l = link_to(rb, s->cs, node, now, err, sizeof(err));
        } else if (node) {
            l = find_link(rb, s->cs, node);
            if (l && !l->c)
                l = NULL;
        }
        if (l) {
            int argc = 1;
            for (size_t j = i; j < end; j++, argc++) {
                argv[argc] = v[j].channel;
                argvlen[argc] = strlen(v[j].channel);
            }
            if (redisAppendCommandArgv(l->c, argc, argv, argvlen) != REDIS_OK || !flush_out(l->c))
                link_failed(s, l, "sending subscriptions failed", now);
            else
                atomic_fetch_add(subscribe ? &rb->subscribes : &rb->unsubscribes,
                                 (uint64_t)(argc - 1));
        } else if (subscribe) {
            for (size_t j = i; j < end; j++) {
                const char *room = room_of(v[j].channel);
                bool waited;
                if (registry_sub_stall_room(&rb->srv->rooms, room, &waited) && waited)
                    release_waiters(rb, room);
            }
            s->stalled = true;
            s->cs->need_refresh = true;
        }
        i = end;
    }
    free(v);
    batch_clear(cb);
}

/* Fetches the map again; rooms whose slot changed hands stall (to be
 * subscribed at the new owner). Returns false when no node answered. */
static bool refresh(struct sub *s, char *err, size_t errlen)
{
    struct redis_cluster_map old;
    if (!fetch_map(s->rb, s->cs, &old, err, errlen))
        return false;
    s->old_map = &old;
    registry_sub_stall(&s->rb->srv->rooms, pick_moved, s, release_waiters, s->rb);
    s->old_map = NULL;
    redis_cluster_map_free(&old);
    s->stalled = true;
    return true;
}

/* The global link: realtime:global on one master, a different one after
 * each failure. */
static void ensure_global(struct sub *s, uint64_t now)
{
    struct redis_cluster_state *cs = s->cs;
    for (unsigned i = 0; i < cs->nlinks; i++)
        if (cs->links[i].global && cs->links[i].c)
            return;
    if (!cs->map.n)
        return;
    const struct redis_cluster_node *n = &cs->map.ranges[cs->global_pick % cs->map.n].master;
    char err[600];
    struct link *l = link_to(s->rb, cs, n, now, err, sizeof(err));
    if (!l) {
        cs->global_pick++;
        cs->need_refresh = true;
        return;
    }
    if (redisAppendCommand(l->c, "SUBSCRIBE %s", REDIS_CHANNEL_GLOBAL) != REDIS_OK ||
        !flush_out(l->c)) {
        link_failed(s, l, "subscribing failed", now);
        return;
    }
    l->global = true;
}

/* Handles one reply on a link. Returns false when the link must go. */
static bool on_reply(struct sub *s, struct link *l, redisReply *r)
{
    struct redis_broker *rb = s->rb;
    if (r->type == REDIS_REPLY_ERROR) {
        struct redis_cluster_redirect rd;
        if (redis_cluster_parse_redirect(r->str, r->len, &rd))
            s->cs->need_refresh = true;
        log_warn("redis: %s:%u refused: %s", l->node.host, l->node.port, r->str);
        return false;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return true;
    const char *kind = r->element[0]->str;
    const redisReply *ch = r->element[1];
    char room[WS_HS_ROOM_MAX + 1];
    if ((strcmp(kind, "message") == 0 || strcmp(kind, "smessage") == 0) && r->elements == 3) {
        deliver_from_redis(rb, ch, r->element[2]);
    } else if (strcmp(kind, "ssubscribe") == 0) {
        if (redis_msg_room(ch->str, ch->len, room) == 0 && room[0] &&
            registry_sub_confirmed(&rb->srv->rooms, room))
            release_waiters(rb, room);
    } else if (strcmp(kind, "subscribe") == 0) {
        if (!atomic_load(&rb->sub_ready)) {
            atomic_store(&rb->sub_ready, 1);
            backoff_reset(&s->bo);
            if (!s->ever_ready)
                log_info("redis: connected to the cluster (%zu slot ranges), subscribed",
                         s->cs->map.n);
            s->ever_ready = true;
        }
    } else if (strcmp(kind, "sunsubscribe") == 0) {
        /* Ours for a room let go (nothing is found), or the node's own when
         * the slot moved away (the room stalls, the map is fetched again). */
        bool waited;
        if (redis_msg_room(ch->str, ch->len, room) == 0 && room[0] &&
            registry_sub_stall_room(&rb->srv->rooms, room, &waited)) {
            if (waited)
                release_waiters(rb, room);
            s->stalled = true;
            s->cs->need_refresh = true;
        }
    }
    return true;
}

/* Reads what a link has; false when it failed (why in err). */
static bool read_link(struct sub *s, struct link *l, uint64_t now, char *err, size_t errlen)
{
    if (redisBufferRead(l->c) != REDIS_OK) {
        snprintf(err, errlen, "connection lost: %s", l->c->errstr);
        return false;
    }
    l->last_seen_ms = now;
    void *reply = NULL;
    while (l->c && redisGetReplyFromReader(l->c, &reply) == REDIS_OK && reply) {
        bool keep = on_reply(s, l, reply);
        freeReplyObject(reply);
        reply = NULL;
        if (!keep) {
            snprintf(err, errlen, "the node refused a command");
            return false;
        }
    }
    if (l->c && l->c->err) {
        snprintf(err, errlen, "connection lost: %s", l->c->errstr);
        return false;
    }
    return true;
}

/* One pass of housekeeping: new rooms, rooms let go, stalled rooms, pings
 * and hangs. */
static void sub_tick(struct sub *s, uint64_t now, uint64_t *last_sweep)
{
    struct redis_broker *rb = s->rb;
    struct redis_cluster_state *cs = s->cs;
    subscriber_tick(rb, now, last_sweep);
    if ((cs->need_refresh || s->stalled) && now - s->last_stall_try_ms >= STALL_RETRY_MS) {
        s->last_stall_try_ms = now;
        char err[600];
        if (cs->need_refresh && !refresh(s, err, sizeof(err)))
            log_debug("redis: %s", err);
        s->stalled = false;
        registry_sub_take_stalled(&rb->srv->rooms, batch_add, &rb->subs);
        route(s, true, now);
    }
    registry_sub_take_queued(&rb->srv->rooms, batch_add, &rb->subs);
    route(s, true, now);
    uint64_t linger = rb->cfg->room_linger_ms;
    if (now > linger) {
        registry_sub_take_expired(&rb->srv->rooms, now - linger, batch_add, &rb->subs);
        route(s, false, now);
    }
    ensure_global(s, now);
    for (unsigned i = 0; i < cs->nlinks; i++) {
        struct link *l = &cs->links[i];
        if (!l->c)
            continue;
        if (now > l->last_seen_ms + COMMAND_TIMEOUT_MS) {
            link_failed(s, l, "no answer for 3000 ms", now);
            continue;
        }
        if (now - l->last_ping_ms >= SUB_PING_MS) {
            l->last_ping_ms = now;
            if (redisAppendCommand(l->c, "PING") != REDIS_OK || !flush_out(l->c))
                link_failed(s, l, "connection lost", now);
        }
    }
}

void *cluster_subscriber_main(void *arg)
{
    struct redis_broker *rb = arg;
    struct sub s = {.rb = rb, .cs = rb->sub_cl};
    backoff_init(&s.bo);
    uint64_t last_sweep = server_now_ms();
    struct pollfd fds[LINKS_MAX + 2];
    struct link *polled[LINKS_MAX];
    for (;;) {
        if (is_stopping(rb))
            break;
        if (!s.cs->have_map) {
            char err[600];
            if (!fetch_map(rb, s.cs, NULL, err, sizeof(err))) {
                backoff_log(&s.bo, "subscriber", err);
                if (!nap(rb, backoff_next(&s.bo)))
                    break;
                continue;
            }
            /* Joins wait for their room from now on; every hosted room is
             * subscribed on its node. */
            registry_sub_live(&rb->srv->rooms, batch_add, &rb->subs);
            route(&s, true, server_now_ms());
        }
        uint64_t now = server_now_ms();
        sub_tick(&s, now, &last_sweep);
        nfds_t nf = 0;
        fds[nf++] = (struct pollfd){.fd = rb->stop_efd, .events = POLLIN};
        fds[nf++] = (struct pollfd){.fd = rb->wake_efd, .events = POLLIN};
        unsigned np = 0;
        for (unsigned i = 0; i < s.cs->nlinks; i++)
            if (s.cs->links[i].c) {
                polled[np++] = &s.cs->links[i];
                fds[nf++] = (struct pollfd){.fd = s.cs->links[i].c->fd, .events = POLLIN};
            }
        int rc = poll(fds, nf, SUB_PING_MS / 4);
        if (rc < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break;
        if (fds[1].revents) {
            uint64_t v;
            ssize_t rd = read(rb->wake_efd, &v, sizeof(v));
            (void)rd;
        }
        now = server_now_ms();
        for (unsigned i = 0; i < np; i++) {
            struct link *l = polled[i];
            if (!fds[2 + i].revents || !l->c)
                continue;
            char err[600];
            if (!read_link(&s, l, now, err, sizeof(err)))
                link_failed(&s, l, err, now);
        }
        /* No node can be reached at all: like a lost Redis, start over. */
        bool any = false;
        for (unsigned i = 0; i < s.cs->nlinks; i++)
            any |= s.cs->links[i].c != NULL;
        if (!any && s.cs->have_map && s.cs->need_refresh) {
            char err[600];
            if (!refresh(&s, err, sizeof(err))) {
                log_warn("redis: no node of the cluster answers (%s); local delivery goes on", err);
                all_gone(rb);
                s.cs->have_map = false;
                backoff_log(&s.bo, "subscriber", err);
                if (!nap(rb, backoff_next(&s.bo)))
                    break;
            }
        }
    }
    atomic_store(&rb->sub_ready, 0);
    uint64_t now = server_now_ms();
    for (unsigned k = 0; k < s.cs->nlinks; k++)
        link_close(rb, &s.cs->links[k], now);
    all_gone(rb);
    return NULL;
}
