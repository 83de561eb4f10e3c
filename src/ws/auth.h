/* auth.h: JSON Web Token verification (RFC 7519, RFC 7515). Pure.
 *
 * The algorithms accepted are pinned by JWT_ALGORITHMS (HS256, RS256,
 * ES256): a token naming any other, "none" included, is refused. HS256 is
 * checked only against the shared secret, RS256 and ES256 only against
 * public keys (keys.h), so a public key can never serve as an HMAC secret
 * (the algorithm confusion attack). */
#ifndef CHAT_WS_AUTH_H
#define CHAT_WS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_AUTH_SUB_MAX 128

enum ws_auth_err {
    WS_AUTH_MALFORMED = -1, /* not three base64url parts of JSON objects */
    WS_AUTH_ALG = -2,       /* alg is not one of JWT_ALGORITHMS */
    WS_AUTH_SIGNATURE = -3, /* the signature does not match */
    WS_AUTH_EXPIRED = -4,   /* exp is in the past */
    WS_AUTH_NOT_YET = -5,   /* nbf is in the future */
    WS_AUTH_NO_SUB = -6,    /* sub is missing, not a string, empty, too long, not
                               UTF-8, or holds a control character */
    WS_AUTH_RESERVED = -7,  /* sub is the server's own sender name */
    WS_AUTH_ROOM = -8,      /* the rooms claim does not name the room asked for */
    WS_AUTH_NO_ROOMS = -9,  /* no rooms claim, and one is required */
};

/* Seconds of clock skew forgiven, the same way everywhere: a token is
 * admitted until exp + WS_AUTH_LEEWAY_S, and a live connection is closed
 * with 1008 at that moment. */
#define WS_AUTH_LEEWAY_S 5

/* exp values past this (9999-12-31T23:59:59Z) are taken as this. */
#define WS_AUTH_EXP_MAX INT64_C(253402300799)

/* In a rooms claim, the entry that stands for the global scope. */
#define WS_AUTH_GLOBAL "global"
#define WS_AUTH_ROOM_MAX 128

struct ws_keyset;

/* What tokens are checked with. */
struct ws_auth_keys {
    int algs;                    /* accepted algorithms: enum ws_alg bits (keys.h) */
    const uint8_t *secret;       /* HS256; NULL when there is none */
    size_t secret_len;
    const struct ws_keyset *set; /* RS256 and ES256; NULL when there is none */
};

/* What the token is asked for. */
struct ws_auth_scope {
    const char *room;   /* the room to enter; NULL: the global scope */
    bool require_rooms; /* AUTH_REQUIRE_ROOMS: a token without rooms enters nothing */
};

/* What a valid token says. */
struct ws_auth_claims {
    char sub[WS_AUTH_SUB_MAX + 1]; /* the client id, NUL-terminated */
    bool read_only;                /* "read_only": true */
    int64_t exp; /* Unix seconds, at most WS_AUTH_EXP_MAX; 0: the token has no exp */
};

/* The sender name of the server's own messages, which no token may claim. */
#define WS_AUTH_RESERVED_SUB "system"

/* Verifies tok[0..len) with keys at Unix time now_s, and that it may enter
 * scope: a rooms claim lists room names, an entry ending in '*' is a prefix,
 * "global" is the global scope. On success returns 0 with *out filled;
 * otherwise a ws_auth_err (WS_AUTH_ROOM and WS_AUTH_NO_ROOMS are refusals
 * of a valid token). Any thread. */
int ws_auth_verify(const char *tok, size_t len, const struct ws_auth_keys *keys, int64_t now_s,
                   const struct ws_auth_scope *scope, struct ws_auth_claims *out);

/* Whether sub[0..len) may name a client: 1 or more bytes of UTF-8 without
 * control characters (C0, DEL, C1), bidirectional embeddings, overrides or
 * isolates, line or paragraph separators, or invisible characters. */
bool ws_auth_sub_valid(const char *sub, size_t len);

/* A short sentence saying why a token was refused. */
const char *ws_auth_err_text(int err);


#endif
