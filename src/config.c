/* config.c: every variable of interface.md, strictly parsed. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
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

static int parse_origins(struct config *c, const char *s, char *err, size_t errlen)
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
            return fail(err, errlen, "ALLOWED_ORIGINS", "has an empty entry between commas");
        char **grown = realloc(c->allowed_origins, (c->n_allowed_origins + 1) * sizeof(char *));
        if (!grown)
            return fail(err, errlen, "ALLOWED_ORIGINS", "out of memory");
        c->allowed_origins = grown;
        c->allowed_origins[c->n_allowed_origins++] = strndup(p, len);
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* Reads one optional number variable. */
static int number(config_lookup_fn *lookup, void *ctx, const char *var, uint64_t lo, uint64_t hi,
                  uint64_t *out, char *err, size_t errlen)
{
    const char *v = get(lookup, ctx, var);
    if (!v)
        return 0;
    if (parse_u64(v, lo, hi, out) < 0) {
        char why[96];
        snprintf(why, sizeof(why), "'%.20s' is not a whole number from %llu to %llu", v,
                 (unsigned long long)lo, (unsigned long long)hi);
        return fail(err, errlen, var, why);
    }
    return 0;
}

static int duration(config_lookup_fn *lookup, void *ctx, const char *var, bool zero_ok,
                    uint32_t *out, char *err, size_t errlen)
{
    const char *v = get(lookup, ctx, var);
    if (!v)
        return 0;
    uint32_t ms;
    if (config_parse_duration(v, &ms) < 0)
        return fail(err, errlen, var, "is not a duration such as 1500ms, 60s, 2m or 60");
    if (ms == 0 && !zero_ok)
        return fail(err, errlen, var, "must be longer than 0");
    *out = ms;
    return 0;
}

static int boolean(config_lookup_fn *lookup, void *ctx, const char *var, bool *out, char *err,
                   size_t errlen)
{
    const char *v = get(lookup, ctx, var);
    if (v && parse_bool(v, out) < 0)
        return fail(err, errlen, var, "must be true or false");
    return 0;
}

/* JWT_SECRET_FILE: the secret is the file's content, less one trailing line
 * end (files written by echo or an editor). Docker and Kubernetes mount
 * secrets as files. Errors never show the content. */
static int read_secret(struct config *c, const char *path, const struct config_defaults *d,
                       char *err, size_t errlen)
{
    char buf[4097];
    long n = d->read_file ? d->read_file(path, buf, sizeof(buf)) : -ENOENT;
    if (n < 0) {
        snprintf(err, errlen, "JWT_SECRET_FILE: cannot read %s: %s", path, strerror((int)-n));
        return -1;
    }
    if ((size_t)n == sizeof(buf))
        return fail(err, errlen, "JWT_SECRET_FILE", "is over 4096 bytes");
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0)
        return fail(err, errlen, "JWT_SECRET_FILE", "is empty");
    c->jwt_secret = malloc((size_t)n + 1);
    if (!c->jwt_secret)
        return fail(err, errlen, "JWT_SECRET_FILE", "out of memory");
    memcpy(c->jwt_secret, buf, (size_t)n);
    c->jwt_secret[n] = '\0';
    c->jwt_secret_len = (size_t)n;
    return 0;
}

/* A path variable: empty when unset; too long is an error. */
static int path_var(config_lookup_fn *lookup, void *ctx, const char *var, char *out, size_t cap,
                    char *err, size_t errlen)
{
    const char *v = get(lookup, ctx, var);
    out[0] = '\0';
    if (!v)
        return 0;
    if (strlen(v) >= cap)
        return fail(err, errlen, var, "is too long a path");
    snprintf(out, cap, "%s", v);
    return 0;
}

/* REDIS_SENTINEL and the REDIS_TLS_* variables. The files are read when the
 * broker starts (a startup error naming the file if they cannot be used). */
static int redis_sentinel_and_tls(struct config *c, config_lookup_fn *lookup, void *ctx,
                                  char *err, size_t errlen)
{
    const char *s = get(lookup, ctx, "REDIS_SENTINEL");
    if (s) {
        if (!c->redis_enabled)
            return fail(err, errlen, "REDIS_SENTINEL", "needs REDIS_URL listing the sentinels");
        if (c->redis_cluster)
            return fail(err, errlen, "REDIS_SENTINEL", "cannot be used with REDIS_CLUSTER=true");
        if (strlen(s) >= sizeof(c->redis_sentinel) || strpbrk(s, " \t\r\n"))
            return fail(err, errlen, "REDIS_SENTINEL", "must be a master name of at most 127 "
                                                       "bytes without spaces");
        snprintf(c->redis_sentinel, sizeof(c->redis_sentinel), "%s", s);
    }
    c->redis_tls_verify = true;
    if (boolean(lookup, ctx, "REDIS_TLS_VERIFY", &c->redis_tls_verify, err, errlen) < 0 ||
        path_var(lookup, ctx, "REDIS_TLS_CA_FILE", c->redis_tls_ca, sizeof(c->redis_tls_ca), err,
                 errlen) < 0 ||
        path_var(lookup, ctx, "REDIS_TLS_CERT_FILE", c->redis_tls_cert,
                 sizeof(c->redis_tls_cert), err, errlen) < 0 ||
        path_var(lookup, ctx, "REDIS_TLS_KEY_FILE", c->redis_tls_key, sizeof(c->redis_tls_key),
                 err, errlen) < 0)
        return -1;
    bool any = c->redis_tls_ca[0] || c->redis_tls_cert[0] || c->redis_tls_key[0] ||
               get(lookup, ctx, "REDIS_TLS_VERIFY");
    if (any && !c->redis.tls)
        return fail(err, errlen, c->redis_tls_ca[0] ? "REDIS_TLS_CA_FILE"
                                 : c->redis_tls_cert[0] ? "REDIS_TLS_CERT_FILE"
                                 : c->redis_tls_key[0] ? "REDIS_TLS_KEY_FILE"
                                                       : "REDIS_TLS_VERIFY",
                    "applies only to a rediss:// REDIS_URL");
    if (!c->redis_tls_cert[0] != !c->redis_tls_key[0])
        return fail(err, errlen, c->redis_tls_cert[0] ? "REDIS_TLS_KEY_FILE" : "REDIS_TLS_CERT_FILE",
                    "a client certificate needs both REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE");
    return 0;
}

static int load(struct config *c, config_lookup_fn *lookup, void *ctx,
                const struct config_defaults *d, char *err, size_t errlen)
{
    uint64_t v;
    const char *s;

    v = 8080;
    if (number(lookup, ctx, "PORT", 1, 65535, &v, err, errlen) < 0)
        return -1;
    c->port = (uint16_t)v;

    s = get(lookup, ctx, "BIND_ADDR");
    snprintf(c->bind_addr, sizeof(c->bind_addr), "%s", s ? s : "0.0.0.0");
    unsigned char addr[16];
    if (inet_pton(AF_INET, c->bind_addr, addr) != 1 && inet_pton(AF_INET6, c->bind_addr, addr) != 1)
        return fail(err, errlen, "BIND_ADDR", "must be an IPv4 or IPv6 address");

    s = get(lookup, ctx, "REDIS_URL");
    if (s) {
        char why[160];
        if (redis_url_parse(s, &c->redis, why, sizeof(why)) < 0)
            return fail(err, errlen, "REDIS_URL", why);
        c->redis_enabled = true;
    }
    if (boolean(lookup, ctx, "REDIS_CLUSTER", &c->redis_cluster, err, errlen) < 0)
        return -1;
    if (c->redis_cluster && !c->redis_enabled)
        return fail(err, errlen, "REDIS_CLUSTER", "needs REDIS_URL with the cluster's seed nodes");
    if (c->redis_cluster && c->redis.db != 0)
        return fail(err, errlen, "REDIS_URL", "a Redis Cluster has only database 0");
    if (redis_sentinel_and_tls(c, lookup, ctx, err, errlen) < 0)
        return -1;
    if (c->redis_enabled && !c->redis_cluster && !c->redis_sentinel[0] && c->redis.nseeds > 1)
        return fail(err, errlen, "REDIS_URL",
                    "names several hosts, which only REDIS_CLUSTER=true or REDIS_SENTINEL uses");

    s = get(lookup, ctx, "POD_ID");
    if (s) {
        if (!pod_id_valid(s))
            return fail(err, errlen, "POD_ID", "must be 1 to 63 of A-Z a-z 0-9 - _ . :");
        snprintf(c->pod_id, sizeof(c->pod_id), "%s", s);
    } else {
        default_pod_id(c, d);
    }

    v = d->cpus ? d->cpus : 1;
    if (v > 256)
        v = 256;
    if (number(lookup, ctx, "WORKERS", 1, 256, &v, err, errlen) < 0)
        return -1;
    c->workers = (unsigned)v;

    if (boolean(lookup, ctx, "AUTH_ENABLED", &c->auth_enabled, err, errlen) < 0)
        return -1;
    s = get(lookup, ctx, "JWT_SECRET");
    const char *file = get(lookup, ctx, "JWT_SECRET_FILE");
    if (s && file)
        return fail(err, errlen, "JWT_SECRET_FILE", "and JWT_SECRET are both set; set one");
    if (s) {
        c->jwt_secret = strdup(s);
        c->jwt_secret_len = strlen(s);
    } else if (file && read_secret(c, file, d, err, errlen) < 0) {
        return -1;
    }
    c->jwt_algs = WS_ALG_HS256;
    s = get(lookup, ctx, "JWT_ALGORITHMS");
    if (s && (c->jwt_algs = ws_alg_parse_list(s)) < 0)
        return fail(err, errlen, "JWT_ALGORITHMS",
                    "must be a comma-separated list of HS256, RS256, ES256");
    s = get(lookup, ctx, "JWT_PUBLIC_KEYS_FILE");
    if (s && !(c->jwt_keys_file = strdup(s)))
        return fail(err, errlen, "JWT_PUBLIC_KEYS_FILE", "out of memory");
    if (c->auth_enabled && (c->jwt_algs & WS_ALG_HS256) && !c->jwt_secret)
        return fail(err, errlen, "JWT_SECRET",
                    "(or JWT_SECRET_FILE) is required when AUTH_ENABLED=true and "
                    "JWT_ALGORITHMS includes HS256");
    if (c->auth_enabled && (c->jwt_algs & (WS_ALG_RS256 | WS_ALG_ES256)) && !c->jwt_keys_file)
        return fail(err, errlen, "JWT_PUBLIC_KEYS_FILE",
                    "is required when JWT_ALGORITHMS includes RS256 or ES256");
    if (boolean(lookup, ctx, "AUTH_REQUIRE_ROOMS", &c->auth_require_rooms, err, errlen) < 0)
        return -1;

    s = get(lookup, ctx, "ALLOWED_ORIGINS");
    if (s && parse_origins(c, s, err, errlen) < 0)
        return -1;

    c->ping_interval_ms = 54000;
    c->pong_timeout_ms = 60000;
    c->shutdown_timeout_ms = 10000;
    c->room_linger_ms = 10000;
    if (duration(lookup, ctx, "PING_INTERVAL", false, &c->ping_interval_ms, err, errlen) < 0 ||
        duration(lookup, ctx, "ROOM_LINGER", true, &c->room_linger_ms, err, errlen) < 0 ||
        duration(lookup, ctx, "PONG_TIMEOUT", false, &c->pong_timeout_ms, err, errlen) < 0 ||
        duration(lookup, ctx, "SHUTDOWN_TIMEOUT", true, &c->shutdown_timeout_ms, err, errlen) < 0)
        return -1;
    /* A client answers a ping only after it is sent: a timeout shorter than
     * the interval would close every idle but healthy connection. */
    if (c->pong_timeout_ms <= c->ping_interval_ms)
        return fail(err, errlen, "PONG_TIMEOUT", "must be longer than PING_INTERVAL");

    v = 65536;
    if (number(lookup, ctx, "MAX_MESSAGE_SIZE", 1, 64u << 20, &v, err, errlen) < 0)
        return -1;
    c->max_message = (size_t)v;

    v = 256;
    if (number(lookup, ctx, "SEND_BUFFER", 1, 65536, &v, err, errlen) < 0)
        return -1;
    c->send_buffer = (uint32_t)v;

    /* Descriptors are kept for the acceptor's clients still sending their
     * head, so one past the limit can still be answered 503. */
    v = d->nofile > FD_HEADROOM * 2 ? d->nofile - FD_HEADROOM : d->nofile / 2;
    if (v == 0)
        v = 1;
    if (v > UINT32_MAX)
        v = UINT32_MAX;
    if (number(lookup, ctx, "MAX_CONNECTIONS", 1, UINT32_MAX, &v, err, errlen) < 0)
        return -1;
    c->max_connections = (uint32_t)v;

    v = 0;
    if (number(lookup, ctx, "MAX_CONNECTIONS_PER_IP", 0, UINT32_MAX, &v, err, errlen) < 0)
        return -1;
    c->max_connections_per_ip = (uint32_t)v;

    v = 64;
    if (number(lookup, ctx, "PER_IP_IPV6_PREFIX", 1, 128, &v, err, errlen) < 0)
        return -1;
    c->per_ip_v6_prefix = (uint8_t)v;
    s = get(lookup, ctx, "TRUSTED_PROXIES");
    if (s) {
        c->trusted = calloc(CONFIG_TRUSTED_MAX, sizeof(*c->trusted));
        if (!c->trusted)
            return fail(err, errlen, "TRUSTED_PROXIES", "out of memory");
        c->n_trusted = ipnet_parse_list(s, c->trusted, CONFIG_TRUSTED_MAX);
        if (c->n_trusted < 0)
            return fail(err, errlen, "TRUSTED_PROXIES",
                        "must be a comma-separated list of addresses or CIDR networks "
                        "(10.0.0.0/8, ::1), at most 64");
    }

    c->log_level = LOG_INFO;
    s = get(lookup, ctx, "LOG_LEVEL");
    if (s) {
        bool found = false;
        for (int l = LOG_DEBUG; l <= LOG_ERROR; l++)
            if (!strcasecmp(s, config_log_level_name((enum log_level)l))) {
                c->log_level = (enum log_level)l;
                found = true;
            }
        if (!found)
            return fail(err, errlen, "LOG_LEVEL", "must be debug, info, warn or error");
    }

    if (boolean(lookup, ctx, "ECHO_ENDPOINT", &c->echo_endpoint, err, errlen) < 0)
        return -1;

    v = 10000;
    if (number(lookup, ctx, "REDIS_OUTBOX", 1, 10000000, &v, err, errlen) < 0)
        return -1;
    c->redis_outbox = (uint32_t)v;
    return 0;
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
