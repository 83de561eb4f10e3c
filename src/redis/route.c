/* route.c: the slot map and how it is fetched (route.h). */
#include "redis/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/epoll.h>

#include "config.h"
#include "log.h"
#include "redis/link.h"

bool redis_same_node(const struct redis_cluster_node *a, const char *host, uint16_t port)
{
    return a && a->port == port && strcmp(a->host, host) == 0;
}

bool redis_route_is_master(const struct redis_route *rt, const char *host, uint16_t port)
{
    for (size_t i = 0; rt->have_map && i < rt->map.n; i++)
        if (redis_same_node(&rt->map.ranges[i].master, host, port))
            return true;
    return false;
}

unsigned redis_route_slot(const char *channel)
{
    return redis_cluster_slot(channel, strlen(channel));
}

/* The one-range map of single Redis and Sentinel. */
static int one_range(struct redis_cluster_map *m, const char *host, uint16_t port)
{
    *m = (struct redis_cluster_map){0};
    m->ranges = calloc(1, sizeof(*m->ranges));
    if (!m->ranges)
        return -1;
    m->n = 1;
    m->ranges[0].first = 0;
    m->ranges[0].last = REDIS_CLUSTER_SLOTS - 1;
    snprintf(m->ranges[0].master.host, sizeof(m->ranges[0].master.host), "%s", host);
    m->ranges[0].master.port = port;
    return 0;
}

int redis_route_init(struct redis_route *rt, const struct config *cfg, struct loop *loop,
                     struct ssl_ctx_st *tls, loop_fn *probe_io)
{
    *rt = (struct redis_route){.cfg = cfg, .checking = -1};
    rt->mode = cfg->redis_cluster       ? REDIS_ROUTE_CLUSTER
               : cfg->redis_sentinel[0] ? REDIS_ROUTE_SENTINEL
                                        : REDIS_ROUTE_SINGLE;
    rt->env = (struct redis_link_env){.user = cfg->redis.user,
                                      .password = cfg->redis.password,
                                      .db = cfg->redis.db,
                                      .tls = tls,
                                      .loop = loop,
                                      .reply_max = cfg->max_message + REDIS_ROUTE_REPLY_SLACK};
    rt->probe_env = rt->env;
    if (rt->mode == REDIS_ROUTE_SENTINEL)
        rt->probe_env = (struct redis_link_env){
            .user = "", .password = "", .tls = tls, .loop = loop, .reply_max = rt->env.reply_max};
    redis_backoff_init(&rt->bo);
    redis_link_init(&rt->probe, "", 0, &rt->probe_env, probe_io);
    if (rt->mode == REDIS_ROUTE_SINGLE) {
        if (one_range(&rt->map, cfg->redis.host, cfg->redis.port) < 0)
            return -1;
        rt->have_map = true;
    } else {
        rt->wanted = true;
    }
    return 0;
}

void redis_route_free(struct redis_route *rt)
{
    redis_link_free(&rt->probe);
    redis_cluster_map_free(&rt->map);
}

const struct redis_cluster_node *redis_route_owner(const struct redis_route *rt, unsigned slot)
{
    return rt->have_map ? redis_cluster_owner(&rt->map, slot) : NULL;
}

void redis_route_want(struct redis_route *rt)
{
    if (rt->mode != REDIS_ROUTE_SINGLE)
        rt->wanted = true;
}

static bool is_sick(const struct redis_route *rt, const char *host, uint16_t port, uint64_t now)
{
    for (int i = 0; i < REDIS_ROUTE_SICK_MAX; i++)
        if (now < rt->sick[i].until_ms && redis_same_node(&rt->sick[i].node, host, port))
            return true;
    return false;
}

void redis_route_sick(struct redis_route *rt, const char *host, uint16_t port, uint64_t now)
{
    int pick = 0;
    for (int i = 0; i < REDIS_ROUTE_SICK_MAX; i++) {
        if (redis_same_node(&rt->sick[i].node, host, port)) {
            pick = i;
            break;
        }
        if (rt->sick[i].until_ms < rt->sick[pick].until_ms)
            pick = i;
    }
    snprintf(rt->sick[pick].node.host, sizeof(rt->sick[pick].node.host), "%s", host);
    rt->sick[pick].node.port = port;
    rt->sick[pick].until_ms = now + REDIS_LINK_SICK_MS;
}

/* The sources of a map, in order: the masters of the map we have (cluster),
 * then REDIS_URL's hosts. */
static unsigned n_sources(const struct redis_route *rt)
{
    return (rt->mode == REDIS_ROUTE_CLUSTER ? (unsigned)rt->map.n : 0) + rt->cfg->redis.nseeds;
}

static void source(const struct redis_route *rt, unsigned i, const char **host, uint16_t *port)
{
    unsigned nm = rt->mode == REDIS_ROUTE_CLUSTER ? (unsigned)rt->map.n : 0;
    if (i < nm) {
        *host = rt->map.ranges[i].master.host;
        *port = rt->map.ranges[i].master.port;
    } else {
        *host = rt->cfg->redis.seeds[i - nm].host;
        *port = rt->cfg->redis.seeds[i - nm].port;
    }
}

/* Opens the probe to the next source that is not known to hang (one that
 * is, only when all are). Returns false when the round is over. */
static bool next_source(struct redis_route *rt, uint64_t now)
{
    unsigned n = n_sources(rt);
    while (rt->round_tries < 2 * n) {
        unsigned i = rt->next_source++ % n;
        bool second_pass = rt->round_tries++ >= n;
        const char *host;
        uint16_t port;
        source(rt, i, &host, &port);
        if (!second_pass && is_sick(rt, host, port, now))
            continue;
        if (second_pass && !is_sick(rt, host, port, now))
            continue; /* tried in the first pass */
        snprintf(rt->probe.host, sizeof(rt->probe.host), "%s", host);
        rt->probe.port = port;
        rt->probe.env = &rt->probe_env;
        rt->probe_asked = false;
        if (redis_link_open(&rt->probe, now))
            return true;
        snprintf(rt->err, sizeof(rt->err), "%s", rt->probe.err);
    }
    return false;
}

static void round_over(struct redis_route *rt, uint64_t now)
{
    uint32_t wait = redis_backoff_next(&rt->bo);
    rt->next_round_ms = now + (wait < 1000 ? wait : 1000);
    rt->round_tries = 0;
    log_debug("redis: no usable map yet: %s", rt->err);
}

/* A round that worked: the next is due after the poll interval (Sentinel)
 * or when a map is wanted again. */
static void round_done(struct redis_route *rt, uint64_t now)
{
    rt->fetched++;
    redis_backoff_reset(&rt->bo);
    rt->wanted = false;
    rt->round_tries = 0;
    rt->next_round_ms = now + (rt->mode == REDIS_ROUTE_SENTINEL ? REDIS_ROUTE_SENTINEL_POLL_MS
                                                                : REDIS_ROUTE_REFRESH_MIN_MS);
}

/* Sentinel: one sentinel named node. */
static void vote(struct redis_route *rt, const struct redis_cluster_node *node)
{
    rt->answered++;
    for (unsigned i = 0; i < rt->nnamed; i++)
        if (redis_same_node(&rt->named[i].node, node->host, node->port)) {
            rt->named[i].votes++;
            return;
        }
    if (rt->nnamed < REDIS_ROUTE_NAMED_MAX)
        rt->named[rt->nnamed++] = (struct redis_route_named){*node, 1};
}

/* Sentinel: opens the probe to the next address named, most named first,
 * to ask it ROLE. The round is over when none is left. */
static void check_next(struct redis_route *rt, uint64_t now)
{
    while (++rt->checking < (int)rt->nnamed) {
        const struct redis_cluster_node *n = &rt->named[rt->checking].node;
        snprintf(rt->probe.host, sizeof(rt->probe.host), "%s", n->host);
        rt->probe.port = n->port;
        rt->probe.env = &rt->env; /* a node: AUTH, SELECT as configured */
        rt->probe_asked = false;
        if (redis_link_open(&rt->probe, now))
            return;
        snprintf(rt->err, sizeof(rt->err), "%s", rt->probe.err);
    }
    rt->checking = -1;
    round_over(rt, now);
}

static int by_votes(const void *a, const void *b)
{
    const struct redis_route_named *x = a, *y = b;
    return x->votes > y->votes ? -1 : x->votes < y->votes;
}

/* Sentinel: every sentinel of the round was asked. The master in use
 * stays while any sentinel names it and no other address has a majority of
 * those that answered; otherwise the addresses named are checked. */
static void sentinels_asked(struct redis_route *rt, uint64_t now)
{
    if (rt->nnamed == 0) {
        round_over(rt, now);
        return;
    }
    qsort(rt->named, rt->nnamed, sizeof(rt->named[0]), by_votes);
    if (rt->have_map) {
        const struct redis_cluster_node *cur = &rt->map.ranges[0].master;
        bool named = false;
        for (unsigned i = 0; i < rt->nnamed; i++)
            named |= redis_same_node(&rt->named[i].node, cur->host, cur->port);
        bool other_majority = !redis_same_node(&rt->named[0].node, cur->host, cur->port) &&
                              rt->named[0].votes * 2 > rt->answered;
        if (named && !other_majority) {
            round_done(rt, now);
            return;
        }
    }
    rt->checking = -1;
    check_next(rt, now);
}

/* The sources of this round are used up. */
static void sources_done(struct redis_route *rt, uint64_t now)
{
    if (rt->mode == REDIS_ROUTE_SENTINEL && rt->checking < 0)
        sentinels_asked(rt, now);
    else
        round_over(rt, now);
}

/* The probe failed: hung tells whether it was by not answering. */
static void probe_failed(struct redis_route *rt, uint64_t now, bool hung)
{
    snprintf(rt->err, sizeof(rt->err), "%s", rt->probe.err);
    if (hung)
        redis_route_sick(rt, rt->probe.host, rt->probe.port, now);
    redis_link_close(&rt->probe, now, hung);
    if (rt->mode == REDIS_ROUTE_SENTINEL && rt->checking >= 0)
        check_next(rt, now);
    else if (!next_source(rt, now))
        sources_done(rt, now);
}

static bool ask(struct redis_route *rt, uint64_t now)
{
    bool ok;
    if (rt->checking >= 0) {
        const char *argv[1] = {"ROLE"};
        size_t len[1] = {4};
        ok = redis_link_send(&rt->probe, 1, argv, len);
    } else if (rt->mode == REDIS_ROUTE_CLUSTER) {
        const char *argv[2] = {"CLUSTER", "SLOTS"};
        size_t len[2] = {7, 5};
        ok = redis_link_send(&rt->probe, 2, argv, len);
    } else {
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", rt->cfg->redis_sentinel};
        size_t len[3] = {8, 23, strlen(rt->cfg->redis_sentinel)};
        ok = redis_link_send(&rt->probe, 3, argv, len);
    }
    rt->probe_asked = true;
    rt->probe_asked_ms = now;
    return ok && redis_link_flush(&rt->probe);
}

/* Parses the answer into m. */
static bool parse(struct redis_route *rt, const redisReply *r, struct redis_cluster_map *m)
{
    if (rt->mode == REDIS_ROUTE_CLUSTER) {
        if (redis_cluster_parse_slots(r, m) == 0 && m->n > 0)
            return true;
        snprintf(rt->err, sizeof(rt->err), "%s:%u gave no usable CLUSTER SLOTS%s%s",
                 rt->probe.host, rt->probe.port, r->type == REDIS_REPLY_ERROR ? ": " : "",
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
        redis_cluster_map_free(m);
        return false;
    }
    char port[8] = "";
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len > 0 && r->element[0]->len <= REDIS_CLUSTER_HOST_MAX &&
        r->element[1]->len < sizeof(port)) {
        memcpy(port, r->element[1]->str, r->element[1]->len);
        long p = strtol(port, NULL, 10);
        if (p > 0 && p < 65536 && one_range(m, r->element[0]->str, (uint16_t)p) == 0)
            return true;
    }
    snprintf(rt->err, sizeof(rt->err), "sentinel %.100s:%u does not know master %s%s%.100s",
             rt->probe.host, rt->probe.port, rt->cfg->redis_sentinel,
             r->type == REDIS_REPLY_ERROR ? ": " : "", r->type == REDIS_REPLY_ERROR ? r->str : "");
    return false;
}

/* ROLE's answer from a master: an array whose first element is "master". */
static bool says_master(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           (r->element[0]->type == REDIS_REPLY_STRING || r->element[0]->type == REDIS_REPLY_STATUS) &&
           strcmp(r->element[0]->str, "master") == 0;
}

static bool same_map(const struct redis_cluster_map *a, const struct redis_cluster_map *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->ranges[i].first != b->ranges[i].first || a->ranges[i].last != b->ranges[i].last ||
            !redis_same_node(&a->ranges[i].master, b->ranges[i].master.host,
                             b->ranges[i].master.port))
            return false;
    return true;
}

int redis_route_step(struct redis_route *rt, uint32_t events, uint64_t now,
                     struct redis_cluster_map *old)
{
    if (rt->mode == REDIS_ROUTE_SINGLE)
        return 0;
    if (rt->mode == REDIS_ROUTE_SENTINEL && rt->probe.phase == REDIS_LINK_DOWN && !rt->wanted &&
        now >= rt->next_round_ms)
        rt->wanted = true; /* follow a switch even when nothing failed */
    if (rt->probe.phase == REDIS_LINK_DOWN) {
        if (!rt->wanted || now < rt->next_round_ms)
            return 0;
        rt->round_tries = 0;
        rt->nnamed = rt->answered = 0;
        rt->checking = -1;
        if (!next_source(rt, now)) {
            sources_done(rt, now);
            return 0;
        }
    }
    bool ready = false;
    for (unsigned reads = 1; events; reads++, events = EPOLLIN) {
        bool r = false;
        if (!redis_link_io(&rt->probe, events, now, &r)) {
            probe_failed(rt, now, false);
            return 0;
        }
        ready |= r;
        /* A map of a big cluster may take several chunks. */
        if (!redis_link_again(&rt->probe, reads))
            break;
    }
    if (ready && !ask(rt, now)) {
        probe_failed(rt, now, false);
        return 0;
    }
    if (redis_link_late(&rt->probe, rt->probe_asked ? rt->probe_asked_ms : 0, now)) {
        probe_failed(rt, now, true);
        return 0;
    }
    redisReply *r = NULL;
    int got = redis_link_reply(&rt->probe, &r);
    if (got < 0) {
        probe_failed(rt, now, false);
        return 0;
    }
    if (got == 0)
        return 0;
    struct redis_cluster_map m;
    bool ok;
    if (rt->checking >= 0) {
        ok = says_master(r) &&
             one_range(&m, rt->named[rt->checking].node.host, rt->named[rt->checking].node.port) == 0;
        if (!ok)
            snprintf(rt->err, sizeof(rt->err), "%.100s:%u, named by a sentinel, is no master (ROLE)",
                     rt->probe.host, rt->probe.port);
    } else {
        ok = parse(rt, r, &m);
    }
    freeReplyObject(r);
    if (!ok) {
        snprintf(rt->probe.err, sizeof(rt->probe.err), "%s", rt->err);
        probe_failed(rt, now, false);
        return 0;
    }
    redis_link_worked(&rt->probe);
    redis_link_close(&rt->probe, 0, false);
    if (rt->mode == REDIS_ROUTE_SENTINEL && rt->checking < 0) {
        /* One sentinel's answer: the round asks the others first. */
        vote(rt, &m.ranges[0].master);
        redis_cluster_map_free(&m);
        if (!next_source(rt, now))
            sources_done(rt, now);
        return 0;
    }
    rt->checking = -1;
    round_done(rt, now);
    if (rt->have_map && same_map(&rt->map, &m)) {
        redis_cluster_map_free(&m);
        /* Asked again and again while a node stays dead (each failure of
         * its link wants a map): the same answer slows the asking down,
         * 200, 400, then 800 ms apart, still well inside a failover's hold. */
        if (rt->mode == REDIS_ROUTE_CLUSTER) {
            if (rt->same_maps < 2)
                rt->same_maps++;
            rt->next_round_ms = now + (REDIS_ROUTE_REFRESH_MIN_MS << rt->same_maps);
        }
        return 0;
    }
    rt->same_maps = 0;
    *old = rt->map;
    rt->map = m;
    bool first = !rt->have_map;
    rt->have_map = true;
    if (rt->mode == REDIS_ROUTE_SENTINEL && !first)
        log_warn("redis: sentinels name a new master for %s: %s:%u", rt->cfg->redis_sentinel,
                 m.ranges[0].master.host, m.ranges[0].master.port);
    return 1;
}

uint64_t redis_route_due(const struct redis_route *rt)
{
    if (rt->mode == REDIS_ROUTE_SINGLE)
        return 0;
    if (rt->probe.phase == REDIS_LINK_DOWN)
        return rt->wanted || rt->mode == REDIS_ROUTE_SENTINEL ? rt->next_round_ms : 0;
    if (rt->probe_asked)
        return rt->probe_asked_ms + REDIS_LINK_COMMAND_MS;
    return rt->probe.deadline_ms;
}
