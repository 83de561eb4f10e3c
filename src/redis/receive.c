/* receive.c: what the subscriber does with each message from Redis
 * (receive.h). */
#include "redis/receive.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "dest.h"
#include "fanout.h"
#include "fbuf.h"
#include "log.h"
#include "redis/broker_internal.h"
#include "redis/message.h"
#include "room/envelope.h"
#include "ws/frame.h"

int redis_receiver_init(struct redis_receiver *s, struct redis_broker *rb)
{
    *s = (struct redis_receiver){.rb = rb, .last_sweep_ms = clock_now_ms()};
    s->rx_seq = seq_table_new(SEQ_RX_MAX);
    return s->rx_seq ? 0 : -1;
}

void redis_receiver_free(struct redis_receiver *s)
{
    seq_table_free(s->rx_seq);
    s->rx_seq = NULL;
}

void redis_receiver_tick(struct redis_receiver *s, uint64_t now)
{
    struct redis_broker *rb = s->rb;
    double secs;
    if (redis_episode_over(&s->overload, now, &secs))
        log_warn("redis: overload over after %.1f s; %llu messages from Redis were dropped", secs,
                 (unsigned long long)(atomic_load(&rb->counters.overload_dropped) - s->overload.at_start));
    if (redis_episode_over(&s->loss, now, &secs))
        log_warn("redis: %llu messages from other pods were lost in that episode (%.1f s)",
                 (unsigned long long)(atomic_load(&rb->counters.lost) - s->loss.at_start), secs);
    if (now - s->last_sweep_ms >= REDIS_SEQ_SWEEP_MS) {
        seq_table_sweep(s->rx_seq, now > SEQ_FORGET_RX_MS ? now - SEQ_FORGET_RX_MS : 0);
        s->last_sweep_ms = now;
    }
}

/* Redis delivers faster than the workers fan out: the subscriber never
 * waits for them (it would only move the backlog into Redis, which cuts a
 * subscriber off past its output buffer limit and loses it uncounted). It
 * drops what no lane admits, counts it, and logs once when an episode
 * starts and once when it ends. */
void redis_receive_overload(struct redis_receiver *s)
{
    uint_fast64_t n = atomic_fetch_add(&s->rb->counters.overload_dropped, 1);
    if (redis_episode_note(&s->overload, clock_now_ms(), n))
        log_warn("redis: messages arrive faster than this pod can deliver them; dropping what "
                 "does not fit (counted in stats as broker.overload_dropped)");
}

/* The losses of one origin pod, claiming an entry for it on first sight. */
static struct broker_origin_lost *origin_entry(struct redis_broker *rb, const char *pod, size_t len)
{
    unsigned n = atomic_load_explicit(&rb->n_origins, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        if (strlen(rb->origins[i].pod) == len && memcmp(rb->origins[i].pod, pod, len) == 0)
            return &rb->origins[i];
    if (n == REDIS_LOST_ORIGINS_MAX || len >= sizeof(rb->origins[0].pod))
        return NULL;
    memcpy(rb->origins[n].pod, pod, len);
    rb->origins[n].pod[len] = '\0';
    atomic_store_explicit(&rb->n_origins, n + 1, memory_order_release);
    return &rb->origins[n];
}

/* Checks a numbered payload from another pod against what was seen from it
 * on this channel. Returns false for a duplicate, which is dropped; a gap is
 * counted as lost, per origin, with one log line per episode. */
static bool in_sequence(struct redis_receiver *s, const redisReply *ch, const struct envelope_numbering *t)
{
    struct redis_broker *rb = s->rb;
    char key[SEQ_KEY_MAX];
    int n = snprintf(key, sizeof(key), "%.*s %llu %.*s", (int)t->pod_len, t->pod,
                     (unsigned long long)t->epoch, (int)ch->len, ch->str);
    if (n < 0 || (size_t)n >= sizeof(key))
        return true;
    bool fresh;
    struct seq_entry *e = seq_table_get(s->rx_seq, key, (size_t)n, &fresh);
    if (!e) {
        /* SEQ_RX_MAX streams are tracked already (or memory ran out): this
         * one is delivered unnumbered, so made-up origins cost no memory. */
        atomic_fetch_add(&rb->counters.untracked, 1);
        return true;
    }
    uint64_t now = clock_now_ms(), lost = 0;
    e->stamp_ms = now;
    enum seq_verdict v = seq_accept(e, fresh, t->seq, &lost);
    if (v == SEQ_DUPLICATE) {
        atomic_fetch_add(&rb->counters.duplicates, 1);
        return false;
    }
    if (v == SEQ_RESTART)
        atomic_fetch_add(&rb->counters.seq_restarts, 1);
    if (v == SEQ_GAP) {
        uint_fast64_t before = atomic_fetch_add(&rb->counters.lost, lost);
        struct broker_origin_lost *o = origin_entry(rb, t->pod, t->pod_len);
        if (o)
            atomic_fetch_add(&o->lost, lost);
        if (redis_episode_note(&s->loss, now, before))
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

void redis_receive(struct redis_receiver *s, const redisReply *ch, const redisReply *pl)
{
    struct redis_broker *rb = s->rb;
    atomic_fetch_add_explicit(&rb->counters.taken, 1, memory_order_relaxed);
    if (ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING) {
        atomic_fetch_add(&rb->counters.foreign_dropped, 1);
        return;
    }
    /* Where it goes, worked out once (dest.h): the channel names the room. */
    struct dest d;
    bool known_channel = dest_of_channel(&d, ch->str, ch->len) == 0;
    struct envelope_numbering tail;
    bool numbered = known_channel && envelope_numbering(pl->str, pl->len, &tail);
    size_t idlen = strlen(rb->cfg->pod_id);
    bool own_tail = numbered && tail.pod_len == idlen && memcmp(tail.pod, rb->cfg->pod_id, idlen) == 0;
    /* Sequence first, cheaply from the tail: a repeat is dropped before any
     * work, and a message dropped below for overload is still recorded as
     * seen, so it never counts as lost too. */
    if (numbered && !own_tail && !in_sequence(s, ch, &tail))
        return;
    /* Shed load before doing any work on the payload: when the workers have
     * no room for it anyway, checking UTF-8 and JSON and framing it would
     * only slow the subscriber down. Our own messages are let through to be
     * recognised and suppressed, not counted. */
    if (known_channel && !own_tail &&
        !fanout_admits(rb->fanout, d.bucket, pl->len + ws_frame_header_len(pl->len),
                       FANOUT_FROM_REDIS)) {
        redis_receive_overload(s);
        return;
    }
    enum redis_msg_kind k = known_channel ? redis_msg_classify(pl->str, pl->len, rb->cfg->pod_id,
                                                               dest_room(&d))
                                          : REDIS_MSG_INVALID;
    switch (k) {
    case REDIS_MSG_OWN:
        /* Delivered locally already. One that this run did not publish
         * (another epoch, or no number) carries our id falsely: suppressed
         * all the same, and counted so it can be seen. */
        if (!own_tail || tail.epoch != rb->epoch)
            count_drop(&rb->counters.forged_pod, "forged_pod",
                       "it carries this pod's id but this pod did not publish it", ch, pl->len);
        return;
    case REDIS_MSG_INVALID:
        count_drop(&rb->counters.foreign_dropped, "foreign_dropped", "not a JSON object in UTF-8", ch,
                   pl->len);
        return;
    case REDIS_MSG_ROOM_MISMATCH:
        count_drop(&rb->counters.mismatch_dropped, "mismatch_dropped", "its room is not its channel's", ch,
                   pl->len);
        return;
    case REDIS_MSG_DELIVER: break;
    }
    /* MAX_MESSAGE_SIZE bounds what clients receive (docs/protocol.md); a backend is held to the
     * same bound as this pod's own clients (envelope.h). */
    if (pl->len > rb->cfg->max_message + ENVELOPE_SLACK) {
        count_drop(&rb->counters.oversize_dropped, "oversize_dropped", "over MAX_MESSAGE_SIZE + 1 KiB", ch,
                   pl->len);
        return;
    }
    /* Clients get a pod's message without its numbering (seq.h): framed up
     * to the numbering plus one byte, which becomes the closing brace
     * before anyone else sees the buffer. */
    size_t len = numbered ? tail.body_len + 1 : pl->len;
    struct fbuf *b = dest_frame(pl->str, len, &d);
    if (!b)
        return;
    if (numbered)
        b->data[b->len - 1] = '}';
    int rc = fanout_post(rb->fanout, b, d.bucket, FANOUT_FROM_REDIS);
    fbuf_unref(b);
    if (rc == -EAGAIN) {
        redis_receive_overload(s);
        return;
    }
    atomic_fetch_add(&rb->counters.received, 1);
    if (rc > 0)
        atomic_fetch_add(&rb->counters.overload_dropped, 1);
}

