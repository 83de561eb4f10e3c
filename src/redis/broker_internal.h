/* broker_internal.h: what the Redis broker's single-node and cluster modes
 * share (broker.c, broker_cluster.c). Not for the rest of the server.
 *
 * DESIGN: one struct redis_broker per pod, built by the main thread. The
 * publisher thread and the subscriber thread each own their connections;
 * what they share is under lock or atomic, each field says whose it is. */
#ifndef CHAT_REDIS_BROKER_INTERNAL_H
#define CHAT_REDIS_BROKER_INTERNAL_H

#include <hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis/outbox.h"
#include "redis/seq.h"
#include "stats.h"

struct server;
struct config;
struct redis_cluster_state;

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 1000
/* A command without an answer for this long means Redis hangs (SIGSTOP, a
 * paused client): the connection is given up and made again. */
#define COMMAND_TIMEOUT_MS 3000
#define BATCH_MAX 512
/* The subscriber pings Redis this often and reconnects when nothing has
 * come for COMMAND_TIMEOUT_MS, so /readyz turns 503 within about 3 s of a
 * hang even while nothing is published. */
#define SUB_PING_MS 1000
/* An episode (of overload, of loss) ends after this long without news. */
#define EPISODE_QUIET_MS 1000
/* How often the sequence tables forget quiet entries. */
#define SEQ_SWEEP_MS 60000
/* Origin pods whose losses are counted one by one; more share one line. */
#define LOST_ORIGINS_MAX 32

/* Something that goes on for a while (drops under overload, losses): one
 * log line when it starts, one when it has been quiet for a second. Owned by
 * the thread that notes it. */
struct episode {
    uint64_t since_ms, last_ms, at_start;
};

/* Room channels collected for one SUBSCRIBE or UNSUBSCRIBE (sent in
 * commands of up to CHANNELS_PER_COMMAND). The subscriber's own. */
struct chan_batch {
    char **names; /* heap channel names */
    size_t n, cap;
    bool oom;
};
#define CHANNELS_PER_COMMAND 1000

struct redis_broker {
    struct server *srv;
    const struct config *cfg;
    uint64_t epoch; /* random, drawn at start: tells restarts of one POD_ID apart (seq.h) */

    /* Guards outbox and stopping; cond wakes the publisher. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct outbox outbox;
    bool stopping;
    /* Each thread's socket, or -1: set and cleared by that thread under the
     * lock, so that a stop past its deadline can shut them down. */
    int pub_fd, sub_fd;

    int stop_efd; /* written once by stop: wakes the subscriber's poll */
    int wake_efd; /* written by workers (through the registry): rooms to subscribe */
    pthread_t pub_thread, sub_thread;
    bool pub_started, sub_started;

    atomic_int pub_connected;              /* written by the publisher */
    atomic_int sub_ready;                  /* written by the subscriber */
    atomic_uint_fast64_t reconnects;       /* written by the subscriber */
    atomic_uint_fast64_t foreign_dropped;  /* written by the subscriber */
    atomic_uint_fast64_t oversize_dropped; /* written by the subscriber */
    atomic_uint_fast64_t overload_dropped; /* written by the subscriber */
    atomic_uint_fast64_t mismatch_dropped; /* written by the subscriber */
    atomic_uint_fast64_t forged_pod;       /* written by the subscriber */
    atomic_uint_fast64_t duplicates;       /* written by the subscriber */
    atomic_uint_fast64_t seq_restarts;     /* written by the subscriber */
    atomic_uint_fast64_t untracked;        /* written by the subscriber */
    atomic_uint_fast64_t lost;             /* written by the subscriber */
    atomic_uint_fast64_t received;         /* written by the subscriber */
    atomic_uint_fast64_t taken;            /* written by the subscriber */
    atomic_uint_fast64_t parked;           /* written by the cluster publisher (gauge) */
    atomic_uint_fast64_t parked_dropped;   /* written by the cluster publisher */
    atomic_uint_fast64_t subscribes;       /* written by the subscriber */
    atomic_uint_fast64_t unsubscribes;     /* written by the subscriber */
    /* Losses per origin pod, for /metrics: slots are claimed by the
     * subscriber (name first, then the count of slots, released). */
    struct broker_origin_lost origins[LOST_ORIGINS_MAX];
    atomic_uint n_origins;

    /* The publisher's own. */
    struct seq_table *tx_seq; /* channel -> last sequence number given */
    char *scratch;            /* a payload with its sequence, for PUBLISH */
    size_t scratch_cap;
    /* The subscriber's own. */
    struct seq_table *rx_seq; /* origin, epoch, channel -> last seen */
    struct episode overload, loss;
    struct chan_batch subs;   /* room channels to SUBSCRIBE or UNSUBSCRIBE next */
    /* Cluster mode: each thread's links to the cluster's nodes, whose
     * sockets a stop past its deadline shuts down (under lock). */
    struct redis_cluster_state *pub_cl, *sub_cl;
};

/* Jittered exponential backoff: a random wait in [d/2, d], then d doubles.
 * It goes back to the start only when Redis did real work for us (a PUBLISH
 * or a subscription confirmed), never on a mere TCP connect or AUTH: a Redis
 * that accepts connections and refuses everything is tried ever more slowly.
 * The same failure is logged once per step, not once per try. Each thread
 * has its own. */
struct backoff {
    uint32_t next_ms;
    uint32_t logged_step; /* next_ms when last_err was logged */
    uint64_t rng;
    char last_err[600];
};


uint32_t backoff_next(struct backoff *bo);
void backoff_init(struct backoff *bo);
void backoff_reset(struct backoff *bo);
void backoff_log(struct backoff *bo, const char *who, const char *err);

bool episode_note(struct episode *e, uint64_t now, uint64_t count_before);
bool episode_over(struct episode *e, uint64_t now, double *seconds);

bool is_stopping(struct redis_broker *rb);
/* Sleeps up to ms, waking early when the broker stops. Returns false then. */
bool nap(struct redis_broker *rb, uint32_t ms);
bool command_ok(redisContext *c, char *err, size_t errlen, const char *what, const char *fmt,
                ...);
void set_fd(struct redis_broker *rb, int *slot, int fd);
void free_context(struct redis_broker *rb, redisContext *c, int *slot);
/* Connects to host:port, authenticates (REDIS_URL's user and password),
 * selects the database and PINGs. NULL with why in err on failure. */
redisContext *connect_node(struct redis_broker *rb, const char *host, uint16_t port, int *slot,
                           char *err, size_t errlen);
size_t numbered_payload(struct redis_broker *rb, struct outbox_item *it, const char *channel,
                        size_t clen, uint64_t now);
void on_overload(struct redis_broker *rb);
void deliver_from_redis(struct redis_broker *rb, const redisReply *ch, const redisReply *pl);
void subscriber_tick(struct redis_broker *rb, uint64_t now, uint64_t *last_sweep);
bool flush_out(redisContext *c);
void batch_add(void *arg, const char *room);
bool batch_send(redisContext *c, struct chan_batch *cb, const char *verb);
/* Frees the collected names. */
void batch_clear(struct chan_batch *cb);

/* The cluster mode's threads (broker_cluster.c); the stop-time shutdown of
 * their sockets (called under rb->lock); freeing what they left. */
void *cluster_publisher_main(void *arg);
void *cluster_subscriber_main(void *arg);
void cluster_shutdown_sockets(struct redis_broker *rb);
/* Allocates the per-thread cluster states. Returns 0 or -1. */
int cluster_init(struct redis_broker *rb);
void cluster_free(struct redis_broker *rb);

#endif
