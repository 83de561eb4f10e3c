/* fanout.h: the worker inboxes and the flow control between threads.
 *
 * DESIGN: every worker has one lane: its inbox and the credit that bounds
 * what waits in it. A backlog is measured in the work it stands for, bytes
 * to be written: a frame posted to a lane costs
 *     (recipients on that lane + 1) * (frame bytes + FANOUT_ITEM_OVERHEAD).
 * Recipients come from member counters that each worker keeps for its own
 * rooms, in FANOUT_BUCKETS buckets by room hash (plus one bucket for global
 * messages, whose recipients are all chat connections). A bucket shared by
 * two rooms holds the sum of both: an overestimate, never an underestimate.
 *
 * Admission is all or nothing across lanes, and on each lane
 *   - the lane's work stays within the lane's budget for client messages,
 *     and within three quarters of it for Redis input, so a flood from Redis
 *     always leaves room for this pod's own clients;
 *   - one bucket's work stays within half of the budget, so one flooded
 *     room (or the global scope) never fills a lane and other rooms' messages
 *     are admitted and delivered after at most a budget's worth of work;
 *   - an empty lane or bucket admits anything, so a single message larger
 *     than the budget still goes through, alone.
 * What a producer does when refused is its decision: a worker stops reading
 * the connection that sent the message and retries when kicked; the Redis
 * subscriber drops the message and counts it. The owning worker gives the
 * credit back item by item as it delivers, and after a batch kicks every
 * worker if any producer was refused meanwhile.
 *
 * Threads: any thread posts; lane i's worker alone takes from its inbox,
 * calls fanout_delivered and changes its member counters. */
#ifndef CHAT_FANOUT_H
#define CHAT_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inbox.h"
#include "ipaddr.h"
#include "ws/auth.h"
#include "ws/handshake.h"

struct fbuf;
enum conn_kind {
    CONN_CHAT,
    CONN_ECHO,
};

/* A new connection, upgraded by the acceptor and handed to a worker
 * through its lane (fanout_hand_over); the worker frees it. */
struct conn_handoff {
    int fd;
    enum conn_kind kind;
    bool has_room;
    char room[WS_HS_ROOM_MAX + 1];
    char client_id[WS_AUTH_SUB_MAX + 1];
    bool read_only;    /* the token allows receiving only */
    bool ip_counted;   /* counted in the per-address limit: the worker counts it out */
    struct ipaddr client_addr; /* what it is counted under (ipaddr_quota_key) */
    int64_t token_exp; /* the token's exp (Unix seconds): closed with 1008 then; 0: never */
    struct ws_pmd pmd; /* permessage-deflate as agreed in the upgrade */
    size_t extra_len;  /* bytes the client sent after its request head */
    uint8_t extra[];
};

struct fanout;

/* A lane's budget: work it may hold, and so at most this much memory of
 * frames. A larger budget lets one room's burst be written in bigger batches
 * (a constant 64 MiB cost fan-out 13% of its deliveries per CPU-second with
 * writev, about 8% with io_uring; bench/README.md); a smaller one makes
 * another room's message wait less, as it waits behind at most a budget's
 * worth of work. So the budget is set in time: what the lane's worker took
 * and wrote in FANOUT_BUDGET_MS, measured by the wall clock over windows of
 * FANOUT_PACE_MS (fanout_lane_pace), idle time included, so a worker that
 * shares its CPU, or has little to do, measures less, never more. It rises
 * halfway towards what a window measured and falls to it at once, within
 * FANOUT_BUDGET_MIN (the constant it used to be) and FANOUT_BUDGET_MAX. The
 * budget only binds while a worker has more than it can write at once, and
 * then what it measures is what it writes: a flood gets the larger budget on
 * a machine fast enough to write it in FANOUT_BUDGET_MS, the smaller one
 * elsewhere (under ThreadSanitizer, whose build lowers the floor). */
#ifndef FANOUT_BUDGET_MIB /* a build-time knob, for benchmarks: the floor */
#define FANOUT_BUDGET_MIB 64u
#endif
#define FANOUT_BUDGET_MIN ((uint64_t)FANOUT_BUDGET_MIB << 20)
#define FANOUT_BUDGET_MAX (FANOUT_BUDGET_MIN * 2)
#define FANOUT_BUDGET_MS 100u
#define FANOUT_PACE_MS 100u
/* Counted per item on top of its bytes: the queue entry and ring append. */
#define FANOUT_ITEM_OVERHEAD 64u
#define FANOUT_BUCKETS 512u
#define FANOUT_GLOBAL FANOUT_BUCKETS /* the bucket of global messages */
#define FANOUT_MAX_LANES 256u

enum fanout_source {
    FANOUT_FROM_CLIENT, /* a worker posting its client's message */
    FANOUT_FROM_REDIS,  /* the subscriber posting what Redis delivered */
};

/* Creates nlanes lanes (1..FANOUT_MAX_LANES). NULL when out of memory or
 * out of descriptors. Main thread. */
struct fanout *fanout_create(unsigned nlanes);

/* Releases what is still queued (frame references, handed-over sockets) and
 * frees everything. Main thread, after every producer and worker stopped. */
void fanout_destroy(struct fanout *f);

/* Lane i's inbox, for its worker to poll and take from. */
struct inbox *fanout_inbox(struct fanout *f, unsigned lane);
/* The eventfd lane's worker waits on. */
int fanout_inbox_fd(struct fanout *f, unsigned lane);

/* Posts msg (to bucket: its routing record's, dest.h) to every lane if
 * every lane admits it. Takes one reference per
 * lane; the caller keeps its own. Returns 0; -EAGAIN when some lane is full
 * (nothing was posted, nothing is owed); or the number (> 0) of lanes that
 * could not take it for lack of memory (the others did). Any thread. */
int fanout_post(struct fanout *f, struct fbuf *msg, unsigned bucket, enum fanout_source src);
/* The same, but for lane skip, whose worker delivers msg itself at once
 * (a worker's own client's message: no inbox round trip to itself). */
int fanout_post_except(struct fanout *f, struct fbuf *msg, unsigned bucket, enum fanout_source src,
                       unsigned skip);
/* What msg costs on lane (recipients + 1 times its bytes and the item
 * overhead): for the lane's worker to count work it did without its inbox. */
uint64_t fanout_cost(struct fanout *f, unsigned lane, const struct fbuf *msg, unsigned bucket);

/* Whether msg's bytes to bucket would be admitted now (src's rules), without
 * reserving anything: a cheap look for a producer that would rather drop
 * than do the work of building a message no lane takes. fanout_post still
 * decides. Any thread. */
bool fanout_admits(struct fanout *f, unsigned bucket, size_t frame_len, enum fanout_source src);

/* Hands a new connection to lane's worker; connections cost no credit (they
 * are bounded by MAX_CONNECTIONS). Returns 0 or -ENOMEM (h is still the
 * caller's). Acceptor thread. */
int fanout_hand_over(struct fanout *f, unsigned lane, struct conn_handoff *h);

/* Tells every worker that room's subscription is confirmed (NULL: that
 * nothing waits any more for subscriber connection gen or an earlier one),
 * behind what is already queued. Costs
 * no credit. Returns the number of lanes that could not be told for lack of
 * memory. Any thread. */
unsigned fanout_room_ready(struct fanout *f, const char *room, uint64_t gen);

/* The bucket of a room, by room_hash (global messages: FANOUT_GLOBAL). */
unsigned fanout_room_bucket(uint32_t room_hash);

/* A member joined (+1) or left (-1) bucket on lane. Lane's worker. */
void fanout_member(struct fanout *f, unsigned lane, unsigned bucket, int delta);

/* Gives back the credit of a frame item lane's worker has delivered. */
void fanout_delivered(struct fanout *f, unsigned lane, const struct inbox_item *it);

/* Called by lane's worker after a batch: kicks every worker if a producer
 * was refused by this lane since the last call. */
void fanout_batch_done(struct fanout *f, unsigned lane);

/* Wakes every worker. Any thread. */
void fanout_kick_all(struct fanout *f);

/* The work now waiting in lane, in the units above, for stats. Any thread. */
uint64_t fanout_lane_work(struct fanout *f, unsigned lane);

/* Lane's worker, as each loop pass begins: the last pass took work (the
 * costs of the frames it took from the inbox and wrote), and now_ms is the
 * monotonic clock now, so a window spans whole passes and the waits between
 * them. Moves the budget at the end of each FANOUT_PACE_MS window. */
void fanout_lane_pace(struct fanout *f, unsigned lane, uint64_t work, uint64_t now_ms);

/* The lane's budget now, for stats. Any thread. */
uint64_t fanout_lane_budget(struct fanout *f, unsigned lane);

#endif
