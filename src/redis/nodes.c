/* nodes.c: a broker thread's Redis nodes (nodes.h). */
#include "redis/nodes.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "common.h"
#include "redis/backoff.h"
#include "redis/broker_internal.h"
#include "redis/link.h"
#include "redis/link_internal.h"
#include "redis/route.h"

/* One node: its link (whose handler finds the node with container_of),
 * its set, then the owner's data. */
struct redis_node {
    struct redis_link link;
    struct redis_nodes *ns;
    _Alignas(max_align_t) unsigned char data[];
};

struct redis_nodes {
    const struct redis_nodes_calls *calls;
    void *owner;
    size_t data_size;
    uint32_t retry_cap_ms;
    struct redis_route rt;
    struct redis_node *nodes[REDIS_NODES_MAX];
    unsigned n;
    struct redis_node *carrier; /* carries realtime:global, or NULL */
    unsigned global_pick;       /* where the next pick of a carrier starts */
    uint64_t forget_at_ms;      /* redis_nodes_forget looks again then */
};

static void on_probe(struct loop *l, struct loop_handler *h, uint32_t events);
static void on_node(struct loop *l, struct loop_handler *h, uint32_t events);

struct redis_nodes *redis_nodes_new(const struct config *cfg, struct loop *loop,
                                    struct ssl_ctx_st *tls, const struct redis_nodes_calls *calls,
                                    void *owner, size_t data_size, uint32_t retry_cap_ms)
{
    struct redis_nodes *ns = calloc(1, sizeof(*ns));
    if (!ns)
        return NULL;
    ns->calls = calls;
    ns->owner = owner;
    ns->data_size = data_size;
    ns->retry_cap_ms = retry_cap_ms;
    if (redis_route_init(&ns->rt, cfg, loop, tls, on_probe) < 0) {
        free(ns);
        return NULL;
    }
    return ns;
}

static void free_node(struct redis_nodes *ns, struct redis_node *n)
{
    ns->calls->drop(ns->owner, n);
    redis_link_free(&n->link);
    free(n);
}

void redis_nodes_free(struct redis_nodes *ns)
{
    if (!ns)
        return;
    for (unsigned i = 0; i < ns->n; i++)
        free_node(ns, ns->nodes[i]);
    redis_route_free(&ns->rt);
    free(ns);
}

/* ---- the map ---- */

/* Drives the map's fetch (events: the probe's, or 0 once per pass). */
static void step(struct redis_nodes *ns, uint32_t events, uint64_t now)
{
    struct redis_cluster_map old = {0};
    if (redis_route_step(&ns->rt, events, now, &old) == 1) {
        ns->calls->new_map(ns->owner, &old, now);
        redis_cluster_map_free(&old);
    }
}

void redis_nodes_step(struct redis_nodes *ns, uint64_t now)
{
    step(ns, 0, now);
}

void redis_nodes_want_map(struct redis_nodes *ns)
{
    redis_route_want(&ns->rt);
}

bool redis_nodes_have_map(const struct redis_nodes *ns)
{
    return ns->rt.have_map;
}

unsigned redis_nodes_fetched(const struct redis_nodes *ns)
{
    return ns->rt.fetched;
}

bool redis_nodes_sharded(const struct redis_nodes *ns)
{
    return ns->rt.mode == REDIS_ROUTE_CLUSTER;
}

bool redis_nodes_sentinel(const struct redis_nodes *ns)
{
    return ns->rt.mode == REDIS_ROUTE_SENTINEL;
}

const struct redis_cluster_node *redis_nodes_owner(const struct redis_nodes *ns, unsigned slot)
{
    return redis_route_owner(&ns->rt, slot);
}

uint64_t redis_nodes_due(const struct redis_nodes *ns)
{
    return redis_route_due(&ns->rt);
}

/* ---- nodes ---- */

struct redis_node *redis_nodes_at(struct redis_nodes *ns, const struct redis_cluster_node *addr)
{
    if (!addr)
        return NULL;
    for (unsigned i = 0; i < ns->n; i++)
        if (redis_same_node(addr, ns->nodes[i]->link.host, ns->nodes[i]->link.port))
            return ns->nodes[i];
    if (ns->n == REDIS_NODES_MAX)
        return NULL;
    struct redis_node *n = calloc(1, sizeof(*n) + ns->data_size);
    if (!n)
        return NULL;
    n->ns = ns;
    if (redis_link_init(&n->link, addr->host, addr->port, &ns->rt.env, on_node) < 0) {
        free(n);
        return NULL;
    }
    if (ns->retry_cap_ms)
        redis_backoff_cap(&n->link.bo, ns->retry_cap_ms);
    if (!ns->calls->init(ns->owner, n)) {
        redis_link_free(&n->link);
        free(n);
        return NULL;
    }
    ns->nodes[ns->n++] = n;
    return n;
}

struct redis_node *redis_nodes_for_slot(struct redis_nodes *ns, unsigned slot)
{
    return redis_nodes_at(ns, redis_route_owner(&ns->rt, slot));
}

/* A master that is not known to hang and did not just fail, starting at
 * global_pick; failing that, the one at global_pick. */
struct redis_node *redis_nodes_global(struct redis_nodes *ns, uint64_t now)
{
    if (ns->carrier)
        return ns->carrier;
    const struct redis_cluster_map *m = &ns->rt.map;
    if (!ns->rt.have_map || m->n == 0)
        return NULL;
    for (size_t k = 0; k < m->n; k++) {
        size_t i = (ns->global_pick + k) % m->n;
        struct redis_node *n = redis_nodes_at(ns, &m->ranges[i].master);
        if (n && !redis_link_sick(&n->link, now) && !redis_node_waiting(n, now)) {
            ns->global_pick = (unsigned)i;
            return ns->carrier = n;
        }
    }
    return ns->carrier = redis_nodes_at(ns, &m->ranges[ns->global_pick % m->n].master);
}

struct redis_node *redis_nodes_carrier(const struct redis_nodes *ns)
{
    return ns->carrier;
}

void redis_nodes_let_go_global(struct redis_nodes *ns, bool next)
{
    ns->carrier = NULL;
    if (next)
        ns->global_pick++;
}

bool redis_nodes_serves(const struct redis_nodes *ns, const struct redis_node *n)
{
    return redis_route_is_master(&ns->rt, n->link.host, n->link.port);
}

bool redis_nodes_serves_slot(const struct redis_nodes *ns, const struct redis_node *n,
                             unsigned slot)
{
    return redis_same_node(redis_route_owner(&ns->rt, slot), n->link.host, n->link.port);
}

unsigned redis_nodes_count(const struct redis_nodes *ns)
{
    return ns->n;
}

struct redis_node *redis_nodes_get(struct redis_nodes *ns, unsigned i)
{
    return ns->nodes[i];
}

/* ---- reading, liveness, failure ---- */

/* Reads n's link for one epoll event, a chunk at a time while more may be
 * there (link.h), handing every reply of a chunk to the owner before the
 * next is read. */
static void read_node(struct redis_nodes *ns, struct redis_node *n, uint32_t events,
                      uint64_t now)
{
    for (unsigned reads = 1;; reads++, events = EPOLLIN) {
        bool ready;
        bool was_failing = redis_backoff_failing(&n->link.bo);
        if (!redis_link_io(&n->link, events, now, &ready)) {
            redis_nodes_fail(ns, n, now, false);
            return;
        }
        if (ready)
            ns->calls->ready(ns->owner, n, was_failing, now);
        redisReply *r;
        int got;
        while ((got = redis_link_reply(&n->link, &r)) > 0) {
            bool keep = ns->calls->reply(ns->owner, n, r, now);
            freeReplyObject(r);
            if (!keep) {
                redis_nodes_fail(ns, n, now, false);
                return;
            }
        }
        if (got < 0) {
            redis_nodes_fail(ns, n, now, false);
            return;
        }
        if (!redis_link_again(&n->link, reads))
            return;
    }
}

/* A node's link is readable or writable (its loop handler). Nodes are
 * freed only between batches (redis_nodes_forget). */
static void on_node(struct loop *l, struct loop_handler *h, uint32_t events)
{
    struct redis_node *n = container_of(h, struct redis_node, link.io);
    read_node(n->ns, n, events, l->now);
}

/* The map probe's events (its loop handler). */
static void on_probe(struct loop *l, struct loop_handler *h, uint32_t events)
{
    struct redis_route *rt = container_of(h, struct redis_route, probe.io);
    step(container_of(rt, struct redis_nodes, rt), events, l->now);
}

static void lower(uint64_t *next, uint64_t at)
{
    if (at < *next)
        *next = at;
}

bool redis_nodes_watch(struct redis_nodes *ns, struct redis_node *n, uint64_t owed_since,
                       uint64_t now, uint64_t *next)
{
    struct redis_link *l = &n->link;
    if (redis_link_late(l, owed_since, now)) {
        redis_nodes_fail(ns, n, now, true);
        return false;
    }
    if (l->phase == REDIS_LINK_READY && owed_since)
        lower(next, owed_since + REDIS_LINK_COMMAND_MS);
    else if (l->phase != REDIS_LINK_DOWN && l->phase != REDIS_LINK_READY)
        lower(next, l->deadline_ms);
    else if (l->phase == REDIS_LINK_DOWN && l->retry_at_ms > now)
        lower(next, l->retry_at_ms);
    return true;
}

void redis_nodes_open(struct redis_nodes *ns, struct redis_node *n, uint64_t now)
{
    if (n->link.phase == REDIS_LINK_DOWN && now >= n->link.retry_at_ms &&
        !redis_link_open(&n->link, now))
        redis_nodes_fail(ns, n, now, false);
}

void redis_nodes_retry_now(struct redis_nodes *ns, uint64_t now)
{
    for (unsigned i = 0; i < ns->n; i++) {
        struct redis_link *l = &ns->nodes[i]->link;
        if (l->phase == REDIS_LINK_DOWN && l->retry_at_ms > now)
            l->retry_at_ms = now;
    }
}

static void close_link(struct redis_nodes *ns, struct redis_node *n, uint64_t now, bool hung)
{
    /* A node that refuses the pod (a password it does not have) is tried
     * ever more slowly; one that was away, at least every retry_cap_ms. */
    if (ns->retry_cap_ms)
        redis_backoff_cap(&n->link.bo, n->link.refused ? REDIS_BACKOFF_MAX_MS : ns->retry_cap_ms);
    redis_link_close(&n->link, now, hung);
}

void redis_nodes_fail(struct redis_nodes *ns, struct redis_node *n, uint64_t now, bool hung)
{
    ns->calls->failed(ns->owner, n, now);
    if (hung)
        redis_route_sick(&ns->rt, n->link.host, n->link.port, now);
    close_link(ns, n, now, hung);
    redis_route_want(&ns->rt);
}

void redis_nodes_close(struct redis_nodes *ns, struct redis_node *n, uint64_t now)
{
    close_link(ns, n, now, false);
}

void redis_nodes_forget(struct redis_nodes *ns, uint64_t now)
{
    if (!ns->rt.have_map || now < ns->forget_at_ms)
        return;
    ns->forget_at_ms = now + NODES_FORGET_MS;
    for (unsigned i = 0; i < ns->n;) {
        struct redis_node *n = ns->nodes[i];
        if (n == ns->carrier || redis_nodes_serves(ns, n) || ns->calls->busy(ns->owner, n)) {
            i++;
            continue;
        }
        free_node(ns, n);
        ns->nodes[i] = ns->nodes[--ns->n];
    }
}

/* ---- one node ---- */

void *redis_node_data(struct redis_node *n)
{
    return n->data;
}

const char *redis_node_host(const struct redis_node *n)
{
    return n->link.host;
}

unsigned redis_node_port(const struct redis_node *n)
{
    return n->link.port;
}

bool redis_node_ready(const struct redis_node *n)
{
    return n->link.phase == REDIS_LINK_READY;
}

bool redis_node_down(const struct redis_node *n)
{
    return n->link.phase == REDIS_LINK_DOWN;
}

bool redis_node_waiting(const struct redis_node *n, uint64_t now)
{
    return n->link.phase == REDIS_LINK_DOWN && now < n->link.retry_at_ms;
}

uint64_t redis_node_last_read(const struct redis_node *n)
{
    return n->link.last_read_ms;
}

const char *redis_node_err(const struct redis_node *n)
{
    return n->link.err;
}

void redis_node_fail_why(struct redis_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->link.err, sizeof(n->link.err), fmt, ap);
    va_end(ap);
}

void redis_node_log_failure(struct redis_node *n, const char *who, const char *what)
{
    redis_backoff_log(&n->link.bo, who, what);
}

bool redis_node_send(struct redis_node *n, int argc, const char **argv, const size_t *argvlen)
{
    return redis_link_send(&n->link, argc, argv, argvlen);
}

bool redis_node_flush(struct redis_node *n)
{
    return redis_link_flush(&n->link);
}

void redis_node_worked(struct redis_node *n)
{
    redis_link_worked(&n->link);
}
