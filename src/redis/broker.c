/* broker.c: the publisher and subscriber threads around hiredis 0.14.
 *
 * Every hiredis context whose err is set is freed and replaced, never used
 * again. The subscriber never blocks inside hiredis: it polls the socket
 * (and its stop eventfd) and feeds what arrives to the reply reader. */
#include "redis/broker.h"

#include <errno.h>
#include <hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fanout.h"
#include "fbuf.h"
#include "log.h"
#include "redis/message.h"
#include "redis/outbox.h"
#include "room/envelope.h"
#include "room/room.h"
#include "server.h"
#include "ws/frame.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 1000
#define COMMAND_TIMEOUT_MS 5000
#define BATCH_MAX 512
/* The subscriber pings Redis this often and reconnects when no reply has
 * come for twice as long (a Redis that hangs without closing). */
#define SUB_PING_MS 5000

struct redis_broker {
    struct server *srv;
    const struct config *cfg;

    /* Guards outbox and stopping; cond wakes the publisher. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct outbox outbox;
    bool stopping;
    /* Each thread's socket, or -1: set and cleared by that thread under the
     * lock, so that a stop past its deadline can shut them down. */
    int pub_fd, sub_fd;

    int stop_efd; /* written once by stop: wakes the subscriber's poll */
    pthread_t pub_thread, sub_thread;
    bool pub_started, sub_started;

    atomic_int pub_connected;             /* written by the publisher */
    atomic_int sub_ready;                 /* written by the subscriber */
    atomic_uint_fast64_t reconnects;      /* written by the subscriber */
    atomic_uint_fast64_t foreign_dropped;  /* written by the subscriber */
    atomic_uint_fast64_t oversize_dropped; /* written by the subscriber */
    atomic_uint_fast64_t overload_dropped; /* written by the subscriber */
    atomic_uint_fast64_t received;         /* written by the subscriber */
    /* The subscriber's own: the overload episode under way, if any. */
    uint64_t overload_since_ms, overload_last_ms, overload_at_start;
};

/* Jittered exponential backoff: a random wait in [d/2, d], then d doubles. */
struct backoff {
    uint32_t next_ms;
    uint64_t rng;
};

static uint32_t backoff_next(struct backoff *bo)
{
    if (bo->next_ms == 0)
        bo->next_ms = BACKOFF_MIN_MS;
    bo->rng ^= bo->rng << 13;
    bo->rng ^= bo->rng >> 7;
    bo->rng ^= bo->rng << 17;
    uint32_t d = bo->next_ms;
    uint32_t wait = d / 2 + (uint32_t)(bo->rng % (d / 2 + 1));
    bo->next_ms = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
    return wait;
}

static void backoff_init(struct backoff *bo)
{
    bo->next_ms = 0;
    if (getrandom(&bo->rng, sizeof(bo->rng), 0) != sizeof(bo->rng) || bo->rng == 0)
        bo->rng = 88172645463325252ull;
}

static bool is_stopping(struct redis_broker *rb)
{
    pthread_mutex_lock(&rb->lock);
    bool s = rb->stopping;
    pthread_mutex_unlock(&rb->lock);
    return s;
}

/* Sleeps up to ms, waking early when the broker stops. Returns false then. */
static bool nap(struct redis_broker *rb, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&rb->lock);
    while (!rb->stopping) {
        if (pthread_cond_timedwait(&rb->cond, &rb->lock, &ts) == ETIMEDOUT)
            break;
    }
    bool go_on = !rb->stopping;
    pthread_mutex_unlock(&rb->lock);
    return go_on;
}

/* Runs one command synchronously; true when Redis answered without error. */
static bool command_ok(redisContext *c, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        log_warn("redis: %s: %s", what, c->errstr);
        return false;
    }
    bool ok = r->type != REDIS_REPLY_ERROR;
    if (!ok)
        log_warn("redis: %s refused: %s", what, r->str);
    freeReplyObject(r);
    return ok;
}

static void set_fd(struct redis_broker *rb, int *slot, int fd)
{
    pthread_mutex_lock(&rb->lock);
    *slot = fd;
    pthread_mutex_unlock(&rb->lock);
}

/* Frees a context; its socket is first forgotten (under the lock), so that
 * a stop past its deadline never shuts down a reused descriptor. */
static void free_context(struct redis_broker *rb, redisContext *c, int *slot)
{
    set_fd(rb, slot, -1);
    redisFree(c);
}

/* Connects, authenticates and selects the database. Returns NULL on any
 * failure; quiet says whether to log it at debug level only. The socket is
 * registered in *slot as soon as it exists. */
static redisContext *connect_redis(struct redis_broker *rb, bool quiet, int *slot)
{
    const struct redis_url *u = &rb->cfg->redis;
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(u->host, u->port, tv);
    if (!c || c->err) {
        if (quiet)
            log_debug("redis: cannot connect to %s:%u: %s", u->host, u->port,
                      c ? c->errstr : "out of memory");
        else
            log_warn("redis: cannot connect to %s:%u: %s; retrying", u->host, u->port,
                     c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    set_fd(rb, slot, c->fd);
    struct timeval ctv = {COMMAND_TIMEOUT_MS / 1000, 0};
    redisSetTimeout(c, ctv);
    redisEnableKeepAlive(c);
    bool ok = true;
    if (u->password[0]) {
        if (u->user[0])
            ok = command_ok(c, "AUTH", "AUTH %s %s", u->user, u->password);
        else
            ok = command_ok(c, "AUTH", "AUTH %s", u->password);
    }
    if (ok && u->db != 0)
        ok = command_ok(c, "SELECT", "SELECT %d", u->db);
    if (!ok) {
        free_context(rb, c, slot);
        return NULL;
    }
    return c;
}

/* ---- publisher ---- */

/* Publishes one batch, pipelined. Returns how many Redis confirmed; the
 * rest are for the caller to requeue. An error reply (NOAUTH, OOM, READONLY)
 * means that message was not published: it and those after it count as
 * unconfirmed, and *why says what Redis answered. */
static uint32_t publish_batch(redisContext *c, struct fbuf **batch, uint32_t n, char *why,
                              size_t why_len)
{
    char channel[192];
    for (uint32_t i = 0; i < n; i++) {
        struct fbuf *b = batch[i];
        size_t clen = redis_msg_channel(b->room, channel, sizeof(channel));
        if (redisAppendCommand(c, "PUBLISH %b %b", channel, clen, fbuf_payload(b),
                               (size_t)(b->len - b->hdr_len)) != REDIS_OK)
            return 0;
    }
    uint32_t confirmed = n;
    for (uint32_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            snprintf(why, why_len, "%s", c->errstr);
            return i < confirmed ? i : confirmed;
        }
        /* Read every reply of the batch, so the stream stays in step even
         * when an early one is an error. */
        if (r->type == REDIS_REPLY_ERROR && i < confirmed) {
            confirmed = i;
            snprintf(why, why_len, "Redis answered %s", r->str);
        }
        freeReplyObject(r);
    }
    return confirmed;
}

static void *publisher_main(void *arg)
{
    struct redis_broker *rb = arg;
    struct backoff bo;
    backoff_init(&bo);
    redisContext *c = NULL;
    bool ever = false;
    struct fbuf **batch = malloc(BATCH_MAX * sizeof(*batch));
    if (!batch)
        abort();

    for (;;) {
        if (!c) {
            if (is_stopping(rb))
                break;
            c = connect_redis(rb, ever, &rb->pub_fd);
            if (!c) {
                if (!nap(rb, backoff_next(&bo)))
                    break;
                continue;
            }
            if (ever)
                log_info("redis: publisher reconnected");
            ever = true;
            bo.next_ms = 0;
            atomic_store(&rb->pub_connected, 1);
        }
        pthread_mutex_lock(&rb->lock);
        while (rb->outbox.n == 0 && !rb->stopping)
            pthread_cond_wait(&rb->cond, &rb->lock);
        bool stopping = rb->stopping;
        uint32_t n = outbox_take(&rb->outbox, batch, BATCH_MAX);
        pthread_mutex_unlock(&rb->lock);

        char why[256] = "";
        uint32_t done = n ? publish_batch(c, batch, n, why, sizeof(why)) : 0;
        for (uint32_t i = 0; i < done; i++)
            fbuf_unref(batch[i]);
        if (done < n) {
            /* The connection broke mid-batch: what was not confirmed goes
             * back in front, to be sent first after the reconnect. */
            pthread_mutex_lock(&rb->lock);
            outbox_requeue(&rb->outbox, batch + done, n - done);
            pthread_mutex_unlock(&rb->lock);
            log_warn("redis: publishing failed: %s; %u messages wait in the outbox, reconnecting",
                     why, n - done);
            atomic_store(&rb->pub_connected, 0);
            free_context(rb, c, &rb->pub_fd);
            c = NULL;
            if (!nap(rb, backoff_next(&bo)))
                break;
            continue;
        }
        /* On stop, what was queued before it has just been sent. */
        if (stopping && n < BATCH_MAX)
            break;
    }
    atomic_store(&rb->pub_connected, 0);
    if (c)
        free_context(rb, c, &rb->pub_fd);
    free(batch);
    return NULL;
}

/* ---- subscriber ---- */

/* Redis delivers faster than the workers fan out: the subscriber never
 * waits for them (it would only move the backlog into Redis, which cuts a
 * subscriber off past its output buffer limit and loses it uncounted). It
 * drops what no lane admits, counts it, and logs once when an episode
 * starts and once when it ends (a second without a drop). */
#define OVERLOAD_QUIET_MS 1000

static void on_overload(struct redis_broker *rb)
{
    uint_fast64_t n = atomic_fetch_add(&rb->overload_dropped, 1);
    rb->overload_last_ms = server_now_ms();
    if (rb->overload_since_ms)
        return;
    rb->overload_since_ms = rb->overload_last_ms;
    rb->overload_at_start = n;
    log_warn("redis: messages arrive faster than this pod can deliver them; dropping what does "
             "not fit (counted in stats as broker.overload_dropped)");
}

static void end_overload(struct redis_broker *rb, uint64_t now)
{
    if (!rb->overload_since_ms || now - rb->overload_last_ms < OVERLOAD_QUIET_MS)
        return;
    uint64_t n = atomic_load(&rb->overload_dropped) - rb->overload_at_start;
    log_warn("redis: overload over after %.1f s; %llu messages from Redis were dropped",
             (double)(rb->overload_last_ms - rb->overload_since_ms) / 1000.0,
             (unsigned long long)n);
    rb->overload_since_ms = 0;
}

static void deliver_from_redis(struct redis_broker *rb, const redisReply *ch, const redisReply *pl)
{
    char room[WS_HS_ROOM_MAX + 1];
    if (ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING) {
        atomic_fetch_add(&rb->foreign_dropped, 1);
        return;
    }
    /* Shed load before doing any work on the payload: when the workers have
     * no room for it anyway, checking UTF-8 and JSON and framing it would
     * only slow the subscriber down, and a subscriber that falls behind
     * Redis makes everyone's messages wait in Redis. Our own messages are
     * let through to be recognised and suppressed, not counted. */
    if (redis_msg_room(ch->str, ch->len, room) == 0 &&
        !redis_msg_maybe_own(pl->str, pl->len, rb->cfg->pod_id) &&
        !fanout_admits(rb->srv->fanout,
                       room[0] ? fanout_room_slot(room_hash(room, strlen(room))) : FANOUT_GLOBAL,
                       pl->len + ws_frame_header_len(pl->len), FANOUT_FROM_REDIS)) {
        on_overload(rb);
        return;
    }
    enum redis_msg_kind k =
        redis_msg_classify(ch->str, ch->len, pl->str, pl->len, rb->cfg->pod_id, room);
    if (k == REDIS_MSG_OWN)
        return;
    if (k == REDIS_MSG_INVALID) {
        uint_fast64_t n = atomic_fetch_add(&rb->foreign_dropped, 1);
        if (n == 0)
            log_warn("redis: dropped a payload on %.*s that is not a JSON object in UTF-8 "
                     "(counted in stats as broker.foreign_dropped)",
                     (int)ch->len, ch->str);
        return;
    }
    /* interface.md bounds what clients receive; a backend is held to the
     * same bound as this pod's own clients (envelope.h). */
    if (pl->len > rb->cfg->max_message + ENVELOPE_SLACK) {
        uint_fast64_t n = atomic_fetch_add(&rb->oversize_dropped, 1);
        if (n == 0)
            log_warn("redis: dropped a %zu-byte payload on %.*s, over MAX_MESSAGE_SIZE + %d "
                     "(counted in stats as broker.oversize_dropped)",
                     pl->len, (int)ch->len, ch->str, ENVELOPE_SLACK);
        return;
    }
    struct fbuf *b = fbuf_new_broadcast(pl->str, pl->len, room[0] ? room : NULL);
    if (!b)
        return;
    int rc = fanout_post(rb->srv->fanout, b, FANOUT_FROM_REDIS);
    fbuf_unref(b);
    if (rc == -EAGAIN) {
        on_overload(rb);
        return;
    }
    atomic_fetch_add(&rb->received, 1);
    if (rc > 0)
        atomic_fetch_add(&rb->overload_dropped, 1);
}

/* Handles one reply in subscribe mode. Returns how many subscriptions it
 * confirmed (0 or 1), or -1 when Redis refused something (NOAUTH, say). */
static int on_sub_reply(struct redis_broker *rb, redisReply *r, uint64_t *last_seen)
{
    *last_seen = server_now_ms();
    if (r->type == REDIS_REPLY_ERROR) {
        log_debug("redis: subscriber refused: %s", r->str);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "message") == 0 && r->elements == 3)
        deliver_from_redis(rb, r->element[1], r->element[2]);
    else if (strcmp(kind, "pmessage") == 0 && r->elements == 4)
        deliver_from_redis(rb, r->element[2], r->element[3]);
    else if (strcmp(kind, "subscribe") == 0 || strcmp(kind, "psubscribe") == 0)
        return 1;
    return 0;
}

/* Sends what hiredis has buffered; blocking is fine for a few small commands. */
static bool flush_out(redisContext *c)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return false;
    return true;
}

/* Listens until the connection fails or the broker stops. Returns false
 * when stopping. */
static bool listen_loop(struct redis_broker *rb, redisContext *c, bool *ever)
{
    if (redisAppendCommand(c, "SUBSCRIBE %s", REDIS_CHANNEL_GLOBAL) != REDIS_OK ||
        redisAppendCommand(c, "PSUBSCRIBE %s*", REDIS_CHANNEL_ROOM_PREFIX) != REDIS_OK ||
        !flush_out(c))
        return true;
    int confirmed = 0;
    uint64_t last_seen = server_now_ms(), last_ping = last_seen;
    for (;;) {
        struct pollfd fds[2] = {{.fd = c->fd, .events = POLLIN},
                                {.fd = rb->stop_efd, .events = POLLIN}};
        int n = poll(fds, 2, 500);
        if (n < 0 && errno != EINTR)
            return true;
        if (fds[1].revents)
            return false;
        if (fds[0].revents) {
            if (redisBufferRead(c) != REDIS_OK)
                return true;
            void *reply = NULL;
            while (redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
                int rc = on_sub_reply(rb, reply, &last_seen);
                freeReplyObject(reply);
                reply = NULL;
                if (rc < 0)
                    return true;
                confirmed += rc;
                if (confirmed == 2 && !atomic_load(&rb->sub_ready)) {
                    atomic_store(&rb->sub_ready, 1);
                    if (*ever) {
                        atomic_fetch_add(&rb->reconnects, 1);
                        log_info("redis: subscriber reconnected");
                    } else {
                        log_info("redis: connected to %s:%u, subscribed", rb->cfg->redis.host,
                                 rb->cfg->redis.port);
                    }
                    *ever = true;
                }
            }
            if (c->err)
                return true;
        }
        /* Read the clock after the replies: last_seen may be later than any
         * time taken before them. */
        uint64_t now = server_now_ms();
        end_overload(rb, now);
        if (now - last_ping >= SUB_PING_MS) {
            if (redisAppendCommand(c, "PING") != REDIS_OK || !flush_out(c))
                return true;
            last_ping = now;
        }
        if (now > last_seen + 2 * SUB_PING_MS) {
            log_warn("redis: no answer from the subscriber connection for %d s",
                     2 * SUB_PING_MS / 1000);
            return true;
        }
    }
}

static void *subscriber_main(void *arg)
{
    struct redis_broker *rb = arg;
    struct backoff bo;
    backoff_init(&bo);
    bool ever = false;
    for (;;) {
        redisContext *c = connect_redis(rb, ever, &rb->sub_fd);
        bool go_on = true;
        if (c) {
            bo.next_ms = 0;
            go_on = listen_loop(rb, c, &ever);
            if (go_on && atomic_load(&rb->sub_ready))
                log_warn("redis: subscriber lost its connection: %s; local delivery goes on, "
                         "/readyz answers 503 until it is back",
                         c->err ? c->errstr : "no answer");
            atomic_store(&rb->sub_ready, 0);
            free_context(rb, c, &rb->sub_fd);
        }
        if (!go_on || !nap(rb, backoff_next(&bo)))
            break;
    }
    atomic_store(&rb->sub_ready, 0);
    return NULL;
}

/* ---- the broker seam ---- */

static void redis_publish(struct broker *b, struct fbuf *msg)
{
    struct redis_broker *rb = b->impl;
    pthread_mutex_lock(&rb->lock);
    outbox_push(&rb->outbox, msg);
    pthread_cond_signal(&rb->cond);
    pthread_mutex_unlock(&rb->lock);
}

static void redis_status(struct broker *b, struct broker_status *out)
{
    struct redis_broker *rb = b->impl;
    pthread_mutex_lock(&rb->lock);
    uint64_t n = rb->outbox.n, dropped = rb->outbox.dropped;
    pthread_mutex_unlock(&rb->lock);
    *out = (struct broker_status){
        .mode = "redis",
        .connected = atomic_load(&rb->pub_connected) && atomic_load(&rb->sub_ready),
        .reconnects = atomic_load(&rb->reconnects),
        .outbox = n,
        .outbox_dropped = dropped,
        .foreign_dropped = atomic_load(&rb->foreign_dropped),
        .oversize_dropped = atomic_load(&rb->oversize_dropped),
        .overload_dropped = atomic_load(&rb->overload_dropped),
        .received = atomic_load(&rb->received),
    };
}

/* Waits for a thread until deadline_ms; past it, shuts down the sockets
 * the broker's threads may be waiting on (a Redis that hangs answers
 * nothing until its timeout), which makes them give up at once. */
static void join_by(struct redis_broker *rb, pthread_t t, uint64_t deadline_ms)
{
    uint64_t now = server_now_ms();
    uint64_t wait = deadline_ms > now ? deadline_ms - now : 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(wait / 1000);
    ts.tv_nsec += (long)(wait % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    if (pthread_timedjoin_np(t, NULL, &ts) == 0)
        return;
    pthread_mutex_lock(&rb->lock);
    if (rb->pub_fd >= 0)
        shutdown(rb->pub_fd, SHUT_RDWR);
    if (rb->sub_fd >= 0)
        shutdown(rb->sub_fd, SHUT_RDWR);
    pthread_mutex_unlock(&rb->lock);
    log_warn("redis: no answer from Redis by the shutdown deadline; giving up on it");
    pthread_join(t, NULL);
}

static void redis_stop(struct broker *b, uint64_t deadline_ms)
{
    struct redis_broker *rb = b->impl;
    if (!rb)
        return;
    pthread_mutex_lock(&rb->lock);
    rb->stopping = true;
    pthread_cond_broadcast(&rb->cond);
    pthread_mutex_unlock(&rb->lock);
    uint64_t one = 1;
    ssize_t w = write(rb->stop_efd, &one, sizeof(one));
    (void)w;
    if (rb->pub_started)
        join_by(rb, rb->pub_thread, deadline_ms);
    if (rb->sub_started)
        join_by(rb, rb->sub_thread, deadline_ms);
    if (rb->outbox.n)
        log_warn("redis: %u messages were still waiting for Redis at exit", rb->outbox.n);
    outbox_free(&rb->outbox);
    close(rb->stop_efd);
    pthread_cond_destroy(&rb->cond);
    pthread_mutex_destroy(&rb->lock);
    free(rb);
    b->impl = NULL;
}

int redis_broker_start(struct server *srv, struct broker *b)
{
    struct redis_broker *rb = calloc(1, sizeof(*rb));
    if (!rb)
        return -1;
    rb->srv = srv;
    rb->cfg = &srv->cfg;
    rb->pub_fd = rb->sub_fd = -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (outbox_init(&rb->outbox, srv->cfg.redis_outbox) < 0 ||
        pthread_mutex_init(&rb->lock, NULL) != 0 || pthread_cond_init(&rb->cond, &ca) != 0 ||
        (rb->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        pthread_condattr_destroy(&ca);
        free(rb->outbox.items);
        free(rb);
        return -1;
    }
    pthread_condattr_destroy(&ca);
    *b = (struct broker){.mode = "redis",
                         .impl = rb,
                         .publish = redis_publish,
                         .status = redis_status,
                         .stop = redis_stop};
    rb->pub_started = pthread_create(&rb->pub_thread, NULL, publisher_main, rb) == 0;
    rb->sub_started = pthread_create(&rb->sub_thread, NULL, subscriber_main, rb) == 0;
    if (!rb->pub_started || !rb->sub_started) {
        redis_stop(b, server_now_ms());
        return -1;
    }
    return 0;
}
