/* b64url.h: unpadded base64url, as JWTs and JWKS documents carry it
 * (RFC 7515 2). Pure; any thread. */
#ifndef CHAT_WS_B64URL_H
#define CHAT_WS_B64URL_H

#include <stddef.h>
#include <stdint.h>

/* Decodes s[0..len) into out (cap bytes). Returns the decoded length, or
 * -1 when it is not base64url, does not fit, or has non-zero pad bits (so
 * that each value has one encoding). */
long ws_b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap);

#endif
