/* cluster.c: slots, the slot map and redirections (see cluster.h). */
#include "redis/cluster.h"

/* Protocol code builds with -Wconversion; hiredis' own headers do
 * not pass it, and it is not ours to change. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include <hiredis.h>
#pragma GCC diagnostic pop
#include <stdlib.h>
#include <string.h>

uint16_t redis_cluster_crc16(const char *s, size_t len)
{
    /* Bit by bit: a channel name is short, and no table to get wrong. */
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)s[i] << 8);
        for (int b = 0; b < 8; b++) {
            bool carry = (crc & 0x8000) != 0;
            crc = (uint16_t)(crc << 1);
            if (carry)
                crc ^= 0x1021;
        }
    }
    return crc;
}

unsigned redis_cluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && close > open + 1)
            return redis_cluster_crc16(open + 1, (size_t)(close - open - 1)) % REDIS_CLUSTER_SLOTS;
    }
    return redis_cluster_crc16(key, len) % REDIS_CLUSTER_SLOTS;
}

/* Reads a decimal number in s[*at..len) up to max; moves *at past it. */
static bool number(const char *s, size_t len, size_t *at, unsigned long max, unsigned long *out)
{
    size_t i = *at;
    unsigned long v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i - *at < 10) {
        v = v * 10 + (unsigned long)(s[i] - '0');
        i++;
    }
    if (i == *at || v > max)
        return false;
    *at = i;
    *out = v;
    return true;
}

/* "host:port", the host possibly an IPv6 literal with colons: the port
 * follows the last colon. */
static bool node_from(const char *s, size_t len, struct redis_cluster_node *node)
{
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon || colon == s || (size_t)(colon - s) > REDIS_CLUSTER_HOST_MAX)
        return false;
    size_t hl = (size_t)(colon - s), at = hl + 1;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false; /* a host name or address literal has no blanks */
    unsigned long port;
    if (!number(s, len, &at, 65535, &port) || at != len || port == 0)
        return false;
    memcpy(node->host, s, hl);
    node->host[hl] = '\0';
    node->port = (uint16_t)port;
    return true;
}

bool redis_cluster_parse_redirect(const char *msg, size_t len, struct redis_cluster_redirect *out)
{
    size_t at;
    if (len > 6 && memcmp(msg, "MOVED ", 6) == 0) {
        out->ask = false;
        at = 6;
    } else if (len > 4 && memcmp(msg, "ASK ", 4) == 0) {
        out->ask = true;
        at = 4;
    } else {
        return false;
    }
    unsigned long slot;
    if (!number(msg, len, &at, REDIS_CLUSTER_SLOTS - 1, &slot) || at >= len || msg[at] != ' ')
        return false;
    out->slot = (unsigned)slot;
    at++;
    return node_from(msg + at, len - at, &out->node);
}

static int by_first(const void *a, const void *b)
{
    const struct redis_cluster_range *x = a, *y = b;
    return (int)x->first - (int)y->first;
}

int redis_cluster_parse_slots(const struct redisReply *reply, struct redis_cluster_map *map)
{
    *map = (struct redis_cluster_map){0};
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements > REDIS_CLUSTER_RANGES_MAX)
        return -1;
    map->ranges = calloc(reply->elements ? reply->elements : 1, sizeof(*map->ranges));
    if (!map->ranges)
        return -1;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *r = reply->element[i];
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
            r->element[0]->type != REDIS_REPLY_INTEGER ||
            r->element[1]->type != REDIS_REPLY_INTEGER ||
            r->element[2]->type != REDIS_REPLY_ARRAY || r->element[2]->elements < 2)
            goto bad;
        long long first = r->element[0]->integer, last = r->element[1]->integer;
        const redisReply *m = r->element[2];
        if (first < 0 || last < first || last >= REDIS_CLUSTER_SLOTS ||
            m->element[0]->type != REDIS_REPLY_STRING || m->element[0]->len == 0 ||
            m->element[0]->len > REDIS_CLUSTER_HOST_MAX ||
            m->element[1]->type != REDIS_REPLY_INTEGER || m->element[1]->integer <= 0 ||
            m->element[1]->integer > 65535)
            goto bad;
        struct redis_cluster_range *out = &map->ranges[map->n++];
        out->first = (uint16_t)first;
        out->last = (uint16_t)last;
        memcpy(out->master.host, m->element[0]->str, m->element[0]->len);
        out->master.host[m->element[0]->len] = '\0';
        out->master.port = (uint16_t)m->element[1]->integer;
    }
    qsort(map->ranges, map->n, sizeof(*map->ranges), by_first);
    for (size_t i = 1; i < map->n; i++)
        if (map->ranges[i].first <= map->ranges[i - 1].last)
            goto bad;
    return 0;
bad:
    redis_cluster_map_free(map);
    return -1;
}

void redis_cluster_map_free(struct redis_cluster_map *map)
{
    free(map->ranges);
    *map = (struct redis_cluster_map){0};
}

const struct redis_cluster_node *redis_cluster_owner(const struct redis_cluster_map *map,
                                                     unsigned slot)
{
    size_t lo = 0, hi = map->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct redis_cluster_range *r = &map->ranges[mid];
        if (slot < r->first)
            hi = mid;
        else if (slot > r->last)
            lo = mid + 1;
        else
            return &r->master;
    }
    return NULL;
}

bool redis_cluster_same(const struct redis_cluster_node *a, const struct redis_cluster_node *b)
{
    return a && b && a->port == b->port && strcmp(a->host, b->host) == 0;
}
