/* auth.h: HS256 JSON Web Token verification (RFC 7519, RFC 7515). Pure.
 *
 * Only HS256 is accepted: a token naming any other algorithm, "none"
 * included, is refused, so a client cannot pick how it is checked. */
#ifndef CHAT_WS_AUTH_H
#define CHAT_WS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_AUTH_SUB_MAX 128

enum ws_auth_err {
    WS_AUTH_MALFORMED = -1, /* not three base64url parts of JSON objects */
    WS_AUTH_ALG = -2,       /* alg is not HS256 */
    WS_AUTH_SIGNATURE = -3, /* the signature does not match */
    WS_AUTH_EXPIRED = -4,   /* exp is in the past */
    WS_AUTH_NOT_YET = -5,   /* nbf is in the future */
    WS_AUTH_NO_SUB = -6,    /* sub is missing, not a string, empty, too long, not
                               UTF-8, or holds a control character */
    WS_AUTH_RESERVED = -7,  /* sub is the server's own sender name */
};

/* The sender name of the server's own messages, which no token may claim. */
#define WS_AUTH_RESERVED_SUB "system"

/* Verifies tok[0..len) with secret at Unix time now_s. On success returns 0
 * and writes the token's sub, NUL-terminated, into sub (WS_AUTH_SUB_MAX + 1
 * bytes). Otherwise returns a ws_auth_err. Any thread. */
int ws_auth_verify(const char *tok, size_t len, const uint8_t *secret, size_t secret_len,
                   int64_t now_s, char sub[WS_AUTH_SUB_MAX + 1]);

/* Whether sub[0..len) may name a client: 1 or more bytes of UTF-8 without
 * control characters (C0, DEL, C1). */
bool ws_auth_sub_valid(const char *sub, size_t len);

/* A short sentence saying why a token was refused. */
const char *ws_auth_err_text(int err);

/* Decodes unpadded base64url. Returns the decoded length, or -1. */
long ws_auth_b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap);

#endif
