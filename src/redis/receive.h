/* receive.h: each message the subscriber takes from Redis, checked and
 * delivered.
 *
 * DESIGN: the numbering first (seq.h): a repeat is dropped before any work,
 * a gap is counted as lost per origin, a number far off starts a new
 * stream; then load shedding (what the workers have no room for is dropped
 * and counted before any parsing: the subscriber never waits for them);
 * then the payload's rules (message.h: a JSON object in UTF-8, its room the
 * channel's, not this pod's own echo, within MAX_MESSAGE_SIZE + 1 KiB);
 * then it is framed once, without its numbering, and posted to the
 * workers through the fanout.
 *
 * Owner: the subscriber thread (one receiver). */
#ifndef CHAT_REDIS_RECEIVE_H
#define CHAT_REDIS_RECEIVE_H

#include <hiredis.h>
#include <stdint.h>

#include "redis/backoff.h"
#include "redis/seq.h"

struct redis_broker;

struct redis_receiver {
    struct redis_broker *rb;
    struct seq_table *rx_seq; /* origin, epoch, channel -> last seen */
    struct redis_episode overload, loss;
    uint64_t last_sweep_ms;
};

/* Returns 0 or -1 (out of memory). */
int redis_receiver_init(struct redis_receiver *r, struct redis_broker *rb);
void redis_receiver_free(struct redis_receiver *r);

/* One message: ch its channel, pl its payload. */
void redis_receive(struct redis_receiver *r, const redisReply *ch, const redisReply *pl);

/* Something for the workers found no room: counted, with one log line per
 * episode. */
void redis_receive_overload(struct redis_receiver *r);

/* Ends quiet episodes (one log line each) and forgets quiet streams. */
void redis_receiver_tick(struct redis_receiver *r, uint64_t now);

#endif
