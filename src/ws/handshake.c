/* handshake.c: routes, upgrade checks and the opening handshake's answer. */
#include "ws/handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

#include "hex.h"

/* RFC 6455 1.3: the GUID appended to the key before hashing. */
static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void ws_hs_accept_key(const char *key, size_t len, char out[29])
{
    unsigned char buf[128 + sizeof(WS_GUID)];
    unsigned char digest[SHA_DIGEST_LENGTH];
    if (len > 128)
        len = 128;
    memcpy(buf, key, len);
    memcpy(buf + len, WS_GUID, sizeof(WS_GUID) - 1);
    SHA1(buf, len + sizeof(WS_GUID) - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

long ws_hs_percent_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n == cap)
            return -1;
        out[n++] = c;
    }
    return (long)n;
}

bool ws_hs_room_valid(const char *s, size_t len)
{
    if (len < 1 || len > WS_HS_ROOM_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

/* Finds the next parameter called name in query from *at on, and moves *at
 * past it. */
static bool next_query_param(struct http_str query, const char *name, size_t *at,
                             struct http_str *value)
{
    size_t nlen = strlen(name), i = *at;
    while (i < query.len) {
        const char *amp = memchr(query.p + i, '&', query.len - i);
        size_t end = amp ? (size_t)(amp - query.p) : query.len;
        const char *pair = query.p + i;
        size_t plen = end - i;
        i = end + 1;
        if (plen >= nlen && memcmp(pair, name, nlen) == 0 && (plen == nlen || pair[nlen] == '=')) {
            size_t off = plen == nlen ? nlen : nlen + 1;
            *value = (struct http_str){pair + off, plen - off};
            *at = i;
            return true;
        }
    }
    *at = i;
    return false;
}

bool ws_hs_query_param(struct http_str query, const char *name, struct http_str *value)
{
    size_t at = 0;
    return next_query_param(query, name, &at, value);
}

static bool method_is(struct http_str m, const char *lit)
{
    return m.len == strlen(lit) && memcmp(m.p, lit, m.len) == 0;
}

static void refuse(struct ws_hs_result *res, int status, const char *reason, const char *extra)
{
    res->route = WS_HS_NONE;
    res->status = status;
    res->reason = reason;
    res->extra_headers = extra;
}

static bool path_is(struct http_str path, size_t off, const char *lit)
{
    size_t n = strlen(lit);
    return path.len - off == n && memcmp(path.p + off, lit, n) == 0;
}

/* Matches the path to a route. For /ws/{room} sets *room_raw. */
static enum ws_hs_route match_route(struct http_str path, bool echo_enabled,
                                    struct http_str *room_raw)
{
    static const char prefix[] = WS_HS_PREFIX;
    size_t plen = sizeof(prefix) - 1;
    room_raw->p = NULL;
    room_raw->len = 0;

    /* The demo page, also under the gateway prefix (its URLs are relative). */
    if (path_is(path, 0, "/") || path_is(path, 0, WS_HS_PREFIX "/"))
        return WS_HS_INDEX;
    if (path_is(path, 0, "/healthz"))
        return WS_HS_HEALTHZ;
    if (path_is(path, 0, "/readyz"))
        return WS_HS_READYZ;
    if (path_is(path, 0, "/metrics"))
        return WS_HS_METRICS;

    /* The chat routes answer with and without the gateway prefix. */
    size_t off = 0;
    if (path.len >= plen && memcmp(path.p, prefix, plen) == 0) {
        off = plen;
        if (path_is(path, off, "/echo"))
            return echo_enabled ? WS_HS_ECHO : WS_HS_NONE;
    }
    if (path_is(path, off, "/ws") || path_is(path, off, "/ws/"))
        return WS_HS_CHAT;
    if (path_is(path, off, "/ws/stats"))
        return WS_HS_STATS;
    if (path.len - off > 4 && memcmp(path.p + off, "/ws/", 4) == 0) {
        *room_raw = (struct http_str){path.p + off + 4, path.len - off - 4};
        return WS_HS_CHAT;
    }
    return WS_HS_NONE;
}

/* Decodes and checks a room; returns false after refusing. */
static bool take_room(struct http_str raw, struct ws_hs_result *res)
{
    long n = ws_hs_percent_decode(raw.p, raw.len, res->room, WS_HS_ROOM_MAX);
    if (n < 0 || !ws_hs_room_valid(res->room, (size_t)n)) {
        /* A refusal carries no room, not even one named earlier in the path. */
        res->has_room = false;
        memset(res->room, 0, sizeof(res->room));
        refuse(res, 400, "room names are 1 to 128 bytes of A-Z a-z 0-9 _ - . :", NULL);
        return false;
    }
    res->room[n] = '\0';
    res->has_room = true;
    return true;
}

static bool key_valid(const struct http_str *key)
{
    /* RFC 6455 4.2.1 item 5: base64 of 16 bytes is 24 characters ending "==". */
    unsigned char out[32];
    if (!key || key->len != 24 || key->p[22] != '=' || key->p[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        char c = key->p[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
        if (!ok)
            return false;
    }
    return EVP_DecodeBlock(out, (const unsigned char *)key->p, 24) == 18;
}

bool ws_hs_origin_matches(struct http_str origin, const char *entry)
{
    const char *star = strstr(entry, "*.");
    if (!star)
        return http_str_ieq(origin, entry);
    /* [scheme://]*.suffix[:port]: the scheme, when given, must be the
     * origin's; its host must end in .suffix (a subdomain, not the suffix
     * itself); the port counts only when the entry names one. */
    const char *sep = memchr(origin.p, ':', origin.len);
    if (!sep || (size_t)(origin.p + origin.len - sep) < 3 || memcmp(sep, "://", 3) != 0)
        return false;
    size_t scheme_len = (size_t)(sep - origin.p);
    if (star != entry) {
        size_t elen = (size_t)(star - entry);
        if (elen != scheme_len + 3 || strncasecmp(origin.p, entry, elen) != 0)
            return false;
    }
    struct http_str auth = {sep + 3, origin.len - scheme_len - 3};
    const char *suffix = star + 1; /* ".example.com[:port]" */
    if (!strchr(suffix, ':')) {
        const char *colon = memchr(auth.p, ':', auth.len);
        if (colon)
            auth.len = (size_t)(colon - auth.p);
    }
    size_t slen = strlen(suffix);
    return auth.len > slen &&
           http_str_ieq((struct http_str){auth.p + auth.len - slen, slen}, suffix);
}

static bool origin_allowed(const struct http_req *req, const struct ws_hs_policy *pol)
{
    if (pol->n_origins == 0)
        return true;
    const struct http_str *o = http_req_header(req, "Origin");
    /* Browsers always send Origin; a client without one is not a browser, and
     * could send any Origin it liked, so the list does not apply to it. */
    if (!o)
        return true;
    for (size_t i = 0; i < pol->n_origins; i++)
        if (ws_hs_origin_matches(*o, pol->origins[i]))
            return true;
    return false;
}

/* Copies the request's token (Authorization: Bearer, else ?token=) into
 * tok[HTTP_REQ_MAX_HEAD]. Returns its length; 0 or less when there is none. */
static long find_token(const struct http_req *req, char *tok)
{
    const struct http_str *auth = http_req_header(req, "Authorization");
    struct http_str q;
    if (auth && auth->len > 7 && strncasecmp(auth->p, "Bearer ", 7) == 0) {
        memcpy(tok, auth->p + 7, auth->len - 7);
        return (long)(auth->len - 7);
    }
    if (ws_hs_query_param(req->query, "token", &q))
        return ws_hs_percent_decode(q.p, q.len, tok, HTTP_REQ_MAX_HEAD);
    return -1;
}

/* Whether the request carries a valid token, whatever rooms it names. */
static bool has_valid_token(const struct http_req *req, const struct ws_hs_policy *pol)
{
    char tok[HTTP_REQ_MAX_HEAD];
    long n = find_token(req, tok);
    struct ws_auth_scope scope = {0};
    struct ws_auth_claims claims;
    int rc = n > 0 ? ws_auth_verify(tok, (size_t)n, &pol->keys, pol->now_s, &scope, &claims)
                   : WS_AUTH_MALFORMED;
    return rc == 0 || rc == WS_AUTH_ROOM;
}

/* Finds the token and checks it. */
static bool check_token(const struct http_req *req, const struct ws_hs_policy *pol,
                        struct ws_hs_result *res)
{
    char tok[HTTP_REQ_MAX_HEAD];
    long n = find_token(req, tok);
    if (n <= 0) {
        refuse(res, 401, "a token is required: Authorization: Bearer <jwt> or ?token=<jwt>",
               "WWW-Authenticate: Bearer\r\n");
        return false;
    }
    struct ws_auth_scope scope = {.room = res->has_room ? res->room : NULL,
                                  .require_rooms = pol->require_rooms};
    struct ws_auth_claims claims;
    int rc = ws_auth_verify(tok, (size_t)n, &pol->keys, pol->now_s, &scope, &claims);
    if (rc == WS_AUTH_ROOM || rc == WS_AUTH_NO_ROOMS) {
        /* A valid token that does not reach this room: forbidden, not
         * unauthenticated (RFC 9110 15.5.4). */
        refuse(res, 403, ws_auth_err_text(rc), NULL);
        return false;
    }
    if (rc < 0) {
        refuse(res, 401, ws_auth_err_text(rc),
               "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
        return false;
    }
    memcpy(res->client_id, claims.sub, sizeof(res->client_id));
    res->read_only = claims.read_only;
    res->token_exp = claims.exp;
    return true;
}

void ws_hs_check(const struct http_req *req, const struct ws_hs_policy *pol,
                 struct ws_hs_result *res)
{
    memset(res, 0, sizeof(*res));
    struct http_str room_raw;
    enum ws_hs_route route = match_route(req->path, pol->echo_enabled, &room_raw);

    if (route == WS_HS_NONE) {
        refuse(res, 404, "no such path", NULL);
        return;
    }
    /* RFC 9110 9.1: method names are case-sensitive; "get" is not GET. */
    bool ws = route == WS_HS_CHAT || route == WS_HS_ECHO;
    bool is_get = method_is(req->method, "GET"), is_head = method_is(req->method, "HEAD");
    if (!is_get && !(is_head && !ws)) {
        if (ws)
            refuse(res, 405, "only GET is served here", "Allow: GET\r\n");
        else
            refuse(res, 405, "only GET and HEAD are served here", "Allow: GET, HEAD\r\n");
        return;
    }
    if (!ws) {
        res->route = route;
        res->head_only = is_head;
        if (route == WS_HS_STATS)
            res->room_names = !pol->auth_enabled || has_valid_token(req, pol);
        return;
    }

    /* RFC 6455 4.2.1: the handshake is an HTTP/1.1 GET with Host, Upgrade,
     * Connection, Sec-WebSocket-Key and Sec-WebSocket-Version. */
    if (!http_req_header_has_token(req, "Upgrade", "websocket")) {
        refuse(res, 426, "this path takes a WebSocket upgrade",
               "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
        return;
    }
    if (req->minor_version < 1 || http_req_header_count(req, "Host") != 1) {
        refuse(res, 400, "a WebSocket upgrade needs HTTP/1.1 and one Host header", NULL);
        return;
    }
    if (!http_req_header_has_token(req, "Connection", "upgrade")) {
        refuse(res, 400, "the Connection header must include the upgrade token", NULL);
        return;
    }
    const struct http_str *ver = http_req_header(req, "Sec-WebSocket-Version");
    if (http_req_header_count(req, "Sec-WebSocket-Version") != 1 || !http_str_ieq(*ver, "13")) {
        /* RFC 6455 4.4: answer with the versions we speak. */
        refuse(res, 426, "only WebSocket version 13 is supported", "Sec-WebSocket-Version: 13\r\n");
        return;
    }
    const struct http_str *key = http_req_header(req, "Sec-WebSocket-Key");
    if (http_req_header_count(req, "Sec-WebSocket-Key") != 1 || !key_valid(key)) {
        refuse(res, 400, "Sec-WebSocket-Key must be the base64 of 16 bytes", NULL);
        return;
    }

    if (route == WS_HS_CHAT) {
        if (room_raw.p && !take_room(room_raw, res))
            return;
        /* Every ?room= (there may be several) must name the path's room, if
         * any, and each other: which one counts is not for us to guess. */
        struct http_str q;
        size_t at = 0;
        while (next_query_param(req->query, "room", &at, &q)) {
            char before[WS_HS_ROOM_MAX + 1];
            bool had = res->has_room;
            memcpy(before, res->room, sizeof(before));
            if (!take_room(q, res))
                return;
            if (had && strcmp(before, res->room) != 0) {
                refuse(res, 400, "the path and ?room= name different rooms", NULL);
                return;
            }
        }
    }
    if (!origin_allowed(req, pol)) {
        refuse(res, 403, "this Origin is not allowed", NULL);
        return;
    }
    if (pol->auth_enabled && !check_token(req, pol, res))
        return;

    ws_hs_accept_key(key->p, key->len, res->accept);
    if (pol->compression)
        res->pmd_declined = ws_pmd_negotiate(req, &res->pmd);
    res->route = route;
    res->status = 0;
}

size_t ws_hs_write_101(char *out, size_t cap, const struct ws_hs_result *res)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: ";
    size_t n = sizeof(head) - 1, a = strlen(res->accept);
    if (cap < n + a + 2)
        return 0;
    memcpy(out, head, n);
    memcpy(out + n, res->accept, a);
    memcpy(out + n + a, "\r\n", 2);
    n += a + 2;
    if (res->pmd.on) {
        size_t e = ws_pmd_write(out + n, cap - n, &res->pmd);
        if (e == 0)
            return 0;
        n += e;
    }
    if (cap - n < 2)
        return 0;
    memcpy(out + n, "\r\n", 2);
    return n + 2;
}
