/* url.c: REDIS_URL, the form redis-cli and most Redis clients take. */
#include "redis/url.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ws/handshake.h"

static int bad(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return -1;
}

/* Copies a percent-decoded part into a NUL-terminated field. */
static bool decode_into(const char *s, size_t len, char *out, size_t cap)
{
    long n = ws_hs_percent_decode(s, len, out, cap - 1);
    if (n < 0 || memchr(out, '\0', (size_t)n))
        return false;
    out[n] = '\0';
    return true;
}

static bool parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    if (len == 0 || len > 10)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* One host[:port] (or [v6]:port) of len bytes at p. */
static int parse_hostport(const char *p, size_t auth_len, struct redis_seed *u, char *err,
                          size_t errlen)
{
    u->port = 6379;
    const char *host = p;
    size_t host_len;
    const char *port = NULL;
    size_t port_len = 0;
    if (*p == '[') {
        const char *close = memchr(p, ']', auth_len);
        if (!close)
            return bad(err, errlen, "an IPv6 address needs its closing ']'");
        host = p + 1;
        host_len = (size_t)(close - p - 1);
        const char *rest = close + 1;
        if (rest < p + auth_len) {
            if (*rest != ':')
                return bad(err, errlen, "expected ':' and a port after ']'");
            port = rest + 1;
            port_len = (size_t)(p + auth_len - port);
        }
    } else {
        const char *colon = memchr(p, ':', auth_len);
        host_len = colon ? (size_t)(colon - p) : auth_len;
        if (colon) {
            port = colon + 1;
            port_len = (size_t)(p + auth_len - port);
        }
    }
    if (host_len == 0)
        return bad(err, errlen, "the host is missing");
    if (host_len >= sizeof(u->host))
        return bad(err, errlen, "the host is too long");
    memcpy(u->host, host, host_len);
    u->host[host_len] = '\0';
    if (port) {
        unsigned long v;
        if (!parse_uint(port, port_len, 65535, &v) || v == 0)
            return bad(err, errlen, "the port must be a number from 1 to 65535");
        u->port = (uint16_t)v;
    }
    return 0;
}

int redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    u->tls = strncasecmp(s, "rediss://", 9) == 0;
    if (!u->tls && strncasecmp(s, "redis://", 8) != 0)
        return bad(err, errlen, "must start with redis:// (or rediss:// for TLS)");
    const char *p = s + (u->tls ? 9 : 8);
    if (strpbrk(p, "?#"))
        return bad(err, errlen, "query strings and fragments are not supported");

    const char *slash = strchr(p, '/');
    size_t auth_len = slash ? (size_t)(slash - p) : strlen(p);
    /* The last '@' ends the user info: a password may contain '@' encoded or not. */
    const char *at = NULL;
    for (const char *q = p; q < p + auth_len; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return bad(err, errlen, "user info must be user:password@ or :password@");
        if (!decode_into(p, (size_t)(colon - p), u->user, sizeof(u->user)) ||
            !decode_into(colon + 1, (size_t)(at - colon - 1), u->password, sizeof(u->password)))
            return bad(err, errlen, "user or password is too long or has a bad %-escape");
        if (u->password[0] == '\0')
            return bad(err, errlen, "the password after ':' is empty");
        p = at + 1;
        auth_len = slash ? (size_t)(slash - p) : strlen(p);
    }

    /* Hosts, comma-separated (a cluster's seeds). */
    const char *end = p + auth_len;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (u->nseeds == REDIS_URL_SEEDS_MAX)
            return bad(err, errlen, "at most 16 hosts");
        struct redis_seed *sd = &u->seeds[u->nseeds++];
        if (parse_hostport(p, (size_t)(stop - p), sd, err, errlen) < 0)
            return -1;
        if (!comma)
            break;
        p = comma + 1;
    }
    memcpy(u->host, u->seeds[0].host, sizeof(u->host));
    u->port = u->seeds[0].port;
    if (slash && slash[1] != '\0') {
        unsigned long v;
        if (!parse_uint(slash + 1, strlen(slash + 1), 2147483647ul, &v))
            return bad(err, errlen, "the database after '/' must be a whole number");
        u->db = (int)v;
    }
    return 0;
}
