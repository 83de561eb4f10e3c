/* seq.c: the sequence tables, verdicts and payload tails (see seq.h). */
#include "redis/seq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

struct node {
    struct seq_entry e;
    struct hmap_node hn; /* in the table's map, by key */
    uint16_t len;
    char key[];
};

struct seq_table {
    struct hmap map;
    size_t max;
};

struct key {
    const char *s;
    size_t len;
};

static bool same_key(const struct hmap_node *n, const void *k)
{
    const struct node *x = hmap_entry(n, struct node, hn);
    const struct key *key = k;
    return x->len == key->len && memcmp(x->key, key->s, key->len) == 0;
}

struct seq_table *seq_table_new(size_t max)
{
    struct seq_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->max = max;
    if (hmap_init(&t->map, 64) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

void seq_table_free(struct seq_table *t)
{
    if (!t)
        return;
    seq_table_sweep(t, UINT64_MAX);
    hmap_free(&t->map);
    free(t);
}

struct seq_entry *seq_table_get(struct seq_table *t, const char *key, size_t len, bool *fresh)
{
    *fresh = false;
    if (len > SEQ_KEY_MAX)
        return NULL;
    /* Keyed (hmap.h): a receiver's keys come from whoever publishes. */
    uint32_t h = hmap_hash(key, len);
    struct key k = {key, len};
    struct hmap_node **l = hmap_find(&t->map, h, same_key, &k);
    if (l)
        return &hmap_entry(*l, struct node, hn)->e;
    if (t->max && t->map.n >= t->max)
        return NULL;
    struct node *x = calloc(1, sizeof(*x) + len);
    if (!x)
        return NULL;
    x->len = (uint16_t)len;
    memcpy(x->key, key, len);
    hmap_insert(&t->map, &x->hn, h);
    *fresh = true;
    return &x->e;
}

size_t seq_table_sweep(struct seq_table *t, uint64_t before_ms)
{
    size_t gone = 0;
    struct hmap_iter it;
    hmap_each(n, &it, &t->map) {
        struct node *x = hmap_entry(n, struct node, hn);
        if (x->e.stamp_ms < before_ms) {
            hmap_iter_unlink(&it);
            free(x);
            gone++;
        }
    }
    return gone;
}

size_t seq_table_count(const struct seq_table *t)
{
    return t->map.n;
}

enum seq_verdict seq_accept(struct seq_entry *e, bool fresh, uint64_t seq, uint64_t *lost)
{
    *lost = 0;
    if (fresh) {
        /* A first sight says nothing about what came before it. */
        e->value = seq;
        return SEQ_NEXT;
    }
    if (seq <= e->value ? e->value - seq >= SEQ_JUMP_MAX : seq - e->value > SEQ_JUMP_MAX) {
        e->value = seq;
        return SEQ_RESTART;
    }
    if (seq <= e->value)
        return SEQ_DUPLICATE;
    *lost = seq - e->value - 1;
    e->value = seq;
    return *lost ? SEQ_GAP : SEQ_NEXT;
}
