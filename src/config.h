/* config.h: the server's configuration, read from environment variables.
 *
 * config_load takes a lookup function instead of calling getenv, and the
 * machine-dependent defaults as arguments, so tests drive it with tables. A
 * value that does not parse is an error naming the variable: the server never
 * starts on a half-understood configuration. Empty counts as unset.
 *
 * Threads: the main thread loads and frees it, before the server's threads
 * start and after they end; they only read it. */
#ifndef CHAT_CONFIG_H
#define CHAT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ipaddr.h"
#include "redis/url.h"

/* The acceptor reads or answers at most this many clients at once; beyond
 * it newcomers wait in the listen backlog (acceptor.c says when one is
 * evicted). MAX_CONNECTIONS' default leaves this many descriptors for them,
 * which is why the number lives here, below both. */
#define ACCEPTOR_PENDING_MAX 1024

/* TRUSTED_PROXIES holds at most this many networks. */
#define CONFIG_TRUSTED_MAX 64

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Owned by the main thread; read-only once the server's threads start. */
struct config {
    uint16_t port;
    char bind_addr[64];
    bool redis_enabled; /* REDIS_URL set and not empty */
    struct redis_url redis;
    char pod_id[64];
    unsigned workers;
    bool auth_enabled;
    char *jwt_secret; /* heap; NULL when unset (JWT_SECRET or JWT_SECRET_FILE) */
    size_t jwt_secret_len;
    bool auth_require_rooms;
    int jwt_algs;         /* JWT_ALGORITHMS: enum ws_alg bits (ws/keys.h) */
    char *jwt_keys_file;  /* JWT_PUBLIC_KEYS_FILE, heap; NULL when unset */
    char **allowed_origins; /* heap array of heap strings */
    size_t n_allowed_origins;
    uint32_t ping_interval_ms;
    uint32_t pong_timeout_ms;
    size_t max_message;
    uint32_t send_buffer;
    uint32_t shutdown_timeout_ms;
    uint32_t max_connections;
    uint32_t max_connections_per_ip; /* 0: no limit */
    uint8_t per_ip_v6_prefix;        /* IPv6 clients are counted per this prefix */
    struct ipnet *trusted;           /* TRUSTED_PROXIES, heap; n_trusted entries */
    int n_trusted;
    enum log_level log_level;
    bool echo_endpoint;
    uint32_t redis_outbox;
    uint64_t redis_outbox_bytes;
    bool redis_cluster;      /* REDIS_CLUSTER: rooms use SPUBLISH/SSUBSCRIBE per shard */
    uint32_t room_linger_ms; /* a room left empty stays subscribed this long (Redis mode) */
    char redis_sentinel[128]; /* REDIS_SENTINEL: the master's name; empty: no Sentinel */
    char redis_tls_ca[512];   /* REDIS_TLS_CA_FILE; empty: the system's CAs */
    char redis_tls_cert[512]; /* REDIS_TLS_CERT_FILE; empty: no client certificate */
    char redis_tls_key[512];  /* REDIS_TLS_KEY_FILE */
    bool redis_tls_verify;    /* REDIS_TLS_VERIFY (default true) */
    bool io_uring;            /* IO_URING: try io_uring for the workers' sends (auto) or not (off) */
    bool compression;         /* COMPRESSION: negotiate permessage-deflate (auto) or not (off) */
    uint32_t compression_streams; /* COMPRESSION_STREAMS: deflate contexts per worker, at most */
};

/* What the machine says, for the defaults that depend on it. */
struct config_defaults {
    const char *hostname; /* POD_ID defaults to hostname-<6 hex digits> */
    uint32_t random;
    unsigned cpus;   /* WORKERS */
    uint64_t nofile; /* RLIMIT_NOFILE, for MAX_CONNECTIONS */
    /* Reads a whole file for *_FILE variables: returns its length (bytes in
     * buf, at most cap), or -errno. NULL: such variables are refused. */
    long (*read_file)(const char *path, char *buf, size_t cap);
};

/* Returns the value of an environment variable or NULL. */
typedef const char *config_lookup_fn(void *ctx, const char *name);

/* Fills c. Returns 0, or -1 with err (errlen bytes) naming the variable and
 * saying what is wrong; c is then freed already. */
int config_load(struct config *c, config_lookup_fn *lookup, void *ctx,
                const struct config_defaults *d, char *err, size_t errlen);

/* Frees what config_load allocated. */
void config_free(struct config *c);

/* Parses a duration: a whole number with ms, s or m, or bare seconds. Returns
 * 0 with milliseconds in *ms, or -1. */
int config_parse_duration(const char *s, uint32_t *ms);

const char *config_log_level_name(enum log_level l);

/* Writes the variables as a Markdown table (variable, default, values,
 * meaning), from the same table config_load reads them by. */
void config_print_table(FILE *out);

#endif
