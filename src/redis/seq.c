/* seq.c: the sequence tables, verdicts and payload tails (see seq.h). */
#include "redis/seq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct seq_entry e;
    struct node *next;
    uint32_t hash;
    uint16_t len;
    char key[];
};

struct seq_table {
    struct node **buckets;
    size_t nbuckets, n, max;
};

static uint32_t hash_of(const char *s, size_t len)
{
    /* FNV-1a: keys are short, and a receiver's come from other pods. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

struct seq_table *seq_table_new(size_t max)
{
    struct seq_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->max = max;
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (!t->buckets) {
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
    free(t->buckets);
    free(t);
}

static void grow(struct seq_table *t)
{
    size_t n = t->nbuckets * 2;
    struct node **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct node *x = t->buckets[i];
        while (x) {
            struct node *next = x->next;
            x->next = b[x->hash & (n - 1)];
            b[x->hash & (n - 1)] = x;
            x = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

struct seq_entry *seq_table_get(struct seq_table *t, const char *key, size_t len, bool *fresh)
{
    *fresh = false;
    if (len > SEQ_KEY_MAX)
        return NULL;
    uint32_t h = hash_of(key, len);
    for (struct node *x = t->buckets[h & (t->nbuckets - 1)]; x; x = x->next)
        if (x->hash == h && x->len == len && memcmp(x->key, key, len) == 0)
            return &x->e;
    if (t->max && t->n >= t->max)
        return NULL;
    struct node *x = calloc(1, sizeof(*x) + len);
    if (!x)
        return NULL;
    x->hash = h;
    x->len = (uint16_t)len;
    memcpy(x->key, key, len);
    x->next = t->buckets[h & (t->nbuckets - 1)];
    t->buckets[h & (t->nbuckets - 1)] = x;
    *fresh = true;
    if (++t->n > t->nbuckets)
        grow(t);
    return &x->e;
}

size_t seq_table_sweep(struct seq_table *t, uint64_t before_ms)
{
    size_t gone = 0;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct node **pp = &t->buckets[i];
        while (*pp) {
            struct node *x = *pp;
            if (x->e.stamp_ms < before_ms) {
                *pp = x->next;
                free(x);
                gone++;
            } else {
                pp = &x->next;
            }
        }
    }
    t->n -= gone;
    return gone;
}

size_t seq_table_count(const struct seq_table *t)
{
    return t->n;
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
