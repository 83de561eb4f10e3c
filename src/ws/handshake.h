/* handshake.h: routing a request head and checking a WebSocket upgrade
 * (RFC 6455 4.2). Pure: the policy carries the clock and the configuration.
 *
 * ws_hs_check decides everything the acceptor needs: which route a request
 * takes, or which HTTP status refuses it and why; for an upgrade, the room,
 * the client id from the token and the Sec-WebSocket-Accept value. */
#ifndef CHAT_WS_HANDSHAKE_H
#define CHAT_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "ws/auth.h"
#include "ws/pmd.h"

#define WS_HS_ROOM_MAX 128
#define WS_HS_PREFIX "/api/chat-api"

enum ws_hs_route {
    WS_HS_NONE,  /* refused: see status */
    WS_HS_CHAT,  /* upgrade to a chat connection */
    WS_HS_ECHO,  /* upgrade to an echo connection */
    WS_HS_STATS, /* plain routes (GET or HEAD), answered by the acceptor */
    WS_HS_HEALTHZ,
    WS_HS_READYZ,
    WS_HS_METRICS,
    WS_HS_INDEX,
};

/* What the configuration and the moment say about who may connect. */
struct ws_hs_policy {
    bool echo_enabled;
    bool auth_enabled;
    struct ws_auth_keys keys; /* what tokens are checked with */
    bool require_rooms;   /* AUTH_REQUIRE_ROOMS */
    char *const *origins; /* allowed Origin values; n_origins 0: any */
    size_t n_origins;
    int64_t now_s; /* Unix time, for token expiry */
    bool compression; /* COMPRESSION=auto: permessage-deflate offers are looked at */
};

struct ws_hs_result {
    enum ws_hs_route route;
    int status;                /* 0 to go ahead, else the HTTP status to answer */
    const char *reason;        /* with status: a sentence for the answer's body */
    const char *extra_headers; /* with status: header lines to add, or NULL */
    bool head_only;            /* plain routes: HEAD, answer without the body */
    bool room_names;           /* WS_HS_STATS: may see room names (no auth, or a valid token) */
    bool has_room;             /* WS_HS_CHAT: false for the global scope */
    char room[WS_HS_ROOM_MAX + 1];
    char client_id[WS_AUTH_SUB_MAX + 1]; /* the token's sub; empty without auth */
    bool read_only;                      /* the token says "read_only": true */
    int64_t token_exp;                   /* the token's exp (Unix s); 0: none */
    char accept[29];                     /* Sec-WebSocket-Accept, NUL-terminated */
    struct ws_pmd pmd;                   /* permessage-deflate as agreed (pmd.on: in use) */
    unsigned pmd_declined;               /* permessage-deflate offers declined */
};

/* Whether origin matches an ALLOWED_ORIGINS entry: an exact value
 * (case-insensitive), or [scheme://]*.suffix[:port] for any subdomain of
 * suffix. */
bool ws_hs_origin_matches(struct http_str origin, const char *entry);

/* Routes req and, for WebSocket routes, checks the upgrade. Any thread. */
void ws_hs_check(const struct http_req *req, const struct ws_hs_policy *pol,
                 struct ws_hs_result *res);

/* Writes the 101 answer for an accepted upgrade. Returns its length, or 0
 * when cap is too small. */
size_t ws_hs_write_101(char *out, size_t cap, const struct ws_hs_result *res);

/* Computes Sec-WebSocket-Accept for a key (RFC 6455 4.2.2 step 5.4). */
void ws_hs_accept_key(const char *key, size_t len, char out[29]);

/* Percent-decodes s[0..len) into out[0..cap). Returns the length, or -1 for
 * a bad escape or when it does not fit. */
long ws_hs_percent_decode(const char *s, size_t len, char *out, size_t cap);

/* Whether a decoded room name is 1 to 128 bytes of A-Z a-z 0-9 _ - . : */
bool ws_hs_room_valid(const char *s, size_t len);

/* Finds the first query parameter called name. Returns true with its raw
 * (still percent-encoded) value. */
bool ws_hs_query_param(struct http_str query, const char *name, struct http_str *value);

#endif
