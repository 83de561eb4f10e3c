/* nodes.h: a broker thread's Redis nodes: the slot map and one link per
 * node.
 *
 * DESIGN: the publisher and the subscriber talk to the same nodes in the
 * same way; what they share is here, written once:
 *   - finding the node that serves a slot (route.h), or the one master
 *     that carries realtime:global (one not known to hang and not just
 *     failed; another after each failure of its link, in a cluster);
 *   - one link per node (link.h), made on first need and forgotten once it
 *     serves no slot, carries nothing and holds nothing of its owner's;
 *   - reading: each link's and the map probe's handler in the owner's loop
 *     (loop.h), one chunk at a time, every reply handed to the owner in
 *     order;
 *   - liveness: connect and hello deadlines, a reply left unfinished, and
 *     no answer for REDIS_LINK_COMMAND_MS to what the owner says it owes;
 *   - what a failure does to the link (closed, asked last for a while when
 *     it hung, the map fetched again) and fetching the map.
 * What each thread does with replies, failures and a new map is its own
 * protocol, given as calls (PUBLISH answers; the subscription FIFO). Links
 * and the map are opaque outside link.c, route.c and this module: owners
 * use the accessors below.
 *
 * Owner: one set per broker thread; only that thread touches it. */
#ifndef CHAT_REDIS_NODES_H
#define CHAT_REDIS_NODES_H

#include <hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis/cluster.h"

struct config;
struct loop;
struct ssl_ctx_st;
struct redis_node;
struct redis_nodes;

/* What a set asks of its owner. Every call gets the owner's pointer. */
struct redis_nodes_calls {
    /* Sets up the owner's data of a new node (zeroed, data_size bytes).
     * Returns false when it cannot (the node is not made). */
    bool (*init)(void *owner, struct redis_node *n);
    /* Frees the owner's data of a node being forgotten or freed. */
    void (*drop)(void *owner, struct redis_node *n);
    /* Whether the owner still needs n (it holds messages, commands...). */
    bool (*busy)(void *owner, const struct redis_node *n);
    /* n's link is ready; was_failing: it had failed before (a return). */
    void (*ready)(void *owner, struct redis_node *n, bool was_failing, uint64_t now);
    /* One reply from n. Returns false when the link must go (why given
     * with redis_node_fail_why). */
    bool (*reply)(void *owner, struct redis_node *n, redisReply *r, uint64_t now);
    /* n's link failed (why in redis_node_err): the owner takes back what it
     * had there. The set closes the link (and marks a node that hung). */
    void (*failed)(void *owner, struct redis_node *n, uint64_t now);
    /* A new map is in place; old is the one before (empty the first time). */
    void (*new_map)(void *owner, const struct redis_cluster_map *old, uint64_t now);
};

/* A set for REDIS_URL's mode. data_size: the owner's bytes per node.
 * retry_cap_ms: a link that was away is tried at least this often (0: its
 * backoff's own pace); one the node refuses (AUTH, SELECT) ever more slowly.
 * NULL when out of memory or descriptors. */
struct redis_nodes *redis_nodes_new(const struct config *cfg, struct loop *loop,
                                    struct ssl_ctx_st *tls,
                                    const struct redis_nodes_calls *calls, void *owner,
                                    size_t data_size, uint32_t retry_cap_ms);
/* Frees every node (drop called for each) and the map. */
void redis_nodes_free(struct redis_nodes *ns);

/* ---- the map ---- */

/* Drives the map's fetch once per pass (calls->new_map when one comes). */
void redis_nodes_step(struct redis_nodes *ns, uint64_t now);
/* Asks for a fresh map (a node failed, answered MOVED, dropped a slot). */
void redis_nodes_want_map(struct redis_nodes *ns);
bool redis_nodes_have_map(const struct redis_nodes *ns);
/* Maps fetched so far (each fetch that worked counts, same map or not). */
unsigned redis_nodes_fetched(const struct redis_nodes *ns);
/* Rooms use sharded pub/sub (SPUBLISH, SSUBSCRIBE): REDIS_CLUSTER. */
bool redis_nodes_sharded(const struct redis_nodes *ns);
bool redis_nodes_sentinel(const struct redis_nodes *ns);
/* The master serving slot in the map held now, or NULL. */
const struct redis_cluster_node *redis_nodes_owner(const struct redis_nodes *ns, unsigned slot);

/* ---- nodes ---- */

/* The node at addr, made when new; NULL for NULL, or past REDIS_NODES_MAX,
 * or out of memory. */
struct redis_node *redis_nodes_at(struct redis_nodes *ns, const struct redis_cluster_node *addr);
/* The node serving slot (made when new), or NULL while no map says. */
struct redis_node *redis_nodes_for_slot(struct redis_nodes *ns, unsigned slot);
/* The master that carries realtime:global, picked when none is. */
struct redis_node *redis_nodes_global(struct redis_nodes *ns, uint64_t now);
/* The carrier now (NULL: none picked). */
struct redis_node *redis_nodes_carrier(const struct redis_nodes *ns);
/* realtime:global leaves its carrier; next: the next pick starts at
 * another master (after a failure in a cluster). */
void redis_nodes_let_go_global(struct redis_nodes *ns, bool next);
/* Whether n is a master of some slot in the map held now. */
bool redis_nodes_serves(const struct redis_nodes *ns, const struct redis_node *n);
/* Whether n serves slot in the map held now. */
bool redis_nodes_serves_slot(const struct redis_nodes *ns, const struct redis_node *n,
                             unsigned slot);
unsigned redis_nodes_count(const struct redis_nodes *ns);
struct redis_node *redis_nodes_get(struct redis_nodes *ns, unsigned i);

/* ---- reading, liveness, failure ---- */

/* Looks at n's deadlines once per pass: false when it failed (late
 * connecting, a reply unfinished, or nothing read for REDIS_LINK_COMMAND_MS
 * since owed_since, the time an answer is owed from: 0 when none is).
 * Lowers *next to n's next deadline. */
bool redis_nodes_watch(struct redis_nodes *ns, struct redis_node *n, uint64_t owed_since,
                       uint64_t now, uint64_t *next);
/* Opens n's link when it is down and its backoff allows (a failure to
 * start fails it). */
void redis_nodes_open(struct redis_nodes *ns, struct redis_node *n, uint64_t now);
/* Links that are down are tried now (a node answered the other thread). */
void redis_nodes_retry_now(struct redis_nodes *ns, uint64_t now);
/* n's link failed: calls->failed, then the link is closed (asked last for
 * a while when hung) and a fresh map is asked for. */
void redis_nodes_fail(struct redis_nodes *ns, struct redis_node *n, uint64_t now, bool hung);
/* Closes n's link without a failure (the node serves no slot any more). */
void redis_nodes_close(struct redis_nodes *ns, struct redis_node *n, uint64_t now);
/* Frees the nodes that serve no slot, carry nothing and are not busy, at
 * most once per NODES_FORGET_MS; between epoll batches only. */
void redis_nodes_forget(struct redis_nodes *ns, uint64_t now);
/* When the map's next step is due (for the owner's epoll timeout); 0: none. */
uint64_t redis_nodes_due(const struct redis_nodes *ns);

/* ---- one node ---- */

void *redis_node_data(struct redis_node *n); /* the owner's data_size bytes */
const char *redis_node_host(const struct redis_node *n);
unsigned redis_node_port(const struct redis_node *n);
bool redis_node_ready(const struct redis_node *n);
bool redis_node_down(const struct redis_node *n);
/* Down, and its backoff has it wait past now. */
bool redis_node_waiting(const struct redis_node *n, uint64_t now);
/* When bytes last came from it. */
uint64_t redis_node_last_read(const struct redis_node *n);
/* Why it last failed. */
const char *redis_node_err(const struct redis_node *n);
void redis_node_fail_why(struct redis_node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Logs a failure through its backoff (a line per episode, link.h). */
void redis_node_log_failure(struct redis_node *n, const char *who, const char *what);
/* Queues a command (written by redis_node_flush). False: the link failed. */
bool redis_node_send(struct redis_node *n, int argc, const char **argv, const size_t *argvlen);
bool redis_node_flush(struct redis_node *n);
/* Redis did real work on it: its backoff starts over. */
void redis_node_worked(struct redis_node *n);

#endif
