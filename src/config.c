/* config.c: every variable of docs/configuration.md, strictly parsed.
 *
 * The variables are one table (settings[] below): each entry names the
 * variable, its kind, the field it fills, its default, its range and its help.
 * Loading walks the table, then checks what one variable says about another
 * (relations()); `chat-api --settings` prints the same table as Markdown, and
 * docs/configuration.md is checked against that output. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ws/keys.h"

/* Sockets a process keeps beside its clients (listener, epoll, eventfds,
 * Redis, logs) are left out of the MAX_CONNECTIONS default. */
#define FD_RESERVE 64
/* Descriptors MAX_CONNECTIONS leaves free by default. */
#define FD_HEADROOM (FD_RESERVE + ACCEPTOR_PENDING_MAX)

static int fail(char *err, size_t errlen, const char *var, const char *why)
{
    snprintf(err, errlen, "%s: %s", var, why);
    return -1;
}

/* A custom parser's refusal: why (n bytes) says what is wrong. */
static int say(char *why, size_t n, const char *what)
{
    snprintf(why, n, "%s", what);
    return -1;
}

static const char *get(config_lookup_fn *lookup, void *ctx, const char *name)
{
    const char *v = lookup(ctx, name);
    return v && *v ? v : NULL;
}

/* A whole decimal number from lo to hi; no sign, no spaces. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!*s || strlen(s) > 19)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int config_parse_duration(const char *s, uint32_t *ms)
{
    size_t n = strlen(s), digits = 0;
    while (digits < n && s[digits] >= '0' && s[digits] <= '9')
        digits++;
    if (digits == 0 || digits > 9)
        return -1;
    char num[16];
    memcpy(num, s, digits);
    num[digits] = '\0';
    uint64_t v;
    if (parse_u64(num, 0, 999999999, &v) < 0)
        return -1;
    const char *unit = s + digits;
    uint64_t mult;
    if (*unit == '\0' || strcmp(unit, "s") == 0)
        mult = 1000;
    else if (strcmp(unit, "ms") == 0)
        mult = 1;
    else if (strcmp(unit, "m") == 0)
        mult = 60000;
    else
        return -1;
    if (v * mult > UINT32_MAX)
        return -1;
    *ms = (uint32_t)(v * mult);
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")) {
        *out = false;
        return 0;
    }
    return -1;
}

const char *config_log_level_name(enum log_level l)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return names[l];
}

static bool pod_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static void default_pod_id(struct config *c, const struct config_defaults *d)
{
    char host[48];
    size_t n = 0;
    for (const char *h = d->hostname ? d->hostname : ""; *h && n < sizeof(host) - 1; h++) {
        char ch = *h;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
        host[n++] = ok ? ch : '-';
    }
    host[n] = '\0';
    snprintf(c->pod_id, sizeof(c->pod_id), "%s-%06x", n ? host : "chat-api",
             (unsigned)(d->random & 0xffffff));
}

static int parse_origins(struct config *c, const char *s, char *why, size_t n)
{
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0)
            return say(why, n, "has an empty entry between commas");
        char **grown = realloc(c->allowed_origins, (c->n_allowed_origins + 1) * sizeof(char *));
        if (!grown)
            return say(why, n, "out of memory");
        c->allowed_origins = grown;
        c->allowed_origins[c->n_allowed_origins++] = strndup(p, len);
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* ---- Variables that are more than a number, a duration or a boolean. Each
 * gets the value (never empty) and fills c, or says why not. */
typedef int text_fn(struct config *c, const char *v, const struct config_defaults *d, char *why,
                    size_t n);

static int bind_addr(struct config *c, const char *v, const struct config_defaults *d, char *why,
                     size_t n)
{
    (void)d;
    unsigned char addr[16];
    if (strlen(v) >= sizeof(c->bind_addr) ||
        (inet_pton(AF_INET, v, addr) != 1 && inet_pton(AF_INET6, v, addr) != 1))
        return say(why, n, "must be an IPv4 or IPv6 address");
    snprintf(c->bind_addr, sizeof(c->bind_addr), "%s", v);
    return 0;
}

static int redis_url(struct config *c, const char *v, const struct config_defaults *d, char *why,
                     size_t n)
{
    (void)d;
    if (redis_url_parse(v, &c->redis, why, n) < 0)
        return -1;
    c->redis_enabled = true;
    return 0;
}

static int pod_id(struct config *c, const char *v, const struct config_defaults *d, char *why,
                  size_t n)
{
    (void)d;
    if (!pod_id_valid(v))
        return say(why, n, "must be 1 to 63 of A-Z a-z 0-9 - _ . :");
    snprintf(c->pod_id, sizeof(c->pod_id), "%s", v);
    return 0;
}

static int jwt_secret(struct config *c, const char *v, const struct config_defaults *d, char *why,
                      size_t n)
{
    (void)d;
    if (!(c->jwt_secret = strdup(v)))
        return say(why, n, "out of memory");
    c->jwt_secret_len = strlen(v);
    return 0;
}

/* JWT_SECRET_FILE: the secret is the file's content, less one trailing line
 * end (files written by echo or an editor). Docker and Kubernetes mount
 * secrets as files. Errors never show the content. */
static int jwt_secret_file(struct config *c, const char *path, const struct config_defaults *d,
                           char *why, size_t wn)
{
    if (c->jwt_secret)
        return say(why, wn, "and JWT_SECRET are both set; set one");
    char buf[4097];
    long n = d->read_file ? d->read_file(path, buf, sizeof(buf)) : -ENOENT;
    if (n < 0) {
        snprintf(why, wn, "cannot read %s: %s", path, strerror((int)-n));
        return -1;
    }
    if ((size_t)n == sizeof(buf))
        return say(why, wn, "is over 4096 bytes");
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0)
        return say(why, wn, "is empty");
    c->jwt_secret = malloc((size_t)n + 1);
    if (!c->jwt_secret)
        return say(why, wn, "out of memory");
    memcpy(c->jwt_secret, buf, (size_t)n);
    c->jwt_secret[n] = '\0';
    c->jwt_secret_len = (size_t)n;
    return 0;
}

static int jwt_algorithms(struct config *c, const char *v, const struct config_defaults *d,
                          char *why, size_t n)
{
    (void)d;
    if ((c->jwt_algs = ws_alg_parse_list(v)) < 0)
        return say(why, n, "must be a comma-separated list of HS256, RS256, ES256");
    return 0;
}

static int jwt_keys_file(struct config *c, const char *v, const struct config_defaults *d,
                         char *why, size_t n)
{
    (void)d;
    if (!(c->jwt_keys_file = strdup(v)))
        return say(why, n, "out of memory");
    return 0;
}

static int allowed_origins(struct config *c, const char *v, const struct config_defaults *d,
                           char *why, size_t n)
{
    (void)d;
    return parse_origins(c, v, why, n);
}

static int trusted_proxies(struct config *c, const char *v, const struct config_defaults *d,
                           char *why, size_t n)
{
    (void)d;
    if (!(c->trusted = calloc(CONFIG_TRUSTED_MAX, sizeof(*c->trusted))))
        return say(why, n, "out of memory");
    c->n_trusted = ipnet_parse_list(v, c->trusted, CONFIG_TRUSTED_MAX);
    if (c->n_trusted < 0)
        return say(why, n, "must be a comma-separated list of addresses or CIDR networks "
                           "(10.0.0.0/8, ::1), at most 64");
    return 0;
}

static int log_level(struct config *c, const char *v, const struct config_defaults *d, char *why,
                     size_t n)
{
    (void)d;
    for (int l = LOG_DEBUG; l <= LOG_ERROR; l++)
        if (!strcasecmp(v, config_log_level_name((enum log_level)l))) {
            c->log_level = (enum log_level)l;
            return 0;
        }
    return say(why, n, "must be debug, info, warn or error");
}

/* A setting that is `auto` (true) or `off`. */
static int auto_or_off(bool *field, const char *v, char *why, size_t n)
{
    if (strcasecmp(v, "auto") && strcasecmp(v, "off"))
        return say(why, n, "must be auto or off");
    *field = !strcasecmp(v, "auto");
    return 0;
}

static int io_uring(struct config *c, const char *v, const struct config_defaults *d, char *why,
                    size_t n)
{
    (void)d;
    return auto_or_off(&c->io_uring, v, why, n);
}

static int compression(struct config *c, const char *v, const struct config_defaults *d,
                       char *why, size_t n)
{
    (void)d;
    return auto_or_off(&c->compression, v, why, n);
}

static int redis_sentinel(struct config *c, const char *v, const struct config_defaults *d,
                          char *why, size_t n)
{
    (void)d;
    if (strlen(v) >= sizeof(c->redis_sentinel) || strpbrk(v, " \t\r\n"))
        return say(why, n, "must be a master name of at most 127 bytes without spaces");
    snprintf(c->redis_sentinel, sizeof(c->redis_sentinel), "%s", v);
    return 0;
}

/* A path kept for later (the broker reads the file when it starts). */
#define PATH_PARSER(fn, field)                                                                    \
    static int fn(struct config *c, const char *v, const struct config_defaults *d, char *why,     \
                  size_t n)                                                                       \
    {                                                                                             \
        (void)d;                                                                                  \
        if (strlen(v) >= sizeof(c->field))                                                        \
            return say(why, n, "is too long a path");                                             \
        snprintf(c->field, sizeof(c->field), "%s", v);                                            \
        return 0;                                                                                 \
    }
PATH_PARSER(redis_tls_ca, redis_tls_ca)
PATH_PARSER(redis_tls_cert, redis_tls_cert)
PATH_PARSER(redis_tls_key, redis_tls_key)

/* ---- The table. */
enum setting_kind {
    SET_NUMBER,   /* a whole number from lo to hi */
    SET_DURATION, /* milliseconds; lo is 0 when 0 is allowed, else 1 */
    SET_BOOL,     /* true/false, 1/0, yes/no */
    SET_TEXT,     /* parsed by its own function */
};

struct setting {
    const char *name;
    enum setting_kind kind;
    size_t offset, size; /* the struct config field a number, duration or boolean fills */
    uint64_t def, lo, hi;
    text_fn *parse;      /* SET_TEXT */
    const char *text;    /* SET_TEXT: the default, parsed as if it were set; NULL: none */
    const char *shown;   /* the default as the docs show it; NULL: from def */
    const char *values;  /* accepted values as the docs show them; NULL: from the kind */
    const char *help;
};

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define NUMBER(var, f, d, l, h, shown, help) \
    {var, SET_NUMBER, FIELD(f), d, l, h, NULL, NULL, shown, NULL, help}
#define DURATION(var, f, d, zero_ok, help) \
    {var, SET_DURATION, FIELD(f), d, (zero_ok) ? 0 : 1, UINT32_MAX, NULL, NULL, NULL, NULL, help}
#define BOOLEAN(var, f, d, help) {var, SET_BOOL, FIELD(f), d, 0, 1, NULL, NULL, NULL, NULL, help}
#define TEXT(var, fn, text, shown, values, help) \
    {var, SET_TEXT, 0, 0, 0, 0, 0, fn, text, shown, values, help}

/* In the order they are read: JWT_SECRET before JWT_SECRET_FILE, REDIS_URL
 * before what depends on it in relations(). */
static const struct setting settings[] = {
    NUMBER("PORT", port, 8080, 1, 65535, NULL, "TCP port to listen on"),
    TEXT("BIND_ADDR", bind_addr, "0.0.0.0", NULL, "an IPv4 or IPv6 address", "address to listen on"),
    TEXT("REDIS_URL", redis_url, NULL, "unset",
         "`redis://[[user]:password@]host[:port][/db]`, or `rediss://...` for TLS",
         "user and password may be %-encoded. Unset or empty: standalone mode. Several hosts, "
         "comma-separated, only with `REDIS_CLUSTER=true` (seed nodes) or `REDIS_SENTINEL` "
         "(sentinels)"),
    BOOLEAN("REDIS_CLUSTER", redis_cluster, 0,
            "`true`: `REDIS_URL` names seed nodes of a Redis Cluster (`redis://h1:7000,h2:7001`); "
            "rooms use `SPUBLISH`/`SSUBSCRIBE` (see [operations](operations.md#redis-cluster))"),
    TEXT("REDIS_SENTINEL", redis_sentinel, NULL, "unset", "a master name",
         "`REDIS_URL` then lists sentinels (`redis://s1:26379,s2:26379`), which the pod asks for "
         "the master; not with `REDIS_CLUSTER`"),
    TEXT("REDIS_TLS_CA_FILE", redis_tls_ca, NULL, "unset (the system's CAs)", "a path",
         "PEM CA certificate(s) that Redis' certificate must chain to; only with `rediss://`"),
    TEXT("REDIS_TLS_CERT_FILE", redis_tls_cert, NULL, "unset", "a path",
         "a client certificate (PEM), for Redis with `tls-auth-clients yes`; needs "
         "`REDIS_TLS_KEY_FILE`"),
    TEXT("REDIS_TLS_KEY_FILE", redis_tls_key, NULL, "unset", "a path",
         "the client certificate's key (PEM); needs `REDIS_TLS_CERT_FILE`"),
    BOOLEAN("REDIS_TLS_VERIFY", redis_tls_verify, 1,
            "`false`: Redis' certificate is not checked (self-signed development setups only; "
            "logged as a warning at start)"),
    NUMBER("REDIS_OUTBOX", redis_outbox, 10000, 1, 10000000, NULL,
           "messages kept for Redis while it is down (and, per node, messages parked for a node "
           "that is down)"),
    NUMBER("REDIS_OUTBOX_BYTES", redis_outbox_bytes, 64u << 20, 1u << 16, 1ull << 40, NULL,
           "bytes of messages the publisher keeps for Redis nodes that are down, all nodes "
           "together; past it the oldest messages of the node with the most waiting are dropped "
           "(counted in `broker.outbox_dropped`)"),
    DURATION("ROOM_LINGER", room_linger_ms, 10000, true,
             "how long a pod stays subscribed to a room after its last member there left (Redis "
             "mode); `0`: let go at the next pass (within half a second)"),
    TEXT("POD_ID", pod_id, NULL, "hostname + `-` + 6 random hex digits",
         "1-63 of `A-Z a-z 0-9 - _ . :`", "used for echo suppression and shown in stats"),
    NUMBER("WORKERS", workers, 0, 1, 256, "online CPUs", "epoll worker threads"),
    BOOLEAN("AUTH_ENABLED", auth_enabled, 0,
            "`true`: every upgrade needs a valid token (see [Auth](#auth))"),
    TEXT("JWT_ALGORITHMS", jwt_algorithms, "HS256", NULL, "`HS256`, `RS256`, `ES256`, comma-separated",
         "the token algorithms accepted"),
    TEXT("JWT_SECRET", jwt_secret, NULL, "unset", "text",
         "HS256 secret; required when `AUTH_ENABLED=true` and `JWT_ALGORITHMS` has `HS256`"),
    TEXT("JWT_SECRET_FILE", jwt_secret_file, NULL, "unset", "a path",
         "the HS256 secret read from a file instead (Docker and Kubernetes secrets); one trailing "
         "line end is dropped; set it or `JWT_SECRET`, not both"),
    TEXT("JWT_PUBLIC_KEYS_FILE", jwt_keys_file, NULL, "unset", "a path",
         "PEM public key(s) or a JWKS document for `RS256`/`ES256`; required when those are "
         "accepted; read again on SIGHUP"),
    BOOLEAN("AUTH_REQUIRE_ROOMS", auth_require_rooms, 0,
            "`true`: a token without a `rooms` claim enters no room"),
    TEXT("ALLOWED_ORIGINS", allowed_origins, NULL, "unset (any)", "`Origin` values, comma-separated",
         "exact (`https://chat.example.com`), or any subdomain (`*.example.com`, "
         "`https://*.example.com`, `http://*.dev.test:8080`)"),
    DURATION("PING_INTERVAL", ping_interval_ms, 54000, false,
             "a connection silent this long is pinged, and again every `PING_INTERVAL` while it "
             "stays silent"),
    DURATION("PONG_TIMEOUT", pong_timeout_ms, 60000, false,
             "silence after which a connection is closed; must be longer than `PING_INTERVAL`"),
    DURATION("SHUTDOWN_TIMEOUT", shutdown_timeout_ms, 10000, true,
             "how long a graceful shutdown waits"),
    NUMBER("MAX_MESSAGE_SIZE", max_message, 65536, 1, 64u << 20, NULL,
           "largest message after reassembly, bytes"),
    NUMBER("SEND_BUFFER", send_buffer, 256, 1, 65536, NULL,
           "outgoing messages queued per connection"),
    NUMBER("MAX_CONNECTIONS", max_connections, 0, 1, UINT32_MAX, "`RLIMIT_NOFILE` - 1088",
           "above it, upgrades get 503. At start the server raises its soft descriptor limit to "
           "the hard one, and this default follows, keeping 64 descriptors for the process and "
           "1024 for clients still sending their request head, so one past the limit can always "
           "be answered 503"),
    NUMBER("MAX_CONNECTIONS_PER_IP", max_connections_per_ip, 0, 0, UINT32_MAX, "`0` (off)",
           "above it, upgrades from one client address get 503 with `Retry-After: 5`"),
    TEXT("TRUSTED_PROXIES", trusted_proxies, NULL, "unset",
         "addresses or CIDR networks, comma-separated, at most 64",
         "proxies (`10.0.0.0/8, ::1`) whose `X-Forwarded-For` is believed for the client address"),
    NUMBER("PER_IP_IPV6_PREFIX", per_ip_v6_prefix, 64, 1, 128, NULL,
           "IPv6 clients are counted per this prefix for `MAX_CONNECTIONS_PER_IP` (`128`: per "
           "address)"),
    TEXT("LOG_LEVEL", log_level, "info", NULL, "`debug`, `info`, `warn`, `error`",
         "the least severe line written to stderr"),
    BOOLEAN("ECHO_ENDPOINT", echo_endpoint, 0,
            "`true`: serve `/api/chat-api/echo` for conformance suites"),
    TEXT("IO_URING", io_uring, "auto", NULL, "`auto`, `off`",
         "`auto`: each worker writes its connections through an io_uring, all of a loop "
         "pass's sends in one system call, and falls back to `writev` where the kernel or a "
         "container's seccomp profile refuses io_uring (the log says which path runs); `off`: "
         "always `writev`"),
    TEXT("COMPRESSION", compression, "auto", NULL, "`auto`, `off`",
         "`auto`: accept a client's `permessage-deflate` offer (RFC 7692) when its parameters "
         "can be honoured, asking for `client_no_context_takeover`; `off`: never negotiate"),
    NUMBER("COMPRESSION_STREAMS", compression_streams, 512, 0, 1000000, NULL,
           "room streams (a deflate context each, up to about 146 KB while its room is busy) one "
           "worker may keep; past it a room's messages go out compressed alone, or plain (see "
           "docs/operations.md)"),
};

static void store(struct config *c, const struct setting *s, uint64_t v)
{
    char *field = (char *)c + s->offset;
    if (s->kind == SET_BOOL) {
        *(bool *)field = v != 0;
        return;
    }
    switch (s->size) {
    case 1: *(uint8_t *)field = (uint8_t)v; break;
    case 2: *(uint16_t *)field = (uint16_t)v; break;
    case 4: *(uint32_t *)field = (uint32_t)v; break;
    default: *(uint64_t *)field = v; break;
    }
}

/* Defaults that come from the machine rather than from the table. */
static void machine_defaults(struct config *c, const struct config_defaults *d)
{
    default_pod_id(c, d);
    c->workers = d->cpus == 0 ? 1 : d->cpus > 256 ? 256 : d->cpus;
    /* Descriptors are kept for the acceptor's clients still sending their
     * head, so one past the limit can still be answered 503. */
    uint64_t v = d->nofile > FD_HEADROOM * 2 ? d->nofile - FD_HEADROOM : d->nofile / 2;
    c->max_connections = v == 0 ? 1 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* One variable's value into c; -1 with why (n bytes) when it does not parse. */
static int parse(struct config *c, const struct setting *s, const char *v,
                 const struct config_defaults *d, char *why, size_t n)
{
    uint64_t num;
    uint32_t ms;
    bool b;
    switch (s->kind) {
    case SET_NUMBER:
        if (parse_u64(v, s->lo, s->hi, &num) < 0) {
            snprintf(why, n, "'%.20s' is not a whole number from %llu to %llu", v,
                     (unsigned long long)s->lo, (unsigned long long)s->hi);
            return -1;
        }
        store(c, s, num);
        return 0;
    case SET_DURATION:
        if (config_parse_duration(v, &ms) < 0)
            return say(why, n, "is not a duration such as 1500ms, 60s, 2m or 60");
        if (ms < s->lo)
            return say(why, n, "must be longer than 0");
        store(c, s, ms);
        return 0;
    case SET_BOOL:
        if (parse_bool(v, &b) < 0)
            return say(why, n, "must be true or false");
        store(c, s, b);
        return 0;
    case SET_TEXT:
        return s->parse(c, v, d, why, n);
    }
    return -1;
}

/* What one variable says about another, once all are read. */
static int relations(struct config *c, config_lookup_fn *lookup, void *ctx, char *err,
                     size_t errlen)
{
    if (c->redis_cluster && !c->redis_enabled)
        return fail(err, errlen, "REDIS_CLUSTER", "needs REDIS_URL with the cluster's seed nodes");
    if (c->redis_cluster && c->redis.db != 0)
        return fail(err, errlen, "REDIS_URL", "a Redis Cluster has only database 0");
    if (c->redis_sentinel[0] && !c->redis_enabled)
        return fail(err, errlen, "REDIS_SENTINEL", "needs REDIS_URL listing the sentinels");
    if (c->redis_sentinel[0] && c->redis_cluster)
        return fail(err, errlen, "REDIS_SENTINEL", "cannot be used with REDIS_CLUSTER=true");
    const char *tls_var = c->redis_tls_ca[0]                  ? "REDIS_TLS_CA_FILE"
                          : c->redis_tls_cert[0]              ? "REDIS_TLS_CERT_FILE"
                          : c->redis_tls_key[0]               ? "REDIS_TLS_KEY_FILE"
                          : get(lookup, ctx, "REDIS_TLS_VERIFY") ? "REDIS_TLS_VERIFY"
                                                              : NULL;
    if (tls_var && !c->redis.tls)
        return fail(err, errlen, tls_var, "applies only to a rediss:// REDIS_URL");
    if (!c->redis_tls_cert[0] != !c->redis_tls_key[0])
        return fail(err, errlen, c->redis_tls_cert[0] ? "REDIS_TLS_KEY_FILE" : "REDIS_TLS_CERT_FILE",
                    "a client certificate needs both REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE");
    if (c->redis_enabled && !c->redis_cluster && !c->redis_sentinel[0] && c->redis.nseeds > 1)
        return fail(err, errlen, "REDIS_URL",
                    "names several hosts, which only REDIS_CLUSTER=true or REDIS_SENTINEL uses");
    if (c->auth_enabled && (c->jwt_algs & WS_ALG_HS256) && !c->jwt_secret)
        return fail(err, errlen, "JWT_SECRET",
                    "(or JWT_SECRET_FILE) is required when AUTH_ENABLED=true and "
                    "JWT_ALGORITHMS includes HS256");
    if (c->auth_enabled && (c->jwt_algs & (WS_ALG_RS256 | WS_ALG_ES256)) && !c->jwt_keys_file)
        return fail(err, errlen, "JWT_PUBLIC_KEYS_FILE",
                    "is required when JWT_ALGORITHMS includes RS256 or ES256");
    /* A client answers a ping only after it is sent: a timeout shorter than
     * the interval would close every idle but healthy connection. */
    if (c->pong_timeout_ms <= c->ping_interval_ms)
        return fail(err, errlen, "PONG_TIMEOUT", "must be longer than PING_INTERVAL");
    return 0;
}

static int load(struct config *c, config_lookup_fn *lookup, void *ctx,
                const struct config_defaults *d, char *err, size_t errlen)
{
    const size_t n = sizeof(settings) / sizeof(settings[0]);
    char why[200];
    for (size_t i = 0; i < n; i++) {
        if (settings[i].kind != SET_TEXT)
            store(c, &settings[i], settings[i].def);
        else if (settings[i].text && parse(c, &settings[i], settings[i].text, d, why, sizeof(why)))
            return fail(err, errlen, settings[i].name, why); /* a wrong table: tests catch it */
    }
    machine_defaults(c, d);
    for (size_t i = 0; i < n; i++) {
        const char *v = get(lookup, ctx, settings[i].name);
        if (v && parse(c, &settings[i], v, d, why, sizeof(why)) < 0)
            return fail(err, errlen, settings[i].name, why);
    }
    return relations(c, lookup, ctx, err, errlen);
}

/* What the docs show for a table entry's accepted values. */
static void values_text(const struct setting *s, char *out, size_t n)
{
    if (s->values)
        snprintf(out, n, "%s", s->values);
    else if (s->kind == SET_NUMBER)
        snprintf(out, n, "%llu-%llu", (unsigned long long)s->lo, (unsigned long long)s->hi);
    else if (s->kind == SET_DURATION)
        snprintf(out, n, "a duration%s", s->lo ? " over 0" : ", `0` allowed");
    else
        snprintf(out, n, "a boolean");
}

static void default_text(const struct setting *s, char *out, size_t n)
{
    if (s->shown)
        snprintf(out, n, "%s", s->shown);
    else if (s->text)
        snprintf(out, n, "`%s`", s->text);
    else if (s->kind == SET_BOOL)
        snprintf(out, n, "`%s`", s->def ? "true" : "false");
    else if (s->kind == SET_DURATION && s->def % 1000 == 0)
        snprintf(out, n, "`%llus`", (unsigned long long)(s->def / 1000));
    else if (s->kind == SET_DURATION)
        snprintf(out, n, "`%llums`", (unsigned long long)s->def);
    else
        snprintf(out, n, "`%llu`", (unsigned long long)s->def);
}

void config_print_table(FILE *out)
{
    fputs("| variable | default | values | meaning |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        char def[128], values[160];
        default_text(&settings[i], def, sizeof(def));
        values_text(&settings[i], values, sizeof(values));
        fprintf(out, "| `%s` | %s | %s | %s |\n", settings[i].name, def, values, settings[i].help);
    }
}

int config_load(struct config *c, config_lookup_fn *lookup, void *ctx,
                const struct config_defaults *d, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    if (load(c, lookup, ctx, d, err, errlen) < 0) {
        config_free(c);
        return -1;
    }
    return 0;
}

void config_free(struct config *c)
{
    free(c->jwt_secret);
    for (size_t i = 0; i < c->n_allowed_origins; i++)
        free(c->allowed_origins[i]);
    free(c->allowed_origins);
    free(c->trusted);
    free(c->jwt_keys_file);
    c->jwt_keys_file = NULL;
    c->trusted = NULL;
    c->n_trusted = 0;
    c->jwt_secret = NULL;
    c->allowed_origins = NULL;
    c->n_allowed_origins = 0;
}
