/* broker.c: the publisher and subscriber threads around hiredis 0.14.
 *
 * Every hiredis context whose err is set is freed and replaced, never used
 * again. The subscriber never blocks inside hiredis: it polls the socket
 * (and its stop eventfd) and feeds what arrives to the reply reader. */
#include "redis/broker.h"
#include "redis/broker_internal.h"

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
#include "redis/seq.h"
#include "room/registry.h"
#include "room/envelope.h"
#include "room/room.h"
#include "server.h"
#include "ws/frame.h"

/* Notes one event; returns true when it starts an episode. */
bool episode_note(struct episode *e, uint64_t now, uint64_t count_before)
{
    e->last_ms = now;
    if (e->since_ms)
        return false;
    e->since_ms = now;
    e->at_start = count_before;
    return true;
}

/* Returns true (once) when the episode under way has been quiet long
 * enough, with how long it lasted in *seconds. */
bool episode_over(struct episode *e, uint64_t now, double *seconds)
{
    if (!e->since_ms || now - e->last_ms < EPISODE_QUIET_MS)
        return false;
    *seconds = (double)(e->last_ms - e->since_ms) / 1000.0;
    e->since_ms = 0;
    return true;
}

uint32_t backoff_next(struct backoff *bo)
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

void backoff_init(struct backoff *bo)
{
    *bo = (struct backoff){0};
    if (getrandom(&bo->rng, sizeof(bo->rng), 0) != sizeof(bo->rng) || bo->rng == 0)
        bo->rng = 88172645463325252ull;
}

/* Redis did real work: the next failure starts from the shortest wait. */
void backoff_reset(struct backoff *bo)
{
    bo->next_ms = 0;
    bo->logged_step = 0;
    bo->last_err[0] = '\0';
}

/* Logs why a try failed, at warn the first time and whenever the failure
 * changes or the backoff has moved to a longer step; at debug otherwise. */
void backoff_log(struct backoff *bo, const char *who, const char *err)
{
    if (strcmp(err, bo->last_err) != 0 || bo->logged_step != bo->next_ms) {
        log_warn("redis: %s: %s; retrying (backoff up to %u ms)", who, err,
                 bo->next_ms ? bo->next_ms : BACKOFF_MIN_MS);
        snprintf(bo->last_err, sizeof(bo->last_err), "%s", err);
        bo->logged_step = bo->next_ms;
    } else {
        log_debug("redis: %s: %s", who, err);
    }
}

bool is_stopping(struct redis_broker *rb)
{
    pthread_mutex_lock(&rb->lock);
    bool s = rb->stopping;
    pthread_mutex_unlock(&rb->lock);
    return s;
}

/* Sleeps up to ms, waking early when the broker stops. Returns false then. */
bool nap(struct redis_broker *rb, uint32_t ms)
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

/* Runs one command synchronously; true when Redis answered without error,
 * else false with why in err. */
bool command_ok(redisContext *c, char *err, size_t errlen, const char *what,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        snprintf(err, errlen, "%s: %s", what, c->errstr);
        return false;
    }
    bool ok = r->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(err, errlen, "%s refused: %s", what, r->str);
    freeReplyObject(r);
    return ok;
}

void set_fd(struct redis_broker *rb, int *slot, int fd)
{
    pthread_mutex_lock(&rb->lock);
    *slot = fd;
    pthread_mutex_unlock(&rb->lock);
}

/* Frees a context; its socket is first forgotten (under the lock), so that
 * a stop past its deadline never shuts down a reused descriptor. */
void free_context(struct redis_broker *rb, redisContext *c, int *slot)
{
    set_fd(rb, slot, -1);
    redisFree(c);
}

/* Connects, authenticates, selects the database and checks that Redis
 * answers (PING). Returns NULL with why in err on any failure. The socket
 * is registered in *slot as soon as it exists. Secrets never reach err. */
redisContext *connect_node(struct redis_broker *rb, const char *host, uint16_t port, int *slot,
                           char *err, size_t errlen)
{
    const struct redis_url *u = &rb->cfg->redis;
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "cannot connect to %s:%u: %s", host, port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    set_fd(rb, slot, c->fd);
    struct timeval ctv = {COMMAND_TIMEOUT_MS / 1000, (COMMAND_TIMEOUT_MS % 1000) * 1000};
    redisSetTimeout(c, ctv);
    redisEnableKeepAlive(c);
    bool ok = true;
    if (u->password[0]) {
        if (u->user[0])
            ok = command_ok(c, err, errlen, "AUTH", "AUTH %s %s", u->user, u->password);
        else
            ok = command_ok(c, err, errlen, "AUTH", "AUTH %s", u->password);
    }
    if (ok && u->db != 0)
        ok = command_ok(c, err, errlen, "SELECT", "SELECT %d", u->db);
    if (ok)
        ok = command_ok(c, err, errlen, "PING", "PING");
    if (!ok) {
        free_context(rb, c, slot);
        return NULL;
    }
    return c;
}

static redisContext *connect_redis(struct redis_broker *rb, int *slot, char *err, size_t errlen)
{
    return connect_node(rb, rb->cfg->redis.host, rb->cfg->redis.port, slot, err, errlen);
}

/* ---- publisher ---- */

/* The payload to publish for item: the message with this pod's next
 * sequence number on the channel (kept with the item, so a resend carries the
 * same one). Returns its length in rb->scratch, or 0 when it cannot be made. */
size_t numbered_payload(struct redis_broker *rb, struct outbox_item *it,
                               const char *channel, size_t clen, uint64_t now)
{
    const struct fbuf *b = it->msg;
    if (it->seq == 0) {
        bool fresh;
        struct seq_entry *e = seq_table_get(rb->tx_seq, channel, clen, &fresh);
        if (!e)
            return 0;
        it->seq = ++e->value;
        e->stamp_ms = now;
    }
    return seq_tail_append((const char *)fbuf_payload(b), b->len - b->hdr_len, it->seq, rb->epoch,
                           rb->scratch, rb->scratch_cap);
}

/* Publishes one batch, pipelined. Returns how many Redis confirmed; the
 * rest are for the caller to requeue. An error reply (NOAUTH, OOM, READONLY)
 * means that message was not published: it and those after it count as
 * unconfirmed, and *why says what Redis answered. */
static uint32_t publish_batch(struct redis_broker *rb, redisContext *c, struct outbox_item *batch,
                              uint32_t n, char *why, size_t why_len)
{
    char channel[192];
    uint64_t now = server_now_ms();
    for (uint32_t i = 0; i < n; i++) {
        struct fbuf *b = batch[i].msg;
        size_t clen = redis_msg_channel(b->room, channel, sizeof(channel));
        size_t plen = numbered_payload(rb, &batch[i], channel, clen, now);
        const char *payload = plen ? rb->scratch : (const char *)fbuf_payload(b);
        if (!plen)
            plen = b->len - b->hdr_len; /* out of memory: unnumbered, still sent */
        if (redisAppendCommand(c, "PUBLISH %b %b", channel, clen, payload, plen) != REDIS_OK) {
            snprintf(why, why_len, "%s", c->errstr[0] ? c->errstr : "out of memory");
            return 0;
        }
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
    uint64_t last_sweep = server_now_ms();
    struct outbox_item *batch = malloc(BATCH_MAX * sizeof(*batch));
    if (!batch)
        abort();

    for (;;) {
        if (!c) {
            if (is_stopping(rb))
                break;
            char err[600];
            c = connect_redis(rb, &rb->pub_fd, err, sizeof(err));
            if (!c) {
                backoff_log(&bo, "publisher", err);
                if (!nap(rb, backoff_next(&bo)))
                    break;
                continue;
            }
            if (ever)
                log_info("redis: publisher reconnected");
            ever = true;
            atomic_store(&rb->pub_connected, 1);
        }
        pthread_mutex_lock(&rb->lock);
        while (rb->outbox.n == 0 && !rb->stopping)
            pthread_cond_wait(&rb->cond, &rb->lock);
        bool stopping = rb->stopping;
        uint32_t n = outbox_take(&rb->outbox, batch, BATCH_MAX);
        pthread_mutex_unlock(&rb->lock);

        char why[256] = "";
        uint32_t done = n ? publish_batch(rb, c, batch, n, why, sizeof(why)) : 0;
        for (uint32_t i = 0; i < done; i++)
            fbuf_unref(batch[i].msg);
        if (done > 0)
            backoff_reset(&bo); /* Redis took real work */
        uint64_t now = server_now_ms();
        if (now - last_sweep >= SEQ_SWEEP_MS) {
            seq_table_sweep(rb->tx_seq, now > SEQ_FORGET_TX_MS ? now - SEQ_FORGET_TX_MS : 0);
            last_sweep = now;
        }
        if (done < n) {
            /* The connection broke mid-batch: what was not confirmed goes
             * back in front, with its numbers, to be sent first after the
             * reconnect; receivers drop what they already had. */
            pthread_mutex_lock(&rb->lock);
            outbox_requeue(&rb->outbox, batch + done, n - done);
            pthread_mutex_unlock(&rb->lock);
            char err[600];
            snprintf(err, sizeof(err), "publishing failed: %s; messages wait in the outbox", why);
            backoff_log(&bo, "publisher", err);
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
 * starts and once when it ends. */
void on_overload(struct redis_broker *rb)
{
    uint_fast64_t n = atomic_fetch_add(&rb->overload_dropped, 1);
    if (episode_note(&rb->overload, server_now_ms(), n))
        log_warn("redis: messages arrive faster than this pod can deliver them; dropping what "
                 "does not fit (counted in stats as broker.overload_dropped)");
}

/* The losses of one origin pod, claiming a slot for it on first sight. */
static struct broker_origin_lost *origin_slot(struct redis_broker *rb, const char *pod, size_t len)
{
    unsigned n = atomic_load_explicit(&rb->n_origins, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        if (strlen(rb->origins[i].pod) == len && memcmp(rb->origins[i].pod, pod, len) == 0)
            return &rb->origins[i];
    if (n == LOST_ORIGINS_MAX || len >= sizeof(rb->origins[0].pod))
        return NULL;
    memcpy(rb->origins[n].pod, pod, len);
    rb->origins[n].pod[len] = '\0';
    atomic_store_explicit(&rb->n_origins, n + 1, memory_order_release);
    return &rb->origins[n];
}

/* Checks a numbered payload from another pod against what was seen from it
 * on this channel. Returns false for a duplicate, which is dropped; a gap is
 * counted as lost, per origin, with one log line per episode. */
static bool in_sequence(struct redis_broker *rb, const redisReply *ch, const struct seq_tail *t)
{
    char key[SEQ_KEY_MAX];
    int n = snprintf(key, sizeof(key), "%.*s %llu %.*s", (int)t->pod_len, t->pod,
                     (unsigned long long)t->epoch, (int)ch->len, ch->str);
    if (n < 0 || (size_t)n >= sizeof(key))
        return true;
    bool fresh;
    struct seq_entry *e = seq_table_get(rb->rx_seq, key, (size_t)n, &fresh);
    if (!e) {
        /* SEQ_RX_MAX streams are tracked already (or memory ran out): this
         * one is delivered unnumbered, so made-up origins cost no memory. */
        atomic_fetch_add(&rb->untracked, 1);
        return true;
    }
    uint64_t now = server_now_ms(), lost = 0;
    e->stamp_ms = now;
    enum seq_verdict v = seq_accept(e, fresh, t->seq, &lost);
    if (v == SEQ_DUPLICATE) {
        atomic_fetch_add(&rb->duplicates, 1);
        return false;
    }
    if (v == SEQ_RESTART)
        atomic_fetch_add(&rb->seq_restarts, 1);
    if (v == SEQ_GAP) {
        uint_fast64_t before = atomic_fetch_add(&rb->lost, lost);
        struct broker_origin_lost *o = origin_slot(rb, t->pod, t->pod_len);
        if (o)
            atomic_fetch_add(&o->lost, lost);
        if (episode_note(&rb->loss, now, before))
            log_warn("redis: %llu messages from pod %.*s on %.*s never arrived (Redis keeps "
                     "nothing for a subscriber that was away; counted as broker.lost)",
                     (unsigned long long)lost, (int)t->pod_len, t->pod, (int)ch->len, ch->str);
    }
    return true;
}

/* Counts a dropped payload; the first of its kind is logged. */
static void count_drop(atomic_uint_fast64_t *c, const char *counter, const char *why,
                       const redisReply *ch, size_t len)
{
    if (atomic_fetch_add(c, 1) == 0)
        log_warn("redis: dropped a payload on %.*s (%zu bytes): %s (counted as broker.%s)",
                 (int)ch->len, ch->str, len, why, counter);
}

void deliver_from_redis(struct redis_broker *rb, const redisReply *ch, const redisReply *pl)
{
    char room[WS_HS_ROOM_MAX + 1];
    atomic_fetch_add_explicit(&rb->taken, 1, memory_order_relaxed);
    if (ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING) {
        atomic_fetch_add(&rb->foreign_dropped, 1);
        return;
    }
    bool known_channel = redis_msg_room(ch->str, ch->len, room) == 0;
    struct seq_tail tail;
    bool numbered = known_channel && seq_tail_parse(pl->str, pl->len, &tail);
    size_t idlen = strlen(rb->cfg->pod_id);
    bool own_tail = numbered && tail.pod_len == idlen && memcmp(tail.pod, rb->cfg->pod_id, idlen) == 0;
    /* Sequence first, cheaply from the tail: a repeat is dropped before any
     * work, and a message dropped below for overload is still recorded as
     * seen, so it never counts as lost too. */
    if (numbered && !own_tail && !in_sequence(rb, ch, &tail))
        return;
    /* Shed load before doing any work on the payload: when the workers have
     * no room for it anyway, checking UTF-8 and JSON and framing it would
     * only slow the subscriber down, and a subscriber that falls behind
     * Redis makes everyone's messages wait in Redis. Our own messages are
     * let through to be recognised and suppressed, not counted. */
    if (known_channel && !own_tail &&
        !fanout_admits(rb->srv->fanout,
                       room[0] ? fanout_room_slot(room_hash(room, strlen(room))) : FANOUT_GLOBAL,
                       pl->len + ws_frame_header_len(pl->len), FANOUT_FROM_REDIS)) {
        on_overload(rb);
        return;
    }
    enum redis_msg_kind k =
        redis_msg_classify(ch->str, ch->len, pl->str, pl->len, rb->cfg->pod_id, room);
    switch (k) {
    case REDIS_MSG_OWN:
        /* Delivered locally already. One that this run did not publish
         * (another epoch, or no number) carries our id falsely: suppressed
         * all the same, and counted so it can be seen. */
        if (!own_tail || tail.epoch != rb->epoch)
            count_drop(&rb->forged_pod, "forged_pod",
                       "it carries this pod's id but this pod did not publish it", ch, pl->len);
        return;
    case REDIS_MSG_INVALID:
        count_drop(&rb->foreign_dropped, "foreign_dropped", "not a JSON object in UTF-8", ch,
                   pl->len);
        return;
    case REDIS_MSG_ROOM_MISMATCH:
        count_drop(&rb->mismatch_dropped, "mismatch_dropped", "its room is not its channel's", ch,
                   pl->len);
        return;
    case REDIS_MSG_DELIVER: break;
    }
    /* interface.md bounds what clients receive; a backend is held to the
     * same bound as this pod's own clients (envelope.h). */
    if (pl->len > rb->cfg->max_message + ENVELOPE_SLACK) {
        count_drop(&rb->oversize_dropped, "oversize_dropped", "over MAX_MESSAGE_SIZE + 1 KiB", ch,
                   pl->len);
        return;
    }
    /* Clients get a pod's message without its numbering (seq.h): framed up
     * to the numbering plus one byte, which becomes the closing brace
     * before anyone else sees the buffer. */
    size_t len = numbered ? tail.body_len + 1 : pl->len;
    struct fbuf *b = fbuf_new_broadcast(pl->str, len, room[0] ? room : NULL);
    if (!b)
        return;
    if (numbered)
        b->data[b->len - 1] = '}';
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

/* Logs the end of episodes that have gone quiet, and forgets quiet origins. */
void subscriber_tick(struct redis_broker *rb, uint64_t now, uint64_t *last_sweep)
{
    double secs;
    if (episode_over(&rb->overload, now, &secs))
        log_warn("redis: overload over after %.1f s; %llu messages from Redis were dropped", secs,
                 (unsigned long long)(atomic_load(&rb->overload_dropped) - rb->overload.at_start));
    if (episode_over(&rb->loss, now, &secs))
        log_warn("redis: %llu messages from other pods were lost in that episode (%.1f s)",
                 (unsigned long long)(atomic_load(&rb->lost) - rb->loss.at_start), secs);
    if (now - *last_sweep >= SEQ_SWEEP_MS) {
        seq_table_sweep(rb->rx_seq, now > SEQ_FORGET_RX_MS ? now - SEQ_FORGET_RX_MS : 0);
        *last_sweep = now;
    }
}

/* Sends what hiredis has buffered; blocking is fine for a few small commands. */
bool flush_out(redisContext *c)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return false;
    return true;
}

/* Redis confirmed a subscription. Returns 1 for realtime:global (the pod
 * is then connected), else 0; members waiting for their room's confirmation
 * are released. */
static int on_subscribed(struct redis_broker *rb, const redisReply *ch)
{
    char room[WS_HS_ROOM_MAX + 1];
    if (redis_msg_room(ch->str, ch->len, room) < 0)
        return 0;
    if (!room[0])
        return 1;
    if (registry_sub_confirmed(&rb->srv->rooms, room) &&
        fanout_room_ready(rb->srv->fanout, room, 0))
        log_error("redis: out of memory telling workers that room %s is ready", room);
    return 0;
}

/* Collects one room's channel (registry_emit_fn; called under the
 * registry's lock, so it only copies). */
void batch_add(void *arg, const char *room)
{
    struct chan_batch *cb = arg;
    if (cb->n == cb->cap) {
        size_t cap = cb->cap ? cb->cap * 2 : 64;
        char **grown = realloc(cb->names, cap * sizeof(*grown));
        if (!grown) {
            cb->oom = true;
            return;
        }
        cb->names = grown;
        cb->cap = cap;
    }
    char channel[192];
    redis_msg_channel(room, channel, sizeof(channel));
    if (!(cb->names[cb->n] = strdup(channel))) {
        cb->oom = true;
        return;
    }
    cb->n++;
}

/* Appends verb for every collected channel, CHANNELS_PER_COMMAND at a time,
 * and empties the batch. Returns false when hiredis could not take it. A
 * batch that lost a name to memory fails too: the connection is made again
 * and every room subscribed afresh, rather than one room silently missing. */
bool batch_send(redisContext *c, struct chan_batch *cb, const char *verb)
{
    bool ok = !cb->oom;
    const char *argv[CHANNELS_PER_COMMAND + 1];
    size_t argvlen[CHANNELS_PER_COMMAND + 1];
    for (size_t i = 0; ok && i < cb->n; i += CHANNELS_PER_COMMAND) {
        size_t k = cb->n - i < CHANNELS_PER_COMMAND ? cb->n - i : CHANNELS_PER_COMMAND;
        argv[0] = verb;
        argvlen[0] = strlen(verb);
        for (size_t j = 0; j < k; j++) {
            argv[j + 1] = cb->names[i + j];
            argvlen[j + 1] = strlen(cb->names[i + j]);
        }
        ok = redisAppendCommandArgv(c, (int)k + 1, argv, argvlen) == REDIS_OK;
    }
    batch_clear(cb);
    return ok;
}

void batch_clear(struct chan_batch *cb)
{
    for (size_t i = 0; i < cb->n; i++)
        free(cb->names[i]);
    cb->n = 0;
    cb->oom = false;
}

/* Sends SUBSCRIBE for the rooms that gained their first member and
 * UNSUBSCRIBE for those whose linger is over. Returns false when the
 * connection failed (why in err). */
static bool sync_rooms(struct redis_broker *rb, redisContext *c, uint64_t now, char *err,
                       size_t errlen)
{
    struct room_registry *reg = &rb->srv->rooms;
    registry_sub_take_queued(reg, batch_add, &rb->subs);
    size_t n = rb->subs.n;
    bool ok = batch_send(c, &rb->subs, "SUBSCRIBE");
    if (ok && n)
        atomic_fetch_add(&rb->subscribes, n);
    uint64_t linger = rb->cfg->room_linger_ms;
    if (ok && now > linger) {
        registry_sub_take_expired(reg, now - linger, batch_add, &rb->subs);
        n = rb->subs.n;
        ok = batch_send(c, &rb->subs, "UNSUBSCRIBE");
        if (ok && n)
            atomic_fetch_add(&rb->unsubscribes, n);
    }
    if (!ok || !flush_out(c)) {
        snprintf(err, errlen, "subscribing failed: %s", c->errstr[0] ? c->errstr : "out of memory");
        return false;
    }
    return true;
}

/* Handles one reply in subscribe mode. Returns how many subscriptions it
 * confirmed (0 or 1), or -1 with why in err when Redis refused something
 * (NOAUTH, an ACL that denies the channel). */
static int on_sub_reply(struct redis_broker *rb, redisReply *r, char *err, size_t errlen)
{
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "subscribing refused: %s", r->str);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "message") == 0 && r->elements == 3)
        deliver_from_redis(rb, r->element[1], r->element[2]);
    else if (strcmp(kind, "subscribe") == 0 && r->elements == 3 &&
             r->element[1]->type == REDIS_REPLY_STRING)
        return on_subscribed(rb, r->element[1]);
    return 0;
}

/* Listens until the connection fails (why in err) or the broker stops.
 * Returns false when stopping. */
static bool listen_loop(struct redis_broker *rb, redisContext *c, bool *ever, struct backoff *bo,
                        char *err, size_t errlen)
{
    /* From here on joins wait for their room's confirmation; exactly the
     * rooms with members now are subscribed. */
    registry_sub_live(&rb->srv->rooms, batch_add, &rb->subs);
    size_t nrooms = rb->subs.n;
    if (redisAppendCommand(c, "SUBSCRIBE %s", REDIS_CHANNEL_GLOBAL) != REDIS_OK ||
        !batch_send(c, &rb->subs, "SUBSCRIBE") || !flush_out(c)) {
        snprintf(err, errlen, "subscribing failed: %s", c->errstr[0] ? c->errstr : "out of memory");
        return true;
    }
    atomic_fetch_add(&rb->subscribes, nrooms);
    int confirmed = 0;
    uint64_t last_seen = server_now_ms(), last_ping = last_seen, last_sweep = last_seen;
    for (;;) {
        struct pollfd fds[3] = {{.fd = c->fd, .events = POLLIN},
                                {.fd = rb->stop_efd, .events = POLLIN},
                                {.fd = rb->wake_efd, .events = POLLIN}};
        int n = poll(fds, 3, SUB_PING_MS / 2);
        if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return true;
        }
        if (fds[1].revents)
            return false;
        if (fds[2].revents) {
            uint64_t v;
            ssize_t rd = read(rb->wake_efd, &v, sizeof(v));
            (void)rd;
            if (!sync_rooms(rb, c, server_now_ms(), err, errlen))
                return true;
        }
        if (fds[0].revents) {
            if (redisBufferRead(c) != REDIS_OK) {
                snprintf(err, errlen, "connection lost: %s", c->errstr);
                return true;
            }
            last_seen = server_now_ms();
            void *reply = NULL;
            while (redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
                int rc = on_sub_reply(rb, reply, err, errlen);
                freeReplyObject(reply);
                reply = NULL;
                if (rc < 0)
                    return true;
                confirmed += rc;
                if (confirmed == 1 && !atomic_load(&rb->sub_ready)) {
                    atomic_store(&rb->sub_ready, 1);
                    backoff_reset(bo); /* Redis took real work */
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
            if (c->err) {
                snprintf(err, errlen, "connection lost: %s", c->errstr);
                return true;
            }
        }
        /* Read the clock after the replies: last_seen may be later than any
         * time taken before them. */
        uint64_t now = server_now_ms();
        subscriber_tick(rb, now, &last_sweep);
        if (!sync_rooms(rb, c, now, err, errlen))
            return true;
        if (now - last_ping >= SUB_PING_MS) {
            if (redisAppendCommand(c, "PING") != REDIS_OK || !flush_out(c)) {
                snprintf(err, errlen, "connection lost: %s", c->errstr);
                return true;
            }
            last_ping = now;
        }
        if (now > last_seen + COMMAND_TIMEOUT_MS) {
            snprintf(err, errlen, "no answer for %d ms", COMMAND_TIMEOUT_MS);
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
        char err[600] = "";
        redisContext *c = connect_redis(rb, &rb->sub_fd, err, sizeof(err));
        bool go_on = true;
        if (c) {
            go_on = listen_loop(rb, c, &ever, &bo, err, sizeof(err));
            if (go_on && atomic_load(&rb->sub_ready))
                log_warn("redis: subscriber lost its connection (%s); local delivery goes on, "
                         "/readyz answers 503 until it is back",
                         err);
            atomic_store(&rb->sub_ready, 0);
            /* Nothing is subscribed now: whoever waits for a room gets its
             * welcome, and joins stop waiting until the next connection. */
            uint64_t gen = registry_sub_gone(&rb->srv->rooms);
            if (fanout_room_ready(rb->srv->fanout, NULL, gen))
                log_error("redis: out of memory telling workers that Redis went away");
            free_context(rb, c, &rb->sub_fd);
        }
        if (!go_on)
            break;
        backoff_log(&bo, "subscriber", err);
        if (!nap(rb, backoff_next(&bo)))
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
    n += atomic_load(&rb->parked);
    dropped += atomic_load(&rb->parked_dropped);
    *out = (struct broker_status){
        .mode = "redis",
        .cluster = rb->cfg->redis_cluster,
        .connected = atomic_load(&rb->pub_connected) && atomic_load(&rb->sub_ready),
        .reconnects = atomic_load(&rb->reconnects),
        .outbox = n,
        .outbox_dropped = dropped,
        .foreign_dropped = atomic_load(&rb->foreign_dropped),
        .oversize_dropped = atomic_load(&rb->oversize_dropped),
        .overload_dropped = atomic_load(&rb->overload_dropped),
        .mismatch_dropped = atomic_load(&rb->mismatch_dropped),
        .forged_pod = atomic_load(&rb->forged_pod),
        .duplicates = atomic_load(&rb->duplicates),
        .seq_restarts = atomic_load(&rb->seq_restarts),
        .untracked = atomic_load(&rb->untracked),
        .lost = atomic_load(&rb->lost),
        .received = atomic_load(&rb->received),
        .taken = atomic_load(&rb->taken),
        .rooms_subscribed = registry_confirmed(&rb->srv->rooms),
        .subscribes = atomic_load(&rb->subscribes),
        .unsubscribes = atomic_load(&rb->unsubscribes),
        .origins = rb->origins,
        .n_origins = atomic_load_explicit(&rb->n_origins, memory_order_acquire),
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
    cluster_shutdown_sockets(rb);
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
    seq_table_free(rb->tx_seq);
    seq_table_free(rb->rx_seq);
    free(rb->scratch);
    free(rb->subs.names);
    cluster_free(rb);
    close(rb->stop_efd);
    close(rb->wake_efd);
    pthread_cond_destroy(&rb->cond);
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

int redis_broker_start(struct server *srv, struct broker *b)
{
    struct redis_broker *rb = calloc(1, sizeof(*rb));
    if (!rb)
        return -1;
    rb->srv = srv;
    rb->cfg = &srv->cfg;
    rb->pub_fd = rb->sub_fd = -1;
    rb->stop_efd = rb->wake_efd = -1;
    /* The epoch tells restarts of one POD_ID apart. It is random, and no
     * client ever sees it (seq.h), so a client cannot aim a payload at
     * another pod's stream. 62 bits: at most 19 digits (seq_tail_parse). */
    if (getrandom(&rb->epoch, sizeof(rb->epoch), 0) != sizeof(rb->epoch))
        rb->epoch = (uint64_t)server_wall_ms() ^ ((uint64_t)getpid() << 40);
    rb->epoch = (rb->epoch >> 2) | 1;
    rb->scratch_cap = srv->cfg.max_message + ENVELOPE_SLACK + 64;
    rb->scratch = malloc(rb->scratch_cap);
    rb->tx_seq = seq_table_new(0);
    rb->rx_seq = seq_table_new(SEQ_RX_MAX);
    if (!rb->scratch || !rb->tx_seq || !rb->rx_seq) {
        free(rb->scratch);
        seq_table_free(rb->tx_seq);
        seq_table_free(rb->rx_seq);
        free(rb);
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (outbox_init(&rb->outbox, srv->cfg.redis_outbox) < 0 ||
        pthread_mutex_init(&rb->lock, NULL) != 0 || pthread_cond_init(&rb->cond, &ca) != 0 ||
        (rb->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        (rb->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        if (rb->stop_efd >= 0)
            close(rb->stop_efd);
        pthread_condattr_destroy(&ca);
        free(rb->outbox.items);
        free(rb->scratch);
        seq_table_free(rb->tx_seq);
        seq_table_free(rb->rx_seq);
        free(rb);
        return -1;
    }
    pthread_condattr_destroy(&ca);
    /* Per-room subscriptions: the registry wakes the subscriber when a room
     * gains its first member. Set before any thread runs. */
    srv->rooms.tracking = true;
    srv->rooms.wake = wake_subscriber;
    srv->rooms.wake_arg = rb;
    *b = (struct broker){.mode = "redis",
                         .impl = rb,
                         .publish = redis_publish,
                         .status = redis_status,
                         .stop = redis_stop};
    bool cluster = srv->cfg.redis_cluster;
    if (cluster && cluster_init(rb) < 0) {
        redis_stop(b, server_now_ms());
        return -1;
    }
    rb->pub_started = pthread_create(&rb->pub_thread, NULL,
                                     cluster ? cluster_publisher_main : publisher_main, rb) == 0;
    rb->sub_started = pthread_create(&rb->sub_thread, NULL,
                                     cluster ? cluster_subscriber_main : subscriber_main, rb) == 0;
    if (!rb->pub_started || !rb->sub_started) {
        redis_stop(b, server_now_ms());
        return -1;
    }
    return 0;
}
