/* hmap.c: the keyed, chained, intrusive hash map (hmap.h). */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The process' SipHash key: fixed until hmap_random_key (hmap.h). */
static uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;

static uint64_t load64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void hmap_set_key(const uint8_t key[16])
{
    k0 = load64(key);
    k1 = load64(key + 8);
}

int hmap_random_key(void)
{
    uint8_t key[16];
    if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
        return -1;
    hmap_set_key(key);
    return 0;
}

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

/* SipHash-2-4 (Aumasson and Bernstein, 2012): two rounds per 8-byte word,
 * four to finish. */
uint64_t hmap_siphash(const void *p, size_t len)
{
    const uint8_t *in = p;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    size_t words = len / 8;
    for (size_t w = 0; w < words; w++) {
        uint64_t m = load64(in + 8 * w);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++)
        b |= (uint64_t)in[8 * words + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint32_t hmap_hash(const void *key, size_t len)
{
    uint64_t h = hmap_siphash(key, len);
    return (uint32_t)(h ^ (h >> 32));
}

int hmap_init(struct hmap *m, size_t first)
{
    size_t n = 8;
    while (n < first)
        n *= 2;
    *m = (struct hmap){0};
    m->buckets = calloc(n, sizeof(*m->buckets));
    if (!m->buckets)
        return -1;
    m->nbuckets = n;
    return 0;
}

void hmap_free(struct hmap *m)
{
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->n = 0;
}

struct hmap_node **hmap_find(const struct hmap *m, uint32_t hash, hmap_eq_fn eq, const void *key)
{
    if (!m->nbuckets)
        return NULL;
    for (struct hmap_node **l = &m->buckets[hash & (m->nbuckets - 1)]; *l; l = &(*l)->next)
        if ((*l)->hash == hash && eq(*l, key))
            return l;
    return NULL;
}

static void grow(struct hmap *m)
{
    size_t n = m->nbuckets * 2;
    struct hmap_node **b = calloc(n, sizeof(*b));
    if (!b) {
        m->grow_failures++;
        return;
    }
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct hmap_node *x = m->buckets[i];
        while (x) {
            struct hmap_node *next = x->next;
            x->next = b[x->hash & (n - 1)];
            b[x->hash & (n - 1)] = x;
            x = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void hmap_insert(struct hmap *m, struct hmap_node *node, uint32_t hash)
{
    if (m->n >= m->nbuckets)
        grow(m);
    node->hash = hash;
    struct hmap_node **head = &m->buckets[hash & (m->nbuckets - 1)];
    node->next = *head;
    *head = node;
    m->n++;
}

void hmap_unlink(struct hmap *m, struct hmap_node **link)
{
    struct hmap_node *x = *link;
    *link = x->next;
    x->next = NULL;
    m->n--;
}

/* Moves the walk to the next entry from its link on, across buckets. */
static struct hmap_node *settle(struct hmap_iter *it)
{
    while (!*it->link) {
        if (it->left == 0)
            return NULL;
        it->left--;
        it->bucket = (it->bucket + 1) & (it->m->nbuckets - 1);
        it->link = &it->m->buckets[it->bucket];
    }
    it->unlinked = false;
    return *it->link;
}

struct hmap_node *hmap_iter_start(struct hmap_iter *it, struct hmap *m, size_t from)
{
    it->m = m;
    it->unlinked = false;
    if (m->nbuckets == 0)
        return NULL;
    it->bucket = from & (m->nbuckets - 1);
    it->left = m->nbuckets - 1;
    it->link = &m->buckets[it->bucket];
    return settle(it);
}

struct hmap_node *hmap_iter_next(struct hmap_iter *it)
{
    if (!it->unlinked)
        it->link = &(*it->link)->next;
    return settle(it);
}

void hmap_iter_unlink(struct hmap_iter *it)
{
    hmap_unlink(it->m, it->link);
    it->unlinked = true;
}

struct hmap_node **hmap_link_of(struct hmap *m, struct hmap_node *node)
{
    struct hmap_node **l = &m->buckets[node->hash & (m->nbuckets - 1)];
    while (*l != node)
        l = &(*l)->next;
    return l;
}

size_t hmap_longest_chain(const struct hmap *m)
{
    size_t longest = 0;
    for (size_t i = 0; i < m->nbuckets; i++) {
        size_t k = 0;
        for (const struct hmap_node *x = m->buckets[i]; x; x = x->next)
            k++;
        if (k > longest)
            longest = k;
    }
    return longest;
}
