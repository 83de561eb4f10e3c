/* route.h: which Redis node serves which channel.
 *
 * DESIGN: every mode is a slot map (cluster.h): a channel's hash slot names
 * the master to publish and subscribe it on.
 * - single Redis: one range, 0-16383, owned by REDIS_URL's host;
 * - Redis Cluster: CLUSTER SLOTS, asked of the masters of the map we have,
 *   then of REDIS_URL's seeds;
 * - Sentinel: one range owned by the master that the sentinels of
 *   REDIS_URL name (SENTINEL get-master-addr-by-name REDIS_SENTINEL), asked
 *   again every second so that a switch is followed. Every sentinel is
 *   asked in a round. The master in use is kept while any sentinel names it
 *   and no other address has a majority of those that answered; otherwise
 *   the addresses named are tried, most named first, and the first that
 *   answers ROLE with "master" is used. So sentinels that disagree, or one
 *   that names a replica, never move the pods to a replica or back and
 *   forth.
 * A map is fetched off the hot path, through a probe link of its own driven
 * by the owner thread's epoll: the loop never waits for it. Nodes known to
 * hang (a link of the owner timed out on them) are asked last.
 *
 * Owner: one per broker thread (publisher, subscriber); nothing locks. */
#ifndef CHAT_REDIS_ROUTE_H
#define CHAT_REDIS_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "redis/cluster.h"
#include "redis/link_internal.h"

struct config;

enum redis_route_mode { REDIS_ROUTE_SINGLE, REDIS_ROUTE_CLUSTER, REDIS_ROUTE_SENTINEL };

#define REDIS_ROUTE_SICK_MAX 16
/* A fresh map is asked for at most this often, however many failures ask. */
#define REDIS_ROUTE_REFRESH_MIN_MS 200
/* Sentinel: the master's address is asked again this often. */
#define REDIS_ROUTE_SENTINEL_POLL_MS 1000
/* A reply from a node may be this much longer than MAX_MESSAGE_SIZE: a
 * message's framing and numbering, or a big cluster's CLUSTER SLOTS. */
#define REDIS_ROUTE_REPLY_SLACK (1u << 20)
/* Sentinel: at most this many different masters named in one round. */
#define REDIS_ROUTE_NAMED_MAX 8

/* Sentinel: an address some of a round's sentinels named as the master. */
struct redis_route_named {
    struct redis_cluster_node node;
    unsigned votes;
};

struct redis_route {
    enum redis_route_mode mode;
    const struct config *cfg;
    struct redis_link_env env;       /* for the nodes */
    struct redis_link_env probe_env; /* for the map's source (sentinels: no AUTH) */
    struct redis_cluster_map map;
    bool have_map;
    struct redis_link probe;
    bool probe_asked;         /* the question is on its way */
    uint64_t probe_asked_ms;
    unsigned round_tries;     /* sources tried in this round */
    unsigned next_source;
    bool wanted;              /* a fresh map is wanted */
    unsigned same_maps;       /* fetches in a row that brought the map we had (0-2) */
    unsigned fetched;         /* rounds that worked: +1 each (the map may be the same) */
    uint64_t next_round_ms;   /* not before this */
    struct redis_backoff bo;  /* between failed rounds */
    struct {
        struct redis_cluster_node node;
        uint64_t until_ms;
    } sick[REDIS_ROUTE_SICK_MAX];
    char err[300]; /* why the last round failed */
    /* Sentinel: what this round's sentinels named, and which of those is
     * being asked ROLE (-1: the sentinels are being asked). */
    struct redis_route_named named[REDIS_ROUTE_NAMED_MAX];
    unsigned nnamed, answered;
    int checking;
};

/* Returns 0 or -1. loop is the owner thread's; probe_io handles the
 * probe's events (it calls redis_route_step). */
int redis_route_init(struct redis_route *rt, const struct config *cfg, struct loop *loop,
                     struct ssl_ctx_st *tls, loop_fn *probe_io);
void redis_route_free(struct redis_route *rt);

/* The hash slot of a channel (cluster.h), whatever the mode. */
unsigned redis_route_slot(const char *channel);

/* The master serving slot, or NULL while no map says. */
const struct redis_cluster_node *redis_route_owner(const struct redis_route *rt, unsigned slot);

/* Asks for a fresh map (a node failed, answered MOVED, dropped a slot). */
void redis_route_want(struct redis_route *rt);

/* A node did not answer in time: asked last for a while. */
void redis_route_sick(struct redis_route *rt, const char *host, uint16_t port, uint64_t now);

/* Drives the fetch: on the probe's epoll events (io) and once per pass
 * (tick, events 0). Returns 1 when a new map is in place: the previous one
 * is moved into *old (the caller frees it with redis_cluster_map_free). */
int redis_route_step(struct redis_route *rt, uint32_t events, uint64_t now,
                     struct redis_cluster_map *old);

/* When the next step is due (for the owner's epoll timeout); 0: none. */
uint64_t redis_route_due(const struct redis_route *rt);

bool redis_same_node(const struct redis_cluster_node *a, const char *host, uint16_t port);

/* Whether host:port is the master of some slot in the map held now. */
bool redis_route_is_master(const struct redis_route *rt, const char *host, uint16_t port);

#endif
