/* acceptor.c: accept, read the head, answer or upgrade, hand over.
 *
 * DESIGN: each client that has not finished its request head is a pending
 * entry with a small buffer. Entries sit in one list in arrival order, and
 * since every deadline is arrival + 10 s, the oldest is always first: timing
 * them out costs a look at the head of the list.
 *
 * Clients that connect and send nothing cost a descriptor each. At most
 * PENDING_MAX clients are kept. At that cap, or out of descriptors, the
 * acceptor makes room by dropping the oldest client that has had its
 * chance: one still without a whole head HEAD_GRACE_MS (200 ms) after it was
 * accepted, and read once more just before it goes (counted as
 * heads_evicted). Failing that, the oldest client of the address with the
 * most clients pending that are at least HEAD_EARLY_MS (50 ms) old goes,
 * read once more first (also heads_evicted): an attacker who keeps the list
 * full of young idle sockets, from many addresses and reopening each as soon
 * as it is dropped, would otherwise keep accepting paused and real clients
 * in a full backlog, their SYNs retried after 1, 3 and 7 s (issue 25: p99
 * 7.1 s for an upgrade, 5.1 s for /healthz). Kept accepting, a real client
 * whose head came with its handshake is answered in the pass that accepts
 * it. Only when every pending client is younger than that does accepting
 * stop (counted as accept_pauses): newcomers wait in the kernel's listen
 * backlog, which neither resets them nor costs us a descriptor, until a
 * slot frees or the oldest pending client is 50 ms old. Evicting at once instead
 * would reset well-behaved clients of a reconnect storm whose heads are
 * still on their way (that was the old rule, evicting entries whose heads
 * sat unread in their sockets); never evicting would let 1024 idle sockets
 * hold every newcomer for the whole 10 s head deadline. Each client is read
 * as soon as it is accepted, so one whose head came with the handshake is
 * answered at once and never waits in the pending list. A real request is
 * answered within a round trip, so a flood of idle connections costs real
 * clients about the grace (and a SYN retried from a full backlog), never the
 * 10 s deadline.
 *
 * Lifetime: an entry dropped while an epoll batch may still name it (an
 * eviction from accept_all, a drop from an earlier event) is only marked
 * PHASE_GONE and kept on a list freed after the batch, so a later event
 * for it in the same batch is recognised and skipped (nginx's stale-event
 * rule, as in worker.c). */
#include "acceptor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_seam.h"
#include "clock.h"
#include "common.h"
#include "config.h"
#include "fanout.h"
#include "hmap.h"
#include "http.h"
#include "ipaddr.h"
#include "list.h"
#include "log.h"
#include "loop.h"
#include "room/registry.h"
#include "stats.h"
#include "thread.h"
#include "ws/handshake.h"

#define HEAD_DEADLINE_MS 10000
#define BACKLOG 4096
/* Pending clients a burst must have reached for its end to trim the heap. */
#define TRIM_AFTER_BURST 64
#define FIRST_BUF 512 /* most upgrade requests fit; the buffer doubles up to 8 KiB */
#define PENDING_MAX ACCEPTOR_PENDING_MAX
/* How long a client has to send its whole head before it may be evicted to
 * make room: well above a round trip plus a busy client process's delay
 * between connect and write, yet short, because while every pending client
 * is younger than this, newcomers wait in the backlog, where a flood of idle
 * sockets retrying their SYNs competes with real clients for places. */
#define HEAD_GRACE_MS 200
/* Under pressure (every slot taken, nobody past the grace), a client still
 * without a head this long after it was accepted may be evicted, from the
 * address holding the most such clients: far above a head's delay behind
 * its handshake on any network a storm comes over (a storm of 10,000 from
 * four addresses never fills the list), far below the grace. */
#define HEAD_EARLY_MS 50
/* How old the rooms shown by stats may be. */
#define ROOMS_SNAPSHOT_MS 1000
/* Out of descriptors with nobody to evict: how long accepting stops. */
#define NO_FD_PAUSE_MS 100
/* The 101 answer: its head, the accept key and permessage-deflate's line. */
#define UPGRADE_ANSWER_MAX 384

/* The demo page, linked in from web/index.html (src/web_assets.S). */
extern const char web_index_html[];
extern const uint64_t web_index_html_len;

enum pending_phase {
    PHASE_READING, /* collecting the request head */
    PHASE_ANSWER,  /* writing a plain answer, then closing */
    PHASE_UPGRADE, /* writing the 101 answer, then handing over */
    PHASE_GONE,    /* dropped: freed after the current epoll batch */
};

/* A client the acceptor still owns. */
struct pending {
    struct loop_handler io; /* its socket's handler */
    int fd;
    uint8_t phase;
    uint64_t deadline_ms; /* accepted + HEAD_DEADLINE_MS */
    char *buf; /* the request head so far */
    size_t len, cap, scanned;
    char *out; /* the answer being written */
    size_t out_len, out_off;
    struct conn_handoff *handoff; /* PHASE_UPGRADE */
    bool head_only;               /* a HEAD request: answers carry no body */
    struct ipaddr peer;           /* the TCP peer's address */
    unsigned worker;
    struct list_node link; /* in pending (arrival order), then in gone */
};

struct acceptor {
    struct acceptor_env env; /* the pod's parts it uses (acceptor.h) */
    struct thread thread;
    int lfd;
    struct loop loop; /* the listening socket, wake and every pending client; its now is
                       * the acceptor's clock */
    struct loop_handler listen_io, wake_io;
    bool stopping; /* wake was written */
    int wake;     /* eventfd: written by acceptor_stop */
    bool listening;       /* the listening socket is in epoll */
    uint64_t no_fd_until; /* out of descriptors: no accepting before this */
    struct list pending; /* of struct pending, oldest first */
    struct list gone;    /* dropped during this batch, freed after it */
    unsigned npending;
    unsigned burst_peak; /* the most clients pending since the last malloc_trim */
    uint64_t *handed; /* [nworkers] connections handed to each worker; ours alone */
    uint64_t rng;
    struct registry_top rooms; /* for stats, built at rooms_built_ms */
    bool rooms_built;
    uint64_t rooms_built_ms;
    uint64_t last_emfile_log;
    /* Pending clients per address, counted when one must be evicted early
     * (evict_heaviest); a slot belongs to this pass when its gen is. */
    struct addr_tally {
        struct ipaddr addr;
        unsigned n, gen;
        struct pending *oldest;
    } tally[2 * PENDING_MAX];
    unsigned tally_gen;
};



static void bump(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void set_pending(struct acceptor *a, unsigned n)
{
    a->npending = n;
    if (n > a->burst_peak)
        a->burst_peak = n;
    atomic_store_explicit(&a->env.counters->pending_heads, n, memory_order_relaxed);
}

static void unlink_pending(struct acceptor *a, struct pending *p)
{
    set_pending(a, a->npending - 1);
    list_unlink(&a->pending, &p->link);
}

/* Forgets p; closes its socket unless it was handed to a worker. The entry
 * itself is freed by bury() after the batch, since a later event of the
 * batch may still point at it. */
static void drop(struct acceptor *a, struct pending *p, bool close_fd)
{
    unlink_pending(a, p);
    loop_del(&a->loop, p->fd);
    if (close_fd)
        close(p->fd);
    free(p->buf);
    free(p->out);
    p->buf = p->out = NULL;
    /* An upgrade that never reached a worker is counted out of its address. */
    if (p->handoff && p->handoff->ip_counted)
        ip_counts_release(a->env.ip_counts, &p->handoff->client_addr);
    free(p->handoff);
    p->handoff = NULL;
    p->phase = PHASE_GONE;
    p->fd = -1;
    list_push_tail(&a->gone, &p->link);
}

/* Frees the entries dropped during the batch just handled. */
static void bury(struct acceptor *a)
{
    struct list_node *n;
    while ((n = list_pop_head(&a->gone)))
        free(list_entry(n, struct pending, link));
}

/* Open connections per worker: handed over by us minus ended by it. */
static uint64_t worker_load(struct acceptor *a, unsigned i)
{
    uint64_t closed = atomic_load_explicit(&a->env.workers[i].closed, memory_order_relaxed);
    return a->handed[i] - closed;
}

static uint64_t open_connections(struct acceptor *a)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < a->env.nworkers; i++)
        n += worker_load(a, i);
    return n;
}

static unsigned least_loaded(struct acceptor *a)
{
    unsigned best = 0;
    for (unsigned i = 1; i < a->env.nworkers; i++)
        if (worker_load(a, i) < worker_load(a, best))
            best = i;
    return best;
}

static void hand_over(struct acceptor *a, struct pending *p)
{
    struct conn_handoff *h = p->handoff;
    p->handoff = NULL;
    /* Let go of the socket before publishing it: once the worker has it, it
     * may close it and the number may be reused at once. */
    int fd = p->fd;
    unsigned wi = p->worker;
    drop(a, p, false);
    a->handed[wi]++;
    if (fanout_hand_over(a->env.fanout, wi, h) < 0) {
        a->handed[wi]--;
        close(fd);
        if (h->ip_counted)
            ip_counts_release(a->env.ip_counts, &h->client_addr);
        free(h);
        return;
    }
    bump(&a->env.counters->connections_total);
}

/* Writes what is left of p's answer; finishes the client when done. */
static void write_out(struct acceptor *a, struct pending *p)
{
    while (p->out_off < p->out_len) {
        ssize_t n = send(p->fd, p->out + p->out_off, p->out_len - p->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                loop_mod(&a->loop, p->fd, &p->io, EPOLLOUT);
                return;
            }
            if (errno == EINTR)
                continue;
            drop(a, p, true);
            return;
        }
        p->out_off += (size_t)n;
    }
    if (p->phase == PHASE_UPGRADE) {
        hand_over(a, p);
    } else {
        /* Half-close first so the answer is not cut off by a reset if the
         * client is still sending. */
        shutdown(p->fd, SHUT_WR);
        drop(a, p, true);
    }
}

static void answer(struct acceptor *a, struct pending *p, int status, const char *type,
                   const char *extra, const char *body, size_t body_len)
{
    size_t cap = body_len + 512 + (extra ? strlen(extra) : 0);
    p->out = malloc(cap);
    if (!p->out) {
        drop(a, p, true);
        return;
    }
    p->out_len = http_resp_format(p->out, cap, status, type, extra, body, body_len);
    /* HEAD: the same head (Content-Length included), no body. */
    if (p->head_only && p->out_len >= body_len)
        p->out_len -= body_len;
    p->out_off = 0;
    p->phase = PHASE_ANSWER;
    if (status >= 400 && status < 500)
        bump(&a->env.counters->bad_requests);
    write_out(a, p);
}

static void answer_text(struct acceptor *a, struct pending *p, int status, const char *extra,
                        const char *text)
{
    if (status >= 400) {
        /* Who was refused and why; never the request itself, whose target
         * or headers may carry a token. */
        char who[64];
        ipaddr_format(&p->peer, who, sizeof(who));
        log_debug("acceptor: %d for %s: %s", status, who, text);
    }
    char body[256];
    int n = snprintf(body, sizeof(body), "%s\n", text);
    answer(a, p, status, "text/plain; charset=utf-8", extra, body, (size_t)n);
}

static void answer_heap(struct acceptor *a, struct pending *p, const char *type, char *body)
{
    if (!body) {
        answer_text(a, p, 500, NULL, "out of memory");
        return;
    }
    answer(a, p, 200, type, NULL, body, strlen(body));
    free(body);
}

/* Refuses an upgrade with 503, counted under its reason. */
static void refuse_503(struct acceptor *a, struct pending *p, atomic_uint_fast64_t *reason,
                       const char *retry_after, const char *why)
{
    bump(&a->env.counters->rejected);
    bump(reason);
    answer_text(a, p, 503, retry_after, why);
}

static void upgrade(struct acceptor *a, struct pending *p, const struct http_req *req,
                    const struct ws_hs_result *res, size_t head_len)
{
    const struct config *cfg = a->env.cfg;
    struct acceptor_counters *ac = a->env.counters;
    if (atomic_load(a->env.shutting_down)) {
        refuse_503(a, p, &ac->rejected_shutdown, "Retry-After: 1\r\n", "server is shutting down");
        return;
    }
    if (open_connections(a) >= cfg->max_connections) {
        refuse_503(a, p, &ac->rejected_max, "Retry-After: 1\r\n", "server is at MAX_CONNECTIONS");
        return;
    }
    const struct http_str *xff = http_req_header(req, "X-Forwarded-For");
    struct ipaddr addr = ipaddr_client(&p->peer, xff ? xff->p : NULL, xff ? xff->len : 0,
                                       cfg->trusted, cfg->n_trusted);
    struct ipaddr client = ipaddr_quota_key(&addr, cfg->per_ip_v6_prefix);
    bool counted = cfg->max_connections_per_ip > 0;
    if (counted && !ip_counts_take(a->env.ip_counts, &client, cfg->max_connections_per_ip)) {
        refuse_503(a, p, &ac->rejected_per_ip, "Retry-After: 5\r\n",
                   "too many connections from this address (MAX_CONNECTIONS_PER_IP)");
        return;
    }
    size_t extra = p->len - head_len;
    struct conn_handoff *h = calloc(1, sizeof(*h) + extra);
    p->out = malloc(UPGRADE_ANSWER_MAX);
    if (!h || !p->out) {
        if (counted)
            ip_counts_release(a->env.ip_counts, &client);
        free(h);
        drop(a, p, true);
        return;
    }
    h->client_addr = client;
    h->ip_counted = counted;
    h->kind = res->route == WS_HS_ECHO ? CONN_ECHO : CONN_CHAT;
    h->has_room = res->has_room;
    h->read_only = res->read_only;
    h->token_exp = res->token_exp;
    memcpy(h->room, res->room, sizeof(h->room));
    if (res->client_id[0])
        memcpy(h->client_id, res->client_id, sizeof(h->client_id));
    else
        snprintf(h->client_id, sizeof(h->client_id), "%016llx", (unsigned long long)rng_next(&a->rng));
    h->extra_len = extra;
    memcpy(h->extra, p->buf + head_len, extra);
    h->fd = p->fd;
    p->handoff = h;
    p->worker = least_loaded(a);
    h->pmd = res->pmd;
    if (res->pmd.on)
        bump(&ac->deflate_agreed);
    if (res->pmd_declined)
        atomic_fetch_add_explicit(&ac->deflate_declined, res->pmd_declined, memory_order_relaxed);
    p->out_len = ws_hs_write_101(p->out, UPGRADE_ANSWER_MAX, res);
    p->out_off = 0;
    p->phase = PHASE_UPGRADE;
    write_out(a, p);
}

/* The largest rooms for stats, built at most every ROOMS_SNAPSHOT_MS: a
 * poller cannot make the acceptor walk every room, nor hold the registry
 * lock that joins take, more than about once a second. Counters stay live. */
static const struct registry_top *rooms_snapshot(struct acceptor *a)
{
    if (!a->rooms_built || a->loop.now - a->rooms_built_ms >= ROOMS_SNAPSHOT_MS) {
        registry_top(a->env.rooms, &a->rooms);
        a->rooms_built = true;
        a->rooms_built_ms = a->loop.now;
    }
    return &a->rooms;
}

static void route(struct acceptor *a, struct pending *p, const struct http_req *req,
                  size_t head_len)
{
    const struct config *cfg = a->env.cfg;
    struct ws_hs_policy pol = {
        .echo_enabled = cfg->echo_endpoint,
        .auth_enabled = cfg->auth_enabled,
        .require_rooms = cfg->auth_require_rooms,
        .keys = {.algs = cfg->jwt_algs,
                 .secret = (const uint8_t *)cfg->jwt_secret,
                 .secret_len = cfg->jwt_secret_len},
        .origins = cfg->allowed_origins,
        .n_origins = cfg->n_allowed_origins,
        .now_s = clock_wall_ms() / 1000,
        .compression = cfg->compression,
    };
    struct ws_hs_result res;
    /* The key set may be swapped by a SIGHUP: held while tokens are checked. */
    pthread_mutex_lock(a->env.keys_lock);
    pol.keys.set = *a->env.keys;
    ws_hs_check(req, &pol, &res);
    pthread_mutex_unlock(a->env.keys_lock);
    p->head_only = res.head_only;
    if (res.status) {
        answer_text(a, p, res.status, res.extra_headers, res.reason);
        return;
    }
    struct stats_view v;
    switch (res.route) {
    case WS_HS_CHAT:
    case WS_HS_ECHO: upgrade(a, p, req, &res, head_len); return;
    case WS_HS_STATS:
        a->env.stats_view(a->env.stats_arg, &v);
        v.rooms_top = rooms_snapshot(a);
        v.room_names = res.room_names;
        answer_heap(a, p, "application/json", stats_json(&v));
        return;
    case WS_HS_METRICS:
        a->env.stats_view(a->env.stats_arg, &v);
        answer_heap(a, p, "text/plain; version=0.0.4; charset=utf-8", stats_metrics(&v));
        return;
    case WS_HS_HEALTHZ: answer_text(a, p, 200, NULL, "ok"); return;
    case WS_HS_READYZ: {
        struct broker_status bs = {0};
        a->env.broker->status(a->env.broker, &bs);
        if (atomic_load(a->env.shutting_down))
            answer_text(a, p, 503, NULL, "not ready: shutting down");
        else if (!bs.connected)
            answer_text(a, p, 503, NULL, "not ready: broker disconnected");
        else
            answer_text(a, p, 200, NULL, "ready");
        return;
    }
    case WS_HS_INDEX:
        answer(a, p, 200, "text/html; charset=utf-8", NULL, web_index_html,
               (size_t)web_index_html_len);
        return;
    case WS_HS_NONE: break;
    }
    answer_text(a, p, 404, NULL, "no such path");
}

static void on_readable(struct acceptor *a, struct pending *p)
{
    if (p->len == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : FIRST_BUF;
        if (cap > HTTP_REQ_MAX_HEAD)
            cap = HTTP_REQ_MAX_HEAD;
        char *b = p->cap < cap ? realloc(p->buf, cap) : NULL;
        if (!b) {
            bump(&a->env.counters->bad_requests);
            drop(a, p, true);
            return;
        }
        p->buf = b;
        p->cap = cap;
    }
    ssize_t n = recv(p->fd, p->buf + p->len, p->cap - p->len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        drop(a, p, true);
        return;
    }
    if (n < 0)
        return;
    p->len += (size_t)n;
    struct http_req req;
    int rc = http_req_parse(p->buf, p->len, &p->scanned, &req);
    if (rc == HTTP_REQ_NEED_MORE)
        return;
    bump(&a->env.counters->http_requests);
    if (rc == HTTP_REQ_BAD)
        answer_text(a, p, 400, NULL, "malformed HTTP request");
    else if (rc == HTTP_REQ_TOO_LARGE)
        answer_text(a, p, 431, NULL, "request head over 8 KiB or over 64 header lines");
    else
        route(a, p, &req, (size_t)rc);
}

/* A pending client's socket is readable or writable (its loop handler). */
static void on_pending_io(struct loop *l, struct loop_handler *h, uint32_t events)
{
    struct acceptor *a = container_of(l, struct acceptor, loop);
    struct pending *p = container_of(h, struct pending, io);
    (void)events;
    /* Dropped earlier in this batch (evicted by accept_all, say): its
     * memory is kept until bury(), and its event is stale. */
    if (p->phase == PHASE_GONE)
        return;
    if (p->phase == PHASE_READING)
        on_readable(a, p);
    else
        write_out(a, p);
}

/* Starts or stops taking clients from the listen backlog. */
static void set_listening(struct acceptor *a, bool on)
{
    if (a->listening == on)
        return;
    if (loop_mod(&a->loop, a->lfd, &a->listen_io, on ? EPOLLIN : 0) < 0) {
        log_error("acceptor: epoll_ctl on the listening socket: %s", strerror(errno));
        abort();
    }
    a->listening = on;
    if (!on)
        bump(&a->env.counters->accept_pauses);
}

/* The oldest pending client, or NULL. */
static struct pending *oldest_pending(struct acceptor *a)
{
    return a->pending.head ? list_entry(a->pending.head, struct pending, link) : NULL;
}

/* The oldest client still sending its head, or NULL. */
static struct pending *oldest_reading(struct acceptor *a)
{
    for (struct list_node *n = a->pending.head; n; n = n->next) {
        struct pending *p = list_entry(n, struct pending, link);
        if (p->phase == PHASE_READING)
            return p;
    }
    return NULL;
}

/* When p will have had its chance to send its head. */
static uint64_t grace_end(const struct pending *p)
{
    return p->deadline_ms - HEAD_DEADLINE_MS + HEAD_GRACE_MS;
}

/* Makes room by dropping the oldest client that has had its chance: past
 * its grace, and read once more first, so a head that did arrive is
 * answered instead. Returns whether a slot (and its descriptor) is free. */
static bool evict_stale(struct acceptor *a)
{
    for (;;) {
        struct pending *p = oldest_reading(a);
        if (!p || grace_end(p) > a->loop.now)
            return false;
        unsigned before = a->npending;
        on_readable(a, p);
        if (a->npending < before)
            return true; /* it went by itself: closed, or handed over */
        if (p->phase == PHASE_READING) {
            bump(&a->env.counters->heads_evicted);
            drop(a, p, true);
            return true;
        }
        /* It is being answered now; look at the next one. */
    }
}

/* When p was accepted. */
static uint64_t accepted_at(const struct pending *p)
{
    return p->deadline_ms - HEAD_DEADLINE_MS;
}

/* Whether p has been without a whole head for HEAD_EARLY_MS. */
static bool early_evictable(const struct acceptor *a, const struct pending *p)
{
    return p->phase == PHASE_READING && accepted_at(p) + HEAD_EARLY_MS <= a->loop.now;
}

/* The address with the most clients that are early_evictable (of two as
 * heavy, the one whose oldest came first); false when there is none. */
static bool heaviest_address(struct acceptor *a, struct ipaddr *out)
{
    unsigned gen = ++a->tally_gen, mask = 2 * PENDING_MAX - 1;
    struct addr_tally *best = NULL;
    for (struct list_node *n = a->pending.head; n; n = n->next) {
        struct pending *p = list_entry(n, struct pending, link);
        if (accepted_at(p) + HEAD_EARLY_MS > a->loop.now)
            break; /* arrival order: the rest are younger */
        if (p->phase != PHASE_READING)
            continue;
        unsigned h = hmap_hash(&p->peer, sizeof(p->peer)) & mask;
        while (a->tally[h].gen == gen && memcmp(&a->tally[h].addr, &p->peer, sizeof(p->peer)))
            h = (h + 1) & mask;
        struct addr_tally *t = &a->tally[h];
        if (t->gen != gen)
            *t = (struct addr_tally){.addr = p->peer, .n = 0, .gen = gen};
        t->n++;
        if (!best || t->n > best->n)
            best = t;
    }
    if (best)
        *out = best->addr;
    return best != NULL;
}

/* Clients evicted early per count of the addresses: the count walks every
 * pending client, so a flood pays for it once per EVICT_BATCH slots. */
#define EVICT_BATCH 16

/* Makes room before the grace: drops up to EVICT_BATCH of the heaviest
 * address's oldest clients that have been without a head for
 * HEAD_EARLY_MS, each read once more first. Returns whether a slot is
 * free. */
static bool evict_heaviest(struct acceptor *a)
{
    struct ipaddr addr;
    if (!heaviest_address(a, &addr))
        return false;
    unsigned before = a->npending, evicted = 0;
    struct list_node *n = a->pending.head;
    while (n && evicted < EVICT_BATCH) {
        struct pending *p = list_entry(n, struct pending, link);
        n = n->next; /* p may leave the list */
        if (!early_evictable(a, p)) {
            if (accepted_at(p) + HEAD_EARLY_MS > a->loop.now)
                break;
            continue;
        }
        if (memcmp(&p->peer, &addr, sizeof(addr)) != 0)
            continue;
        on_readable(a, p);
        if (p->phase == PHASE_READING) {
            bump(&a->env.counters->heads_evicted);
            drop(a, p, true);
        }
        evicted++;
    }
    return a->npending < before;
}

static void accept_all(struct acceptor *a)
{
    while (a->listening) {
        if (a->npending >= PENDING_MAX && !evict_stale(a) && !evict_heaviest(a)) {
            set_listening(a, false); /* the rest wait in the backlog */
            return;
        }
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd = accept4(a->lfd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EMFILE && errno != ENFILE)
                return; /* EAGAIN, or nothing we can do here */
            if (evict_stale(a) || evict_heaviest(a))
                continue; /* a descriptor is free again: take the new client */
            if (a->loop.now - a->last_emfile_log > 10000) {
                log_warn("accept: out of file descriptors; new clients wait in the listen "
                         "backlog (raise the descriptor limit or lower MAX_CONNECTIONS)");
                a->last_emfile_log = a->loop.now;
            }
            a->no_fd_until = a->loop.now + NO_FD_PAUSE_MS;
            set_listening(a, false);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct pending *p = calloc(1, sizeof(*p));
        if (p)
            p->io.fn = on_pending_io;
        if (!p || loop_add(&a->loop, fd, &p->io, EPOLLIN) < 0) {
            free(p);
            close(fd);
            continue;
        }
        p->fd = fd;
        if (!ipaddr_from_sockaddr((struct sockaddr *)&peer, &p->peer))
            memset(&p->peer, 0, sizeof(p->peer));
        p->deadline_ms = a->loop.now + HEAD_DEADLINE_MS;
        set_pending(a, a->npending + 1);
        list_push_tail(&a->pending, &p->link);
        /* Most clients send their head right behind the TCP handshake: read
         * it now rather than one epoll round later. */
        on_readable(a, p);
    }
}

/* Takes clients again once there is a slot (or a head past its grace to
 * evict) and, after running out, descriptors may be free again. Returns how
 * long epoll may sleep before this needs another look (-1: no limit). */
static int resume_accepting(struct acceptor *a)
{
    if (a->listening)
        return -1;
    if (a->loop.now < a->no_fd_until)
        return (int)(a->no_fd_until - a->loop.now);
    if (a->npending < PENDING_MAX) {
        set_listening(a, true);
        return -1;
    }
    struct pending *p = oldest_reading(a);
    if (!p)
        return -1; /* every slot is being answered: a drop will free one */
    uint64_t early = accepted_at(p) + HEAD_EARLY_MS; /* before grace_end(p) */
    if (early <= a->loop.now) {
        set_listening(a, true);
        return -1;
    }
    return (int)(early - a->loop.now);
}

static void on_listen_io(struct loop *l, struct loop_handler *h, uint32_t events)
{
    (void)l;
    (void)events;
    accept_all(container_of(h, struct acceptor, listen_io));
}

static void on_wake_io(struct loop *l, struct loop_handler *h, uint32_t events)
{
    (void)l;
    (void)events;
    container_of(h, struct acceptor, wake_io)->stopping = true;
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    for (;;) {
        a->loop.now = clock_now_ms();
        int timeout = resume_accepting(a);
        struct pending *oldest = oldest_pending(a);
        if (oldest) {
            int due = oldest->deadline_ms > a->loop.now ? (int)(oldest->deadline_ms - a->loop.now) : 0;
            if (timeout < 0 || due < timeout)
                timeout = due;
        }
        if (timeout < 0 || timeout > 1000)
            timeout = 1000;
        if (loop_run_once(&a->loop, a->loop.now + (uint64_t)timeout) < 0) {
            log_error("acceptor: epoll_wait: %s", strerror(errno));
            abort();
        }
        if (a->stopping)
            return NULL;
        /* docs/protocol.md: a client that has not sent a whole head within 10 s
         * is disconnected; the same deadline bounds writing our answer. */
        struct pending *p;
        while ((p = oldest_pending(a)) && p->deadline_ms <= a->loop.now) {
            if (p->phase == PHASE_READING)
                bump(&a->env.counters->bad_requests);
            drop(a, p, true);
        }
        bury(a);
        /* A burst of clients (a storm, a deploy) leaves its heads' buffers
         * and handoffs free but held by the allocator: once nobody is
         * pending, they go back to the kernel, so RSS shows the connections
         * that stayed, not the peak of the burst. */
        if (a->npending == 0 && a->burst_peak >= TRIM_AFTER_BURST) {
            a->burst_peak = 0;
            give_back_memory();
        }
    }
}

struct acceptor *acceptor_create(const struct acceptor_env *env)
{
    struct acceptor *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->env = *env;
    const struct config *cfg = env->cfg;
    a->lfd = a->wake = a->loop.epfd = -1;
    a->listen_io.fn = on_listen_io;
    a->wake_io.fn = on_wake_io;
    a->handed = calloc(env->nworkers, sizeof(*a->handed));
    rng_seed(&a->rng, 0x2545f4914f6cdd1dull);

    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->bind_addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(cfg->port);
        sl = sizeof(*v4);
    } else {
        inet_pton(AF_INET6, cfg->bind_addr, &v6->sin6_addr);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(cfg->port);
        sl = sizeof(*v6);
    }
    a->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (!a->handed || a->lfd < 0 ||
        setsockopt(a->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(a->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(a->lfd, BACKLOG) < 0) {
        log_error("cannot listen on %s:%u: %s", cfg->bind_addr, cfg->port, strerror(errno));
        acceptor_destroy(a);
        return NULL;
    }
    int loop_rc = loop_init(&a->loop);
    a->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop_rc < 0 || a->wake < 0 || loop_add(&a->loop, a->lfd, &a->listen_io, EPOLLIN) < 0 ||
        loop_add(&a->loop, a->wake, &a->wake_io, EPOLLIN) < 0) {
        log_error("acceptor: %s", strerror(errno));
        acceptor_destroy(a);
        return NULL;
    }
    a->listening = true;
    return a;
}

int acceptor_start(struct acceptor *a)
{
    return thread_start(&a->thread, acceptor_main, a);
}

void acceptor_stop(struct acceptor *a)
{
    if (!a->thread.started)
        return;
    uint64_t one = 1;
    ssize_t w = write(a->wake, &one, sizeof(one));
    (void)w;
    thread_join(&a->thread);
}

void acceptor_destroy(struct acceptor *a)
{
    if (!a)
        return;
    struct pending *p;
    while ((p = oldest_pending(a)))
        drop(a, p, true);
    bury(a);
    if (a->lfd >= 0)
        close(a->lfd);
    loop_free(&a->loop);
    if (a->wake >= 0)
        close(a->wake);
    free(a->handed);
    free(a);
}
