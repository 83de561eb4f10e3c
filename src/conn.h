/* conn.h: one client connection: its WebSocket protocol, its close
 * handshake, its heartbeat and its writes. Private to the worker (worker.c)
 * and its unit suite (tests/unit/test_conn.c).
 *
 * DESIGN: a connection is in one of five states (enum conn_state), and
 * every change of state is made by set_state in conn.c:
 *
 *   OPEN --- we close (conn_close, a protocol error, slow, shutdown) ---> CONN_CLOSE_SENT
 *    |                                                                         |
 *    +-- the client's close frame --> CONN_CLOSE_ANSWERED             our close written
 *                                          |                                   v
 *                               our answer written                      CONN_WRITE_SHUT
 *                                          v                                   |
 *   DEAD <---------------------------------+---- the client's close, EOF, -----+
 *                                                or the close deadline
 *
 * and any state goes to DEAD on a socket error, EOF, silence past
 * PONG_TIMEOUT or a slow consumer that is already closing. A dead connection
 * is only marked: it is freed by conn_reap at the end of the loop pass, so
 * events for it later in the same epoll batch are recognised and skipped.
 * Nothing is queued after our close frame (RFC 6455 5.5.1); only OPEN
 * connections take messages and answer pings.
 *
 * Held input: a connection is not read while it holds input, for one of two
 * reasons (the tag): waiting for its room's subscription (ROOM: the bytes it
 * sent with its request head) or for credit (CREDIT: a message no lane could
 * admit yet, and the bytes read after it, on the set's credit_wait list,
 * oldest first). Either way its silence is ours, not the client's: the
 * heartbeat does not count it.
 *
 * Pongs: every ping gets its own pong, in order, while fewer than PONG_MAX are
 * unwritten; past that only the latest waits (RFC 6455 5.5.3), so pipelined
 * pings never make a queue that fills up.
 *
 * Owned by one worker thread: the set, its connections and everything they
 * hold. */
#ifndef CHAT_CONN_H
#define CHAT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compressor.h"
#include "fanout.h"
#include "ipaddr.h"
#include "list.h"
#include "loop.h"
#include "room/room.h"
#include "send_ring.h"
#include "wheel.h"
#include "ws/frame.h"

#define CONN_READ_BUF 65536
/* Pongs a connection may have queued: each ping gets its own pong up to
 * this many unwritten ones (strict peers, Autobahn 2.10, expect one per
 * ping); past it, only the latest is answered. */
#define PONG_MAX 16
/* Ring slots beyond SEND_BUFFER, kept for control frames (pongs, our ping,
 * close). */
#define CONTROL_SLOTS (PONG_MAX + 4)
/* How long we wait for the client's close after sending ours (at shutdown:
 * until SHUTDOWN_TIMEOUT instead). */
#define CLOSE_WAIT_MS 2000

enum conn_state {
    CONN_OPEN,
    CONN_CLOSE_SENT,     /* we started the close: our close frame is queued */
    CONN_CLOSE_ANSWERED, /* the client started it: our answer is queued, TCP closes once
                          * it is written (RFC 6455 7.1.1) */
    CONN_WRITE_SHUT,     /* our close is written and SHUT_WR done: we wait for the
                          * client's close or EOF until close_deadline_ms */
    CONN_DEAD,           /* freed at the end of this loop pass */
};

/* What permessage-deflate lets the server send a connection (bits). */
enum conn_pmd {
    CONN_PMD_ON = 1,     /* agreed: its RSV1 messages are inflated */
    CONN_PMD_STREAM = 2, /* its room stream's frames (ws_pmd_takes_stream) */
    CONN_PMD_ALONE = 4,  /* frames compressed alone (ws_pmd_takes_alone) */
};

enum conn_hold {
    CONN_HOLD_NONE,
    CONN_HOLD_ROOM,   /* waits for its room's subscription */
    CONN_HOLD_CREDIT, /* a message of its own waits for a lane's credit */
};

struct held_input;

/* One client connection; owned by its worker alone. The fields marked
 * "worker" are worker.c's (rooms and delivery); the rest are conn.c's. */
struct conn {
    int fd;
    uint8_t kind;        /* enum conn_kind (worker) */
    uint8_t state;       /* enum conn_state */
    uint8_t hold;        /* enum conn_hold: what held says */
    uint8_t out_armed;   /* EPOLLOUT is registered */
    uint8_t dirty;       /* on the set's list of connections to write */
    uint8_t read_only;   /* its token allows receiving only (worker) */
    uint8_t in_chat;     /* chat_m is in the worker's chat list (worker) */
    uint8_t counted;     /* in the server's per-address counts (worker) */
    uint8_t pongs_queued; /* pongs in the ring, not yet fully written (<= PONG_MAX) */
    uint8_t pmd;          /* enum conn_pmd bits, from the upgrade */
    uint8_t in_step;      /* a stream member whose inflater has read every frame of its
                           * room's stream since the stream last started afresh (worker) */
    struct loop_handler io;    /* its socket's handler in the set's loop */
    struct ws_frame_parser parser;
    struct room *room;         /* NULL on a global connection (worker) */
    struct room_member room_m; /* in room (worker) */
    struct room_member chat_m; /* in the worker's list of chat connections (worker) */
    struct room_member any_m;  /* in the set's list of every connection */

    /* Frames waiting to be written: SEND_RING_MIN slots once used, up to
     * SEND_BUFFER + CONTROL_SLOTS under a burst (send_ring.h). */
    struct send_ring ring;

    uint64_t last_rx_ms;
    union {
        uint64_t last_ping_ms;      /* OPEN: when our last ping went out (0: none) */
        uint64_t close_deadline_ms; /* closing: when we stop waiting for the client */
    };
    uint64_t expires_ms; /* when its token expires (monotonic); 0: never */
    struct wheel_timer timer; /* its next heartbeat look (or close deadline) */
    struct conn *dirty_next;
    struct conn *dead_next;
    struct fbuf *pong;         /* past PONG_MAX: the answer to the latest ping, waiting for
                                * a queued pong to be written */
    struct held_input *held;   /* what it holds while not read (hold says why), or NULL */
    /* Who it is, in the same allocation: an idle connection is one block. */
    struct ipaddr addr; /* the client address (ipaddr.h) */
    char id[];          /* the client id, NUL-terminated */
};

/* What the set asks of its owner (the worker). */
struct conn_calls {
    /* A whole, valid data message from an OPEN connection whose token is
     * still good. The owner may hold c's input (conn_hold_credit). */
    void (*message)(void *owner, struct conn *c, const struct ws_event *ev);
    /* One more try for a message held for credit: true when it was taken
     * (the held reference is then dropped), false to keep waiting. */
    bool (*retry)(void *owner, struct conn *c, struct fbuf *parked);
    /* c is about to be freed: the owner lets go of its rooms and counts. */
    void (*gone)(void *owner, struct conn *c);
};

/* A worker's connections and what they share. Owned by the worker. */
struct conn_set {
    unsigned id; /* the worker's, for log lines */
    const struct config *cfg;
    struct worker_counters *counters; /* the worker's: written by it only */
    const struct conn_calls *calls;
    void *owner;
    struct loop loop;         /* every connection's socket, and the owner's own; its now
                               * is the set's clock */
    struct wheel wheel;       /* heartbeats and close deadlines */
    struct room all;          /* every connection not yet freed (any_m) */
    struct conn *dirty;       /* to write in this pass */
    struct conn *dead;        /* to free at the end of this pass */
    struct list credit_wait;  /* of held_input: held for credit, oldest first */
    struct fbuf *ping;        /* the shared empty ping frame */
    struct compressor z;      /* permessage-deflate: room streams (the owner's) and inflating */
    struct send_batch *batch; /* the io_uring for writes; NULL: writev (IO_URING) */
    bool draining;
    uint64_t drain_deadline_ms;
    uint8_t rbuf[CONN_READ_BUF]; /* one read buffer for every connection */
};

/* Sets up s with its epoll and timer wheel (tick from the heartbeat
 * settings). With cfg->io_uring it tries an io_uring for writes; why (n
 * bytes) says why there is none. Returns 0 or -1. */
int conn_set_init(struct conn_set *s, unsigned id, const struct config *cfg,
                  struct worker_counters *counters, const struct conn_calls *calls, void *owner,
                  char *why, size_t n);
/* Kills and frees every connection, then what s holds. */
void conn_set_free(struct conn_set *s);

/* A connection for h's socket, registered with epoll, on the heartbeat
 * wheel and in s->all; NULL (the socket closed) when that fails. */
struct conn *conn_new(struct conn_set *s, const struct conn_handoff *h);
/* Runs the frame parser over bytes of c's (from its socket or handed over). */
void conn_feed(struct conn_set *s, struct conn *c, uint8_t *buf, size_t n);
/* Marks c dead: freed by conn_reap. */
void conn_kill(struct conn_set *s, struct conn *c);

/* Queues a frame for an OPEN connection, using a reference the caller paid
 * for (prepaid) or taking one. A full ring whose socket takes nothing more is
 * a slow consumer: closed with 1008. Returns whether the ring kept b. */
bool conn_send(struct conn_set *s, struct conn *c, struct fbuf *b, bool prepaid);
/* A connection's first frame: written at once when the socket takes it
 * whole (it nearly always does), so an idle connection never allocates its
 * ring; queued like any frame otherwise. */
void conn_send_first(struct conn_set *s, struct conn *c, struct fbuf *b);
/* Starts the closing handshake from our side, after what is queued. */
void conn_close(struct conn_set *s, struct conn *c, uint16_t code, const char *reason);
/* Closes c with 1008 when its token has passed exp + leeway; true when it
 * has (c is then closing). */
bool conn_token_expired(struct conn_set *s, struct conn *c);
/* The token is good until exp (Unix seconds) plus the upgrade's leeway. */
void conn_token_deadline(struct conn_set *s, struct conn *c, int64_t exp);

/* Stops reading c until its room is ready, keeping extra (len bytes).
 * gen: the subscriber connection it waits on. Returns 0 or -ENOMEM. */
int conn_hold_room(struct conn_set *s, struct conn *c, const uint8_t *extra, size_t len,
                   uint64_t gen);
/* Whether c waits for its room on subscriber connection gen or an earlier one. */
bool conn_awaits(const struct conn *c, uint64_t gen);
/* Ends a hold (the worker's: a ROOM one): c is read again. Returns the bytes it held (*len of
 * them; the caller frees them), or NULL. */
uint8_t *conn_unhold(struct conn_set *s, struct conn *c, size_t *len);
/* Stops reading c, keeping b (the caller's reference becomes c's) and the
 * bytes after it, until calls->retry takes b (conn_retry_held). */
void conn_hold_credit(struct conn_set *s, struct conn *c, struct fbuf *b);
/* Gives each connection held for credit, oldest first, one retry; those
 * whose message is taken are read again, starting with what they held. */
void conn_retry_held(struct conn_set *s);

/* Heartbeats and close deadlines that are due. */
void conn_run_timers(struct conn_set *s);
/* Writes every connection that got something in this pass. */
void conn_flush_dirty(struct conn_set *s);
/* Frees the connections that died in this pass. */
void conn_reap(struct conn_set *s);
/* Shutdown: every OPEN connection is closed with 1001; none waits for its
 * client past deadline_ms. */
void conn_drain(struct conn_set *s, uint64_t deadline_ms);
/* Marks every connection dead. */
void conn_kill_all(struct conn_set *s);

#endif
