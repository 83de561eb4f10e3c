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

/* Reads the decimal number that ends just before *end (moving *end back over
 * it). False when there is none or it overflows. */
static bool number_before(const char *p, size_t *end, uint64_t *v)
{
    size_t i = *end, digits = 0;
    while (i > 0 && p[i - 1] >= '0' && p[i - 1] <= '9' && digits < 20) {
        i--;
        digits++;
    }
    if (digits == 0 || digits == 20 || (digits > 1 && p[i] == '0'))
        return false;
    uint64_t n = 0;
    for (size_t k = i; k < *end; k++)
        n = n * 10 + (uint64_t)(p[k] - '0');
    *v = n;
    *end = i;
    return true;
}

/* Moves *end back over lit, which must stand just before it. */
static bool lit_before(const char *p, size_t *end, const char *lit)
{
    size_t n = strlen(lit);
    if (*end < n || memcmp(p + *end - n, lit, n) != 0)
        return false;
    *end -= n;
    return true;
}

bool seq_tail_parse(const char *payload, size_t len, struct seq_tail *t)
{
    size_t end = len;
    if (!lit_before(payload, &end, "}") || !number_before(payload, &end, &t->epoch) ||
        !lit_before(payload, &end, ",\"epoch\":") || !number_before(payload, &end, &t->seq) ||
        !lit_before(payload, &end, ",\"seq\":"))
        return false;
    t->body_len = end;
    if (!lit_before(payload, &end, "\""))
        return false;
    /* The pod id: config.c allows no quote or backslash in it. */
    size_t stop = end;
    while (end > 0 && payload[end - 1] != '"' && payload[end - 1] != '\\')
        end--;
    if (end == stop || end == 0 || payload[end - 1] != '"')
        return false;
    t->pod = payload + end;
    t->pod_len = stop - end;
    end--;
    return lit_before(payload, &end, "\"pod\":") && end > 0 &&
           (payload[end - 1] == ',' || payload[end - 1] == '{');
}

size_t seq_tail_append(const char *payload, size_t len, uint64_t seq, uint64_t epoch, char *out,
                       size_t cap)
{
    if (len == 0 || payload[len - 1] != '}')
        return 0;
    char tail[64];
    int n = snprintf(tail, sizeof(tail), ",\"seq\":%llu,\"epoch\":%llu}", (unsigned long long)seq,
                     (unsigned long long)epoch);
    if (n < 0 || len - 1 + (size_t)n > cap)
        return 0;
    memcpy(out, payload, len - 1);
    memcpy(out + len - 1, tail, (size_t)n);
    return len - 1 + (size_t)n;
}
