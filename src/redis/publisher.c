/* publisher.c: the publisher thread, one loop for every mode.
 *
 * DESIGN: the workers put messages in the outbox (never waiting on Redis);
 * this thread takes them in batches and sends each to the node that serves
 * its channel's slot (route.h), pipelined on that node's link: PUBLISH in
 * single Redis and Sentinel mode and for realtime:global, SPUBLISH for a
 * cluster's rooms. Each node has its own queues (pub_queue.h):
 *   - in flight: sent, awaiting Redis' answer, in order. An answer confirms
 *     the oldest, so this queue never drops; at its bound (REDIS_OUTBOX)
 *     nothing more is written to the node. No answer for
 *     REDIS_LINK_COMMAND_MS means the node hangs;
 *   - parked: waiting for the node (its link is connecting or down, its
 *     slot is held after a failover, or the in-flight bound is reached).
 *     A node's failure puts what it had in flight back in front of its
 *     parked messages, in order, with their numbers: receivers drop what
 *     they already had.
 * So a node that hangs, dies or refuses delays only the messages of the
 * slots it serves; the others go on. realtime:global goes to one master,
 * a different one after each failure of its link (classic pub/sub reaches
 * every node's subscribers whichever node it is published on).
 *
 * A failover: when a new map gives a slot a new master, the slot's messages
 * are held for REDIS_FAILOVER_HOLD_MS before they go to it, the time the
 * other pods' subscribers need to notice and subscribe there (they retry
 * twice a second), so what was parked for the dead master is not published
 * before anyone listens. realtime:global is held the same way when it
 * moves off a failed node. What is still lost is counted by the receivers.
 *
 * Owner: the publisher thread owns everything here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "clock.h"
#include "common.h"
#include "config.h"
#include "dest.h"
#include "fbuf.h"
#include "log.h"
#include "loop.h"
#include "redis/backoff.h"
#include "redis/broker_internal.h"
#include "redis/message.h"
#include "redis/nodes.h"
#include "redis/pub_queue.h"
#include "redis/seq.h"
#include "room/envelope.h"

/* A slot whose master changed waits this long (see above). */
#define REDIS_FAILOVER_HOLD_MS 1500
/* The pseudo-slot of realtime:global, which follows global_node. */
#define SLOT_GLOBAL DEST_SLOT_GLOBAL

/* The publisher's part of a node (nodes.h). */
struct pub_node {
    struct redis_node *node;
    struct pub_queue q; /* in flight and parked (pub_queue.h) */
    /* A slot moved (a MOVED or ASK answer): nothing more is written to the
     * node until every answer it owes is in and a map fetched after the
     * first MOVED says where the slots live; what was answered MOVED waits
     * here, in answer order, and then goes before what is parked. So no
     * message overtakes an older one of its slot that was still in flight
     * (issue 25: 1 in 10,000 was reordered, then counted lost and dropped
     * as a duplicate). */
    struct outbox moved;
    bool quiet;
    unsigned quiet_fetched; /* redis_nodes_fetched when it went quiet */
};

struct pub {
    struct redis_broker *rb;
    struct loop loop;        /* pub_efd and every node's link */
    struct loop_handler woken; /* pub_efd's handler */
    struct redis_nodes *ns;  /* the nodes and the slot map (nodes.h) */
    struct outbox unrouted;  /* no map says where yet, or a node said MOVED */
    uint64_t *held_until;    /* per slot (and SLOT_GLOBAL): failover hold */
    uint64_t hold_end_ms;    /* the latest hold: none is active after it */
    struct outbox_item *batch;
    struct seq_table *tx_seq; /* channel -> last sequence number given */
    char *scratch;            /* a payload with its numbering */
    size_t scratch_cap;
    struct redis_episode refused;
    uint64_t last_sweep_ms;
    unsigned back_seen; /* rb->back_gen when last looked at */
    /* The bytes of every queue here (unrouted, each node's in flight and
     * parked), bounded by REDIS_OUTBOX_BYTES (keep_to_budget). */
    struct outbox_budget budget;
};

static const char *who = "publisher";

/* ---- nodes ---- */

static struct pub_node *pub_of(struct redis_node *n)
{
    return n ? redis_node_data(n) : NULL;
}

static unsigned nnodes(const struct pub *p)
{
    return redis_nodes_count(p->ns);
}

static struct pub_node *nth(const struct pub *p, unsigned i)
{
    return pub_of(redis_nodes_get(p->ns, i));
}

/* A new node's queues (redis_nodes_calls.init). */
static bool node_init(void *owner, struct redis_node *n)
{
    struct pub *p = owner;
    struct pub_node *pn = redis_node_data(n);
    pn->node = n;
    /* A quarter of REDIS_OUTBOX_BYTES in flight per node: a node that
     * stops answering holds that (and its link's copy) until the hang is
     * noticed; the rest parks, where the bound drops the oldest. */
    if (pub_queue_init(&pn->q, p->rb->cfg->redis_outbox, p->rb->cfg->redis_outbox_bytes / 4) < 0)
        return false;
    if (outbox_init(&pn->moved, p->rb->cfg->redis_outbox) < 0) {
        pub_queue_free(&pn->q);
        return false;
    }
    outbox_share_budget(&pn->q.inflight, &p->budget);
    outbox_share_budget(&pn->q.parked, &p->budget);
    outbox_share_budget(&pn->moved, &p->budget);
    return true;
}

static void node_drop(void *owner, struct redis_node *n)
{
    (void)owner;
    struct pub_node *pn = redis_node_data(n);
    pub_queue_free(&pn->q);
    outbox_free(&pn->moved);
}

static bool has_work(const struct pub_node *pn)
{
    return pub_queue_len(&pn->q) > 0 || pn->moved.n > 0;
}

static bool node_busy(void *owner, const struct redis_node *n)
{
    (void)owner;
    return has_work(redis_node_data((struct redis_node *)n));
}

static struct pub_node *global_node(struct pub *p, uint64_t now)
{
    return pub_of(redis_nodes_global(p->ns, now));
}

static struct pub_node *carrier(const struct pub *p)
{
    return pub_of(redis_nodes_carrier(p->ns));
}

static void update_gauges(struct pub *p)
{
    uint64_t parked = p->unrouted.n, dropped = p->unrouted.dropped;
    for (unsigned i = 0; i < nnodes(p); i++) {
        struct pub_node *pn = nth(p, i);
        parked += pub_queue_len(&pn->q) + pn->moved.n;
        dropped += pn->q.parked.dropped;
    }
    atomic_store(&p->rb->counters.outbox, parked);
    atomic_store(&p->rb->counters.outbox_dropped, dropped);
    struct pub_node *g = carrier(p);
    atomic_store(&p->rb->pub_connected, g && redis_node_ready(g->node) ? 1 : 0);
}

/* ---- sending ---- */


/* The payload for item: the message with this pod's next sequence number on
 * its channel (kept with the item, so a resend carries the same one). */
static size_t numbered(struct pub *p, struct outbox_item *it, const char *channel, size_t clen,
                       uint64_t now)
{
    const struct fbuf *b = it->msg;
    if (it->seq == 0) {
        bool fresh;
        struct seq_entry *e = seq_table_get(p->tx_seq, channel, clen, &fresh);
        if (!e)
            return 0;
        it->seq = ++e->value;
        e->stamp_ms = now;
    }
    return envelope_number((const char *)fbuf_payload(b), b->len - b->hdr_len, it->seq,
                           p->rb->epoch, p->scratch, p->scratch_cap);
}

/* Writes one item on a ready link; the caller records it as in flight.
 * Returns false when the link failed. */
static bool send_item(struct pub *p, struct pub_node *pn, struct outbox_item *it,
                      const struct dest *d, uint64_t now)
{
    size_t plen = numbered(p, it, d->channel, d->channel_len, now);
    const char *payload = p->scratch;
    if (!plen) { /* out of memory: unnumbered, still sent */
        payload = (const char *)fbuf_payload(it->msg);
        plen = it->msg->len - it->msg->hdr_len;
    }
    bool sharded = redis_nodes_sharded(p->ns) && d->slot != SLOT_GLOBAL;
    const char *argv[3] = {sharded ? "SPUBLISH" : "PUBLISH", d->channel, payload};
    size_t len[3] = {sharded ? 8 : 7, d->channel_len, plen};
    return redis_node_send(pn->node, 3, argv, len);
}

static bool held(const struct pub *p, unsigned slot, uint64_t now)
{
    return now < p->hold_end_ms && now < p->held_until[slot];
}

static void hold(struct pub *p, unsigned slot, uint64_t now)
{
    p->held_until[slot] = now + REDIS_FAILOVER_HOLD_MS;
    if (p->hold_end_ms < now + REDIS_FAILOVER_HOLD_MS)
        p->hold_end_ms = now + REDIS_FAILOVER_HOLD_MS;
}

struct drain_ctx {
    struct pub *p;
    struct pub_node *pn;
    uint64_t now;
};

static enum pub_queue_verdict drain_one(void *ctx, struct outbox_item *it)
{
    struct drain_ctx *c = ctx;
    const struct dest *d = dest_of_frame(it->msg);
    if (held(c->p, d->slot, c->now))
        return PUB_QUEUE_KEEP;
    return send_item(c->p, c->pn, it, d, c->now) ? PUB_QUEUE_SENT : PUB_QUEUE_FAIL;
}

/* Sends what the node has parked, in order, leaving what is held and what
 * the in-flight bound does not admit yet. */
static void drain(struct pub *p, struct pub_node *pn, uint64_t now)
{
    if (!redis_node_ready(pn->node) || pn->quiet)
        return;
    struct drain_ctx c = {p, pn, now};
    if (!pub_queue_drain(&pn->q, drain_one, &c, now))
        redis_nodes_fail(p->ns, pn->node, now, false);
}

/* Routes one item: to its node's link when that is ready and nothing of
 * the node waits before it, else to the node's parked queue. */
static void route_item(struct pub *p, struct outbox_item *it, uint64_t now)
{
    const struct dest *d = dest_of_frame(it->msg);
    struct pub_node *pn = d->slot == SLOT_GLOBAL ? global_node(p, now)
                                                 : pub_of(redis_nodes_for_slot(p->ns, d->slot));
    if (!pn) {
        outbox_append(&p->unrouted, it);
        redis_nodes_want_map(p->ns);
        return;
    }
    if (!redis_node_ready(pn->node) || pn->quiet || !pub_queue_may_send(&pn->q) ||
        held(p, d->slot, now)) {
        pub_queue_park(&pn->q, it);
        return;
    }
    bool ok = send_item(p, pn, it, d, now);
    pub_queue_sent(&pn->q, it, now);
    if (!ok)
        redis_nodes_fail(p->ns, pn->node, now, false);
}

/* Moves the node's parked items that match (global ones, or those whose
 * slot another node now serves) to unrouted, keeping the order of both. */
static void evict(struct pub *p, struct pub_node *pn, bool global_only)
{
    /* A quiet node's rooms wait for settle_moved: what it answered MOVED
     * must leave before them. */
    if (pn->quiet && !global_only)
        return;
    uint32_t n = pn->q.parked.n;
    for (uint32_t k = 0; k < n; k++) {
        struct outbox_item it;
        outbox_take(&pn->q.parked, &it, 1);
        const struct dest *d = dest_of_frame(it.msg);
        bool move;
        if (d->slot == SLOT_GLOBAL)
            move = global_only || pn != carrier(p);
        else
            move = !global_only && !redis_nodes_serves_slot(p->ns, pn->node, d->slot);
        outbox_append(move ? &p->unrouted : &pn->q.parked, &it);
    }
}

/* What the node answered MOVED goes back in front of what is parked, in
 * answer order: it was all sent before anything now parked or in flight. */
static void unmove(struct pub_node *pn)
{
    struct outbox_item it;
    while (outbox_take_newest(&pn->moved, &it))
        outbox_requeue(&pn->q.parked, &it, 1);
}

/* A quiet node (struct pub_node) speaks again once it owes no answer and a
 * map was fetched since it went quiet: what was answered MOVED, then what
 * is parked, go where the map now says. */
static void settle_moved(struct pub *p, struct pub_node *pn)
{
    if (!pn->quiet || pn->q.inflight.n || redis_nodes_fetched(p->ns) == pn->quiet_fetched)
        return;
    unmove(pn);
    pn->quiet = false;
    evict(p, pn, false);
}

/* A node's link failed (redis_nodes_calls.failed): what it had in flight
 * goes back in front of its parked messages, in order (and what it answered
 * MOVED before those); global moves to another master. */
static void node_failed(void *owner, struct redis_node *n, uint64_t now)
{
    struct pub *p = owner;
    struct pub_node *pn = redis_node_data(n);
    char err[600];
    snprintf(err, sizeof(err), "%s; %u messages for it wait", redis_node_err(n),
             pub_queue_len(&pn->q) + pn->moved.n);
    redis_node_log_failure(n, who, err);
    pub_queue_failed(&pn->q);
    unmove(pn);
    if (pn == carrier(p) && redis_nodes_sharded(p->ns)) {
        /* Global moves to another master, and waits there as long as a
         * failover's slots do: pods that listened on this node are moving
         * too, and what reaches the new node before they listen is lost
         * for them. */
        redis_nodes_let_go_global(p->ns, true);
        evict(p, pn, true);
        hold(p, SLOT_GLOBAL, now);
    }
}

/* Counts a message Redis refused to publish (an ACL without the channel):
 * it is dropped, as sending it again would be refused again. */
static void refused(struct pub *p, const struct outbox_item *it, const char *why, uint64_t now)
{
    uint_fast64_t n = atomic_fetch_add(&p->rb->counters.publish_refused, 1);
    if (redis_episode_note(&p->refused, now, n))
        log_warn("redis: Redis refused to publish on %s: %s (dropped, counted as "
                 "broker.publish_refused)",
                 dest_of_frame(it->msg)->channel, why);
}

/* One answer of a node's (redis_nodes_calls.reply): it confirms the
 * oldest message in flight. Returns false when the link must go. */
static bool on_answer(void *owner, struct redis_node *n, redisReply *r, uint64_t now)
{
    struct pub *p = owner;
    struct pub_node *pn = redis_node_data(n);
    struct outbox_item it;
    if (!pub_queue_answered(&pn->q, &it, now)) {
        redis_node_fail_why(n, "%s:%u: an answer to nothing sent", redis_node_host(n),
                            redis_node_port(n));
        return false;
    }
    if (r->type != REDIS_REPLY_ERROR) {
        fbuf_unref(it.msg);
        redis_node_worked(n);
    } else if (strncmp(r->str, "NOPERM", 6) == 0) {
        refused(p, &it, r->str, now);
        fbuf_unref(it.msg);
    } else if (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0) {
        /* The slot is served elsewhere: routed again with a fresh map,
         * once every older message of the node is answered. */
        if (!pn->quiet) {
            pn->quiet = true;
            pn->quiet_fetched = redis_nodes_fetched(p->ns);
        }
        outbox_append(&pn->moved, &it);
        redis_nodes_want_map(p->ns);
    } else {
        /* READONLY (a demoted master), LOADING, OOM...: the node cannot
         * take it now; it and what follows wait for the node. */
        pub_queue_unanswer(&pn->q, &it);
        redis_node_fail_why(n, "%s:%u answered %.200s", redis_node_host(n), redis_node_port(n),
                            r->str);
        return false;
    }
    return true;
}

/* A new map (redis_nodes_calls.new_map): slots that changed masters are
 * held, and parked messages go where their slot now lives. */
static void new_map(void *owner, const struct redis_cluster_map *old, uint64_t now)
{
    struct pub *p = owner;
    if (old->n) {
        unsigned moved = 0;
        for (unsigned s = 0; s < REDIS_CLUSTER_SLOTS; s++) {
            const struct redis_cluster_node *a = redis_cluster_owner(old, s);
            const struct redis_cluster_node *b = redis_nodes_owner(p->ns, s);
            if (a && b && !redis_cluster_same(a, b)) {
                hold(p, s, now);
                moved++;
            }
        }
        if (moved) {
            atomic_fetch_add(&p->rb->counters.failover_holds, 1);
            log_info("redis: %u slots have a new master; their messages wait %d ms for every "
                     "pod to subscribe there",
                     moved, REDIS_FAILOVER_HOLD_MS);
        }
    }
    struct pub_node *was = carrier(p);
    if (was && !redis_nodes_serves(p->ns, was->node)) {
        /* Sentinel: the new master's subscribers need the same time. */
        redis_nodes_let_go_global(p->ns, false);
        evict(p, was, true);
        if (redis_nodes_sentinel(p->ns))
            hold(p, SLOT_GLOBAL, now);
    }
    for (unsigned i = 0; i < nnodes(p); i++)
        evict(p, nth(p, i), false);
}

/* A node whose link failed answers again without a failover (a restart,
 * a freeze, a network cut): the other pods' subscribers are coming back to
 * it too (they retry at least every second), so its slots, and global when
 * it is carried here, are held as after a failover. */
static void hold_node(struct pub *p, const struct pub_node *pn, uint64_t now)
{
    for (unsigned s = 0; s < REDIS_CLUSTER_SLOTS; s++)
        if (redis_nodes_serves_slot(p->ns, pn->node, s))
            hold(p, s, now);
    if (pn == carrier(p))
        hold(p, SLOT_GLOBAL, now);
    atomic_fetch_add(&p->rb->counters.failover_holds, 1);
    log_info("redis: %s:%u answers again; its messages wait %d ms for every pod to subscribe "
             "there",
             redis_node_host(pn->node), redis_node_port(pn->node), REDIS_FAILOVER_HOLD_MS);
}

/* Routes what waits in unrouted (before anything newer). */
static void reroute(struct pub *p, uint64_t now)
{
    uint32_t n = p->unrouted.n;
    if (!redis_nodes_have_map(p->ns))
        return;
    for (uint32_t k = 0; k < n; k++) {
        struct outbox_item it;
        if (!outbox_take(&p->unrouted, &it, 1))
            break;
        route_item(p, &it, now);
    }
}

/* Past REDIS_OUTBOX_BYTES, the oldest message of the heaviest waiting
 * queue goes, counted: the nodes that are down pay for their own backlog,
 * the largest first. In-flight messages are never dropped (pub_queue.h).
 * Checked once per pass, so the bound may be passed by one batch. */
static void keep_to_budget(struct pub *p)
{
    while (p->budget.used > p->budget.max) {
        struct outbox *heaviest = p->unrouted.n ? &p->unrouted : NULL;
        for (unsigned i = 0; i < nnodes(p); i++) {
            struct outbox *o = &nth(p, i)->q.parked;
            if (o->n && (!heaviest || o->bytes > heaviest->bytes))
                heaviest = o;
        }
        if (!heaviest)
            return;
        outbox_drop_oldest(heaviest);
    }
}

/* ---- the loop ---- */

/* Per pass: opens links that have messages waiting (and the global one),
 * notices hangs, sends what is parked. Returns the next deadline. */
static uint64_t tend(struct pub *p, uint64_t now)
{
    uint64_t next = now + 1000;
    struct pub_node *g = global_node(p, now);
    /* The subscriber reached a node again: links down are tried now. */
    if (redis_broker_back_news(p->rb, &p->back_seen))
        redis_nodes_retry_now(p->ns, now);
    for (unsigned i = 0; i < nnodes(p); i++) {
        struct pub_node *pn = nth(p, i);
        struct redis_node *n = pn->node;
        if (redis_node_down(n) && (has_work(pn) || pn == g)) {
            /* A failover may have given its slots to another node. */
            redis_nodes_want_map(p->ns);
            redis_nodes_open(p->ns, n, now);
        }
        uint64_t owed = pn->q.inflight.n ? pn->q.progress_ms : 0;
        if (!redis_nodes_watch(p->ns, n, owed, now, &next))
            continue;
        settle_moved(p, pn);
        drain(p, pn, now);
        /* One write per node per pass, for everything routed to it. */
        if (!redis_node_flush(n))
            redis_nodes_fail(p->ns, n, now, false);
    }
    if (now < p->hold_end_ms && p->hold_end_ms < next)
        next = p->hold_end_ms;
    uint64_t rd = redis_nodes_due(p->ns);
    if (rd && rd < next)
        next = rd;
    return next;
}

static bool idle(const struct pub *p)
{
    if (p->unrouted.n)
        return false;
    for (unsigned i = 0; i < nnodes(p); i++) {
        const struct pub_node *pn = nth(p, i);
        if (pn->q.inflight.n || pn->moved.n || (pn->q.parked.n && redis_node_ready(pn->node)))
            return false;
    }
    return true;
}

/* A node's link is ready (redis_nodes_calls.ready): a node back after a
 * failure is held as after a failover; what is parked goes. */
static void node_ready(void *owner, struct redis_node *n, bool was_failing, uint64_t now)
{
    struct pub *p = owner;
    struct pub_node *pn = redis_node_data(n);
    if (was_failing) {
        redis_broker_node_back(p->rb, true);
        hold_node(p, pn, now);
    }
    if (pn == carrier(p))
        log_info("redis: publisher connected to %s:%u", redis_node_host(n), redis_node_port(n));
    drain(p, pn, now);
}

static const struct redis_nodes_calls CALLS = {
    .init = node_init,
    .drop = node_drop,
    .busy = node_busy,
    .ready = node_ready,
    .reply = on_answer,
    .failed = node_failed,
    .new_map = new_map,
};

/* Takes a batch from the outbox; *stopping and *deadline tell of a stop. */
static uint32_t take(struct pub *p, bool *stopping, uint64_t *deadline)
{
    struct redis_broker *rb = p->rb;
    pthread_mutex_lock(&rb->lock);
    uint32_t n = outbox_take(&rb->outbox, p->batch, REDIS_BATCH_MAX);
    *stopping = rb->stopping;
    *deadline = rb->stop_deadline_ms;
    pthread_mutex_unlock(&rb->lock);
    return n;
}

/* A worker woke the publisher (pub_efd): messages to send. */
static void on_woken(struct loop *l, struct loop_handler *h, uint32_t events)
{
    (void)l;
    (void)events;
    loop_eventfd_clear(container_of(h, struct pub, woken)->rb->pub_efd);
}

static void run(struct pub *p)
{
    struct redis_broker *rb = p->rb;
    for (;;) {
        uint64_t now = clock_now_ms();
        bool stopping;
        uint64_t deadline;
        redis_nodes_step(p->ns, now);
        reroute(p, now);
        uint32_t n = take(p, &stopping, &deadline);
        for (uint32_t i = 0; i < n; i++)
            route_item(p, &p->batch[i], now);
        uint64_t next = tend(p, now);
        keep_to_budget(p);
        redis_nodes_forget(p->ns, now);
        update_gauges(p);
        if (stopping && ((n == 0 && idle(p)) || now >= deadline))
            break;
        if (now - p->last_sweep_ms >= REDIS_SEQ_SWEEP_MS) {
            seq_table_sweep(p->tx_seq, now > SEQ_FORGET_TX_MS ? now - SEQ_FORGET_TX_MS : 0);
            p->last_sweep_ms = now;
        }
        if (n == REDIS_BATCH_MAX)
            continue; /* more is waiting: no sleep */
        /* Going to sleep: said under the lock, so that a worker that
         * publishes after this point writes pub_efd. */
        pthread_mutex_lock(&rb->lock);
        bool more = rb->outbox.n > 0;
        rb->pub_asleep = !more;
        pthread_mutex_unlock(&rb->lock);
        if (more)
            continue;
        if (stopping && deadline < next)
            next = deadline;
        int ne = loop_wait(&p->loop, next);
        pthread_mutex_lock(&rb->lock);
        rb->pub_asleep = false;
        pthread_mutex_unlock(&rb->lock);
        if (ne < 0)
            break;
        loop_dispatch(&p->loop);
    }
}

void *redis_pub_main(void *arg)
{
    struct redis_broker *rb = arg;
    struct pub *p = calloc(1, sizeof(*p));
    if (!p)
        abort();
    p->rb = rb;
    p->budget.max = rb->cfg->redis_outbox_bytes;
    int loop_rc = loop_init(&p->loop);
    p->batch = malloc(REDIS_BATCH_MAX * sizeof(*p->batch));
    p->held_until = calloc(REDIS_CLUSTER_SLOTS + 1, sizeof(*p->held_until));
    p->scratch_cap = rb->cfg->max_message + ENVELOPE_SLACK + 64;
    p->scratch = malloc(p->scratch_cap);
    p->tx_seq = seq_table_new(0);
    p->woken.fn = on_woken;
    if (loop_rc < 0 || !p->batch || !p->held_until || !p->scratch || !p->tx_seq ||
        outbox_init(&p->unrouted, rb->cfg->redis_outbox) < 0 ||
        !(p->ns = redis_nodes_new(rb->cfg, &p->loop, rb->tls_pub, &CALLS, p,
                                  sizeof(struct pub_node), 0)) ||
        loop_add(&p->loop, rb->pub_efd, &p->woken, EPOLLIN) < 0) {
        log_error("redis: the publisher cannot start (out of memory or descriptors)");
        abort();
    }
    outbox_share_budget(&p->unrouted, &p->budget);
    p->last_sweep_ms = clock_now_ms();
    run(p);
    atomic_store(&rb->pub_connected, 0);
    uint64_t left = p->unrouted.n;
    for (unsigned i = 0; i < nnodes(p); i++) {
        struct pub_node *pn = nth(p, i);
        left += pub_queue_len(&pn->q) + pn->moved.n;
    }
    if (left)
        log_warn("redis: %llu messages were still waiting for Redis at exit",
                 (unsigned long long)left);
    redis_nodes_free(p->ns);
    outbox_free(&p->unrouted);
    seq_table_free(p->tx_seq);
    free(p->scratch);
    free(p->held_until);
    free(p->batch);
    loop_free(&p->loop);
    free(p);
    return NULL;
}
