/* cluster.h: what a Redis Cluster client has to compute itself. Pure.
 *
 * hiredis 0.14 knows nothing of Redis Cluster, so the three things a cluster
 * client needs are ours: the hash slot of a channel (CRC16/XMODEM of the key
 * or of its {hash tag}, modulo 16384), the cluster's map of slots to nodes
 * (from CLUSTER SLOTS), and the redirections a node answers with (MOVED,
 * ASK). Bytes and reply trees in, results out; unit-tested against slots
 * that Redis' own CLUSTER KEYSLOT gave, and fuzzed.
 *
 * The route map (route.c) and the publisher and subscriber that use it
 * route SPUBLISH and SSUBSCRIBE with it. */
#ifndef CHAT_REDIS_CLUSTER_H
#define CHAT_REDIS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REDIS_CLUSTER_SLOTS 16384
#define REDIS_CLUSTER_HOST_MAX 255
#define REDIS_CLUSTER_RANGES_MAX 16384

/* CRC16/XMODEM: polynomial 0x1021, initial 0, not reflected, no final xor. */
uint16_t redis_cluster_crc16(const char *s, size_t len);

/* The hash slot of key: of the part between the first '{' and the next '}'
 * when that part is not empty, else of the whole key. */
unsigned redis_cluster_slot(const char *key, size_t len);

struct redis_cluster_node {
    char host[REDIS_CLUSTER_HOST_MAX + 1];
    uint16_t port;
};

/* A redirection: "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381". */
struct redis_cluster_redirect {
    bool ask; /* ASK: this one command only; MOVED: the slot has moved */
    unsigned slot;
    struct redis_cluster_node node;
};

/* Parses an error reply's text. Returns false when it is not a redirection. */
bool redis_cluster_parse_redirect(const char *msg, size_t len, struct redis_cluster_redirect *out);

/* Which master serves which slots. */
struct redis_cluster_range {
    uint16_t first, last;
    struct redis_cluster_node master;
};

struct redis_cluster_map {
    size_t n; /* ranges, sorted by first slot, not overlapping */
    struct redis_cluster_range *ranges;
};

struct redisReply;

/* Builds the map from a CLUSTER SLOTS reply: an array of [first, last,
 * [host, port, id...], replicas...]. Returns 0, or -1 when the reply is not
 * of that shape or ranges overlap (map left empty). The caller frees it with
 * redis_cluster_map_free. */
int redis_cluster_parse_slots(const struct redisReply *reply, struct redis_cluster_map *map);

void redis_cluster_map_free(struct redis_cluster_map *map);

/* The master of slot, or NULL when no range covers it. */
const struct redis_cluster_node *redis_cluster_owner(const struct redis_cluster_map *map,
                                                     unsigned slot);

/* Whether a and b (either may be NULL) are the same node. */
bool redis_cluster_same(const struct redis_cluster_node *a, const struct redis_cluster_node *b);

#endif
