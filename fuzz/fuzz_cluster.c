/* fuzz_cluster.c: slots, redirections and CLUSTER SLOTS replies: no crash,
 * and what parses is consistent. */
#include <hiredis.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* hiredis 0.14's reader allocates what a multibulk or bulk header declares
 * ("*2500000000" is a 20 GB request from a few bytes): a limit of hiredis,
 * not of the code under test, so replies declaring more than 4096 are not fed. */
static int sizes_small(const char *s, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if ((s[i] != '*' && s[i] != '$') || (i > 0 && s[i - 1] != '\n'))
            continue;
        unsigned long n = 0;
        for (size_t k = i + 1; k < size && s[k] >= '0' && s[k] <= '9'; k++)
            if ((n = n * 10 + (unsigned long)(s[k] - '0')) > 4096)
                return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    unsigned slot = redis_cluster_slot(s, size);
    if (slot >= REDIS_CLUSTER_SLOTS)
        abort();
    /* A key and its non-empty tag alone share a slot. */
    const char *open = memchr(s, '{', size);
    if (open) {
        size_t from = (size_t)(open - s) + 1;
        const char *close = memchr(s + from, '}', size - from);
        if (close && close > open + 1 &&
            redis_cluster_slot(open + 1, (size_t)(close - open - 1)) != slot)
            abort();
    }
    struct redis_cluster_redirect r;
    if (redis_cluster_parse_redirect(s, size, &r) &&
        (r.slot >= REDIS_CLUSTER_SLOTS || r.node.port == 0 || !r.node.host[0]))
        abort();
    if (!sizes_small(s, size))
        return 0;
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, s, size);
    void *reply = NULL;
    if (redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        struct redis_cluster_map map;
        if (redis_cluster_parse_slots(reply, &map) == 0) {
            for (size_t i = 0; i < map.n; i++) {
                const struct redis_cluster_range *g = &map.ranges[i];
                if (g->first > g->last || (i && g->first <= map.ranges[i - 1].last) ||
                    redis_cluster_owner(&map, g->first) != &g->master ||
                    redis_cluster_owner(&map, g->last) != &g->master)
                    abort();
            }
            redis_cluster_map_free(&map);
        }
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
    return 0;
}
