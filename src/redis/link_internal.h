/* link_internal.h: the fields of a Redis link (link.h), for link.c and
 * the two modules that own links: the slot map's probe (route.c) and the
 * node set (nodes.c). Nobody else reads them: the publisher and the
 * subscriber go through nodes.h. */
#ifndef CHAT_REDIS_LINK_INTERNAL_H
#define CHAT_REDIS_LINK_INTERNAL_H

#include <hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "redis/backoff.h"
#include "redis/resolve.h"

struct ssl_ctx_st;
struct ssl_st;


enum redis_link_phase {
    REDIS_LINK_DOWN,       /* no socket; may be opened at retry_at_ms */
    REDIS_LINK_RESOLVING,  /* the host name is being looked up */
    REDIS_LINK_CONNECTING, /* TCP connect under way */
    REDIS_LINK_TLS,        /* TLS handshake under way */
    REDIS_LINK_HELLO,      /* AUTH/SELECT/PING sent, answers awaited */
    REDIS_LINK_READY,
};

/* What every link of a broker shares: read-only after start. */
struct redis_link_env {
    const char *user, *password; /* empty: no AUTH */
    int db;                      /* SELECT when not 0 */
    struct ssl_ctx_st *tls;      /* NULL: plain TCP */
    struct loop *loop;           /* the owner thread's loop */
    size_t reply_max;            /* the longest reply taken, in bytes (0: no bound) */
};

struct redis_link {
    struct loop_handler io; /* its socket's (and its lookup's) handler: the owner's */
    char host[256];
    uint16_t port;
    const struct redis_link_env *env;
    enum redis_link_phase phase;
    int fd;
    struct ssl_st *ssl;
    redisReader *reader;
    char *out; /* bytes to write: out[out_off..out_len) */
    size_t out_len, out_off, out_cap;
    uint32_t events;       /* what epoll watches now */
    unsigned hello_left;   /* hello answers still awaited */
    uint64_t deadline_ms;  /* while not ready: give up then */
    uint64_t last_read_ms; /* when bytes last came */
    uint64_t retry_at_ms;  /* while down: not opened again before this */
    uint64_t sick_until_ms;
    bool ever_ready;
    bool refused;          /* the last hello was answered with an error (AUTH, SELECT) */
    bool more;             /* the last read may have left more to read */
    struct redis_addrs addrs;     /* what host is, in order, this round */
    unsigned addr_good;           /* the address that answered last */
    unsigned addr_cur, addr_tries; /* the one being tried; how many this round */
    struct redis_lookup *lookup;  /* a lookup under way, or NULL */
    size_t reply_bytes;           /* read since the last whole reply (at least) */
    uint64_t reply_since_ms;      /* a reply is unfinished since then (0: none) */
    bool lookup_watched;          /* its eventfd is in the owner's epoll */
    struct redis_backoff bo;
    char err[300]; /* why it last failed */
};

#endif
