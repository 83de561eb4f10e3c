/* resolve.c: host names looked up on threads of their own (resolve.h). */
#include "redis/resolve.h"

#include "clock.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct redis_lookup {
    atomic_uint refs;  /* the owner's and the lookup thread's */
    atomic_bool done;  /* set (release) after rc and addrs are written */
    int efd;           /* readable once done; closed by the last reference */
    int rc;            /* getaddrinfo's result */
    struct redis_addrs addrs;
    char host[256];
    uint16_t port;
};

/* Names looked up lately, shared by every link (the publisher's, the
 * subscriber's, the route probes'): guarded by kept_lock. */
#define KEPT_MAX 32
static struct kept {
    char host[256];
    uint16_t port;
    uint64_t until_ms; /* 0: a free slot */
    struct redis_addrs addrs;
} kept[KEPT_MAX];
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static struct kept *kept_find(const char *host, uint16_t port)
{
    for (unsigned i = 0; i < KEPT_MAX; i++)
        if (kept[i].until_ms && kept[i].port == port && strcmp(kept[i].host, host) == 0)
            return &kept[i];
    return NULL;
}

bool redis_resolve_kept(const char *host, uint16_t port, uint64_t now, struct redis_addrs *out)
{
    pthread_mutex_lock(&kept_lock);
    struct kept *k = kept_find(host, port);
    bool fresh = k && now < k->until_ms;
    if (fresh)
        *out = k->addrs;
    pthread_mutex_unlock(&kept_lock);
    return fresh;
}

void redis_resolve_forget(const char *host, uint16_t port)
{
    pthread_mutex_lock(&kept_lock);
    struct kept *k = kept_find(host, port);
    if (k)
        k->until_ms = 0;
    pthread_mutex_unlock(&kept_lock);
}

/* Keeps what a lookup found, in the slot of the same name or the one that
 * expires first. */
static void keep(const char *host, uint16_t port, const struct redis_addrs *a, uint64_t now)
{
    pthread_mutex_lock(&kept_lock);
    struct kept *k = kept_find(host, port);
    if (!k) {
        k = &kept[0];
        for (unsigned i = 1; i < KEPT_MAX; i++)
            if (kept[i].until_ms < k->until_ms)
                k = &kept[i];
    }
    snprintf(k->host, sizeof(k->host), "%s", host);
    k->port = port;
    k->addrs = *a;
    k->until_ms = now + REDIS_RESOLVE_KEEP_MS;
    pthread_mutex_unlock(&kept_lock);
}

static void copy_addrs(const struct addrinfo *res, struct redis_addrs *out)
{
    out->n = 0;
    for (const struct addrinfo *a = res; a && out->n < REDIS_RESOLVE_ADDRS; a = a->ai_next) {
        if (a->ai_addrlen > sizeof(out->addr[0]))
            continue;
        memcpy(&out->addr[out->n], a->ai_addr, a->ai_addrlen);
        out->len[out->n++] = a->ai_addrlen;
    }
}

bool redis_resolve_numeric(const char *host, uint16_t port, struct redis_addrs *out)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    *out = (struct redis_addrs){0};
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
        memcpy(&out->addr[0], &v4, sizeof(v4));
        out->len[0] = sizeof(v4);
    } else if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
        memcpy(&out->addr[0], &v6, sizeof(v6));
        out->len[0] = sizeof(v6);
    } else {
        return false;
    }
    out->n = 1;
    return true;
}

void redis_lookup_drop(struct redis_lookup *lk)
{
    if (!lk || atomic_fetch_sub(&lk->refs, 1) != 1)
        return;
    close(lk->efd);
    free(lk);
}

static void *lookup_main(void *arg)
{
    struct redis_lookup *lk = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", lk->port);
    lk->rc = getaddrinfo(lk->host, port, &hints, &res);
    if (lk->rc == 0) {
        copy_addrs(res, &lk->addrs);
        if (lk->addrs.n == 0)
            lk->rc = EAI_NONAME;
    }
    if (res)
        freeaddrinfo(res);
    if (lk->rc == 0)
        keep(lk->host, lk->port, &lk->addrs, clock_now_ms());
    atomic_store_explicit(&lk->done, true, memory_order_release);
    uint64_t one = 1;
    ssize_t w = write(lk->efd, &one, sizeof(one));
    (void)w; /* an eventfd counter cannot overflow from one write */
    redis_lookup_drop(lk);
    return NULL;
}

struct redis_lookup *redis_lookup_start(const char *host, uint16_t port)
{
    struct redis_lookup *lk = calloc(1, sizeof(*lk));
    if (!lk)
        return NULL;
    lk->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lk->efd < 0) {
        free(lk);
        return NULL;
    }
    snprintf(lk->host, sizeof(lk->host), "%s", host);
    lk->port = port;
    atomic_init(&lk->refs, 2);
    atomic_init(&lk->done, false);
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, lookup_main, lk);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(lk->efd);
        free(lk);
        return NULL;
    }
    return lk;
}

bool redis_lookup_is(const struct redis_lookup *lk, const char *host, uint16_t port)
{
    return lk->port == port && strcmp(lk->host, host) == 0;
}

int redis_lookup_fd(const struct redis_lookup *lk)
{
    return lk->efd;
}

int redis_lookup_result(const struct redis_lookup *lk, struct redis_addrs *out, char *err,
                        size_t errlen)
{
    if (!atomic_load_explicit(&lk->done, memory_order_acquire))
        return 0;
    if (lk->rc != 0) {
        snprintf(err, errlen, "%s", gai_strerror(lk->rc));
        return -1;
    }
    *out = lk->addrs;
    return 1;
}
