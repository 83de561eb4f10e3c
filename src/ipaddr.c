/* ipaddr.c: addresses, networks, X-Forwarded-For and counts (ipaddr.h). */
#include "ipaddr.h"

#include "hmap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool ipaddr_parse(const char *s, size_t len, struct ipaddr *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct in_addr v4;
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        memcpy(out->b, V4_MAPPED, 12);
        memcpy(out->b + 12, &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, buf, out->b) == 1;
}

bool ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memcpy(out->b, V4_MAPPED, 12);
        memcpy(out->b + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(out->b, &in6->sin6_addr, 16);
        return true;
    }
    return false;
}

void ipaddr_format(const struct ipaddr *a, char *out, size_t cap)
{
    if (memcmp(a->b, V4_MAPPED, 12) == 0)
        inet_ntop(AF_INET, a->b + 12, out, (socklen_t)cap);
    else
        inet_ntop(AF_INET6, a->b, out, (socklen_t)cap);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims blanks around s[*from..*to). */
static void trim(const char *s, size_t *from, size_t *to)
{
    while (*from < *to && is_space(s[*from]))
        (*from)++;
    while (*to > *from && is_space(s[*to - 1]))
        (*to)--;
}

int ipnet_parse_list(const char *s, struct ipnet *nets, int max)
{
    int n = 0;
    size_t len = strlen(s), i = 0;
    while (i <= len) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t end = comma ? (size_t)(comma - s) : len, from = i, to = end;
        trim(s, &from, &to);
        if (from == to || n == max)
            return -1;
        const char *slash = memchr(s + from, '/', to - from);
        size_t alen = slash ? (size_t)(slash - (s + from)) : to - from;
        struct ipnet *net = &nets[n];
        if (!ipaddr_parse(s + from, alen, &net->addr))
            return -1;
        bool v4 = memcmp(net->addr.b, V4_MAPPED, 12) == 0;
        unsigned prefix = v4 ? 32 : 128;
        if (slash) {
            size_t k = (size_t)(slash - s) + 1;
            if (k == to || to - k > 3)
                return -1;
            prefix = 0;
            for (; k < to; k++) {
                if (s[k] < '0' || s[k] > '9')
                    return -1;
                prefix = prefix * 10 + (unsigned)(s[k] - '0');
            }
            if (prefix > (v4 ? 32u : 128u))
                return -1;
        }
        net->prefix = (uint8_t)(v4 ? prefix + 96 : prefix);
        n++;
        i = end + 1;
    }
    return n;
}

static bool in_net(const struct ipnet *net, const struct ipaddr *a)
{
    unsigned bits = net->prefix, full = bits / 8, rest = bits % 8;
    if (memcmp(net->addr.b, a->b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (net->addr.b[full] & mask) == (a->b[full] & mask);
}

bool ipnet_contains(const struct ipnet *nets, int n, const struct ipaddr *a)
{
    for (int i = 0; i < n; i++)
        if (in_net(&nets[i], a))
            return true;
    return false;
}

/* Whether s[0..len) is 1 to 5 decimal digits (a port). */
/* A port as proxies write it after an address: digits, or nothing ("1.2.3.4:"). */
static bool is_port(const char *s, size_t len)
{
    if (len > 5)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* One X-Forwarded-For entry: an address, or an address in brackets, or
 * either with a port ("[v6]:port", "v4:port", "[v4]:port"): what proxies
 * write. Any form that names an address names the client (issue 25: these
 * used to fall back to the proxy's own address, so every client behind it
 * shared one quota). */
static bool parse_hop(const char *s, size_t len, struct ipaddr *out)
{
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return false;
        size_t in = (size_t)(close - s) - 1, after = len - in - 2;
        if (after > 0 && (close[1] != ':' || !is_port(close + 2, after - 1)))
            return false;
        return ipaddr_parse(s + 1, in, out);
    }
    const char *colon = memchr(s, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon + 1 - s))) {
        size_t alen = (size_t)(colon - s);
        return is_port(colon + 1, len - alen - 1) && ipaddr_parse(s, alen, out) &&
               memcmp(out->b, V4_MAPPED, 12) == 0;
    }
    return ipaddr_parse(s, len, out);
}

struct ipaddr ipaddr_quota_key(const struct ipaddr *a, unsigned v6_prefix)
{
    struct ipaddr k = *a;
    if (memcmp(a->b, V4_MAPPED, 12) == 0 || v6_prefix >= 128)
        return k;
    unsigned full = v6_prefix / 8, rest = v6_prefix % 8;
    if (rest) {
        k.b[full] &= (uint8_t)(0xff << (8 - rest));
        full++;
    }
    memset(k.b + full, 0, 16 - full);
    return k;
}

struct ipaddr ipaddr_client(const struct ipaddr *peer, const char *xff, size_t xff_len,
                            const struct ipnet *trusted, int ntrusted)
{
    struct ipaddr client = *peer;
    if (!xff || !ipnet_contains(trusted, ntrusted, peer))
        return client;
    /* Walk from the right: each hop appended the address it saw. The first
     * one that is not a trusted proxy is the client. */
    size_t end = xff_len;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t from = start, to = end;
        trim(xff, &from, &to);
        struct ipaddr hop;
        if (!parse_hop(xff + from, to - from, &hop))
            return client;
        client = hop;
        if (!ipnet_contains(trusted, ntrusted, &hop) || start == 0)
            return client;
        end = start - 1;
    }
}

struct ip_count_entry {
    struct ipaddr addr;
    uint32_t n;
    struct hmap_node hn; /* in the counts' map, by address */
};

static bool same_addr(const struct hmap_node *n, const void *a)
{
    return memcmp(&hmap_entry(n, struct ip_count_entry, hn)->addr, a, sizeof(struct ipaddr)) == 0;
}

int ip_counts_init(struct ip_counts *t)
{
    *t = (struct ip_counts){0};
    if (hmap_init(&t->map, 1024) < 0)
        return -1;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        hmap_free(&t->map);
        return -1;
    }
    return 0;
}

void ip_counts_free(struct ip_counts *t)
{
    struct hmap_iter it;
    hmap_each(x, &it, &t->map) {
        hmap_iter_unlink(&it);
        free(hmap_entry(x, struct ip_count_entry, hn));
    }
    hmap_free(&t->map);
    pthread_mutex_destroy(&t->lock);
}

bool ip_counts_take(struct ip_counts *t, const struct ipaddr *a, uint32_t limit)
{
    /* Keyed (hmap.h): clients choose their addresses within a /64. */
    uint32_t h = hmap_hash(a, sizeof(*a));
    pthread_mutex_lock(&t->lock);
    struct hmap_node **l = hmap_find(&t->map, h, same_addr, a);
    struct ip_count_entry *e = l ? hmap_entry(*l, struct ip_count_entry, hn) : NULL;
    bool ok = false;
    if (e) {
        if (e->n < limit) {
            e->n++;
            ok = true;
        }
    } else if (limit > 0 && (e = malloc(sizeof(*e)))) {
        e->addr = *a;
        e->n = 1;
        hmap_insert(&t->map, &e->hn, h);
        ok = true;
    }
    pthread_mutex_unlock(&t->lock);
    return ok;
}

void ip_counts_release(struct ip_counts *t, const struct ipaddr *a)
{
    uint32_t h = hmap_hash(a, sizeof(*a));
    pthread_mutex_lock(&t->lock);
    struct hmap_node **l = hmap_find(&t->map, h, same_addr, a);
    if (l) {
        struct ip_count_entry *e = hmap_entry(*l, struct ip_count_entry, hn);
        if (--e->n == 0) {
            hmap_unlink(&t->map, l);
            free(e);
        }
    }
    pthread_mutex_unlock(&t->lock);
}
