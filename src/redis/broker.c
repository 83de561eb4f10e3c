/* broker.c: the Redis broker's start, stop and status; its two threads
 * are publisher.c and subscriber.c, over links (link.h) and a slot map
 * (route.h). */
#include "redis/broker.h"
#include "redis/broker_internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "broker_seam.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "redis/outbox.h"
#include "room/registry.h"
#include "stats.h"

void redis_broker_node_back(struct redis_broker *rb, bool from_publisher)
{
    atomic_fetch_add(&rb->back_gen, 1);
    uint64_t one = 1;
    ssize_t w = write(from_publisher ? rb->wake_efd : rb->pub_efd, &one, sizeof(one));
    (void)w; /* a full eventfd counter is a wake-up already pending */
}

bool redis_broker_back_news(struct redis_broker *rb, unsigned *seen)
{
    unsigned g = atomic_load(&rb->back_gen);
    if (g == *seen)
        return false;
    *seen = g;
    return true;
}

bool redis_broker_stopping(struct redis_broker *rb)
{
    pthread_mutex_lock(&rb->lock);
    bool s = rb->stopping;
    pthread_mutex_unlock(&rb->lock);
    return s;
}

/* The TLS settings of one thread's links (say: log the warnings): TLS 1.2 or later, the server's
 * certificate checked against REDIS_TLS_CA_FILE or the system's CAs (and
 * the host, in link.c), a client certificate when one is given. NULL with
 * why in err when a file cannot be used. */
static SSL_CTX *tls_context(const struct config *cfg, bool say, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot set up TLS (out of memory)");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    const char *bad = NULL;
    if (cfg->redis_tls_ca[0]) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->redis_tls_ca, NULL) != 1)
            bad = "REDIS_TLS_CA_FILE";
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        bad = "the system's CA certificates";
    }
    if (!bad && cfg->redis_tls_cert[0] &&
        SSL_CTX_use_certificate_chain_file(ctx, cfg->redis_tls_cert) != 1)
        bad = "REDIS_TLS_CERT_FILE";
    if (!bad && cfg->redis_tls_key[0] &&
        (SSL_CTX_use_PrivateKey_file(ctx, cfg->redis_tls_key, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1))
        bad = "REDIS_TLS_KEY_FILE";
    if (bad) {
        char why[200];
        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        ERR_clear_error();
        const char *path = strcmp(bad, "REDIS_TLS_CA_FILE") == 0     ? cfg->redis_tls_ca
                           : strcmp(bad, "REDIS_TLS_CERT_FILE") == 0 ? cfg->redis_tls_cert
                           : strcmp(bad, "REDIS_TLS_KEY_FILE") == 0  ? cfg->redis_tls_key
                                                                     : "";
        snprintf(err, errlen, "%s: cannot use %.300s: %.200s", bad, path, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, cfg->redis_tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (!cfg->redis_tls_verify && say)
        log_warn("redis: REDIS_TLS_VERIFY=false: Redis' certificate is not checked; anyone "
                 "between this pod and Redis can read and change its messages (for development "
                 "setups with self-signed certificates only)");
    return ctx;
}

/* ---- the broker seam ---- */

static void redis_publish(struct broker *b, struct fbuf *msg)
{
    struct redis_broker *rb = b->impl;
    pthread_mutex_lock(&rb->lock);
    outbox_push(&rb->outbox, msg);
    bool wake = rb->pub_asleep;
    rb->pub_asleep = false;
    pthread_mutex_unlock(&rb->lock);
    if (wake) {
        uint64_t one = 1;
        ssize_t w = write(rb->pub_efd, &one, sizeof(one));
        (void)w;
    }
}

static void redis_status(struct broker *b, struct broker_status *out)
{
    struct redis_broker *rb = b->impl;
    *out = (struct broker_status){
        .mode = "redis",
        .cluster = rb->cfg->redis_cluster,
        .connected = atomic_load(&rb->pub_connected) && atomic_load(&rb->sub_ready),
        .origins = rb->origins,
        .n_origins = atomic_load_explicit(&rb->n_origins, memory_order_acquire),
    };
#define COPY(f, ...) out->f = atomic_load_explicit(&rb->counters.f, memory_order_relaxed);
    BROKER_COUNTERS(COPY)
#undef COPY
    /* The outbox is the shared queue plus what the publisher parked. */
    pthread_mutex_lock(&rb->lock);
    out->outbox += rb->outbox.n;
    out->outbox_dropped += rb->outbox.dropped;
    pthread_mutex_unlock(&rb->lock);
    out->rooms_subscribed = registry_confirmed(rb->rooms);
}

static void redis_stop(struct broker *b, uint64_t deadline_ms)
{
    struct redis_broker *rb = b->impl;
    if (!rb)
        return;
    /* The threads never wait on Redis: the publisher sends what is queued
     * until deadline_ms and gives up then; the subscriber leaves at once. */
    pthread_mutex_lock(&rb->lock);
    rb->stopping = true;
    rb->stop_deadline_ms = deadline_ms;
    pthread_mutex_unlock(&rb->lock);
    uint64_t one = 1;
    ssize_t w = write(rb->stop_efd, &one, sizeof(one));
    w = write(rb->pub_efd, &one, sizeof(one));
    (void)w;
    thread_join(&rb->pub_thread);
    thread_join(&rb->sub_thread);
    if (rb->outbox.n)
        log_warn("redis: %u messages were still waiting for Redis at exit", rb->outbox.n);
    outbox_free(&rb->outbox);
    SSL_CTX_free(rb->tls_pub); /* NULL is fine */
    SSL_CTX_free(rb->tls_sub);
    close(rb->stop_efd);
    close(rb->pub_efd);
    close(rb->wake_efd);
    pthread_mutex_destroy(&rb->lock);
    free(rb);
    b->impl = NULL;
}

static void wake_subscriber(void *arg)
{
    struct redis_broker *rb = arg;
    uint64_t one = 1;
    ssize_t w = write(rb->wake_efd, &one, sizeof(one));
    (void)w;
}

int redis_broker_start(const struct config *cfg, struct room_registry *rooms,
                       struct fanout *fanout, struct broker *b)
{
    struct redis_broker *rb = calloc(1, sizeof(*rb));
    if (!rb)
        return -1;
    rb->cfg = cfg;
    rb->rooms = rooms;
    rb->fanout = fanout;
    rb->stop_efd = rb->pub_efd = rb->wake_efd = -1;
    /* The epoch tells restarts of one POD_ID apart. It is random, and no
     * client ever sees it (seq.h), so a client cannot aim a payload at
     * another pod's stream. 62 bits: at most 19 digits (envelope_numbering). */
    if (getrandom(&rb->epoch, sizeof(rb->epoch), 0) != sizeof(rb->epoch))
        rb->epoch = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 40);
    rb->epoch = (rb->epoch >> 2) | 1;
    if (cfg->redis.tls) {
        char err[1024];
        if (!(rb->tls_pub = tls_context(cfg, true, err, sizeof(err))) ||
            !(rb->tls_sub = tls_context(cfg, false, err, sizeof(err)))) {
            log_error("redis: %s", err);
            SSL_CTX_free(rb->tls_pub);
            free(rb);
            return -2;
        }
    }
    if (outbox_init(&rb->outbox, cfg->redis_outbox) < 0 ||
        pthread_mutex_init(&rb->lock, NULL) != 0 ||
        (rb->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        (rb->pub_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        (rb->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        if (rb->stop_efd >= 0)
            close(rb->stop_efd);
        if (rb->pub_efd >= 0)
            close(rb->pub_efd);
        free(rb->outbox.items);
        SSL_CTX_free(rb->tls_pub);
        SSL_CTX_free(rb->tls_sub);
        free(rb);
        return -1;
    }
    /* Per-room subscriptions: the registry wakes the subscriber when a room
     * gains its first member. Set before any thread runs. */
    rooms->tracking = true;
    rooms->wake = wake_subscriber;
    rooms->wake_arg = rb;
    *b = (struct broker){.mode = "redis",
                         .impl = rb,
                         .publish = redis_publish,
                         .status = redis_status,
                         .stop = redis_stop};
    if (thread_start(&rb->pub_thread, redis_pub_main, rb) < 0 ||
        thread_start(&rb->sub_thread, redis_sub_main, rb) < 0) {
        redis_stop(b, clock_now_ms());
        return -1;
    }
    return 0;
}
