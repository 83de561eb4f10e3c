/* keys.h: public keys for RS256 and ES256 tokens, and the algorithms
 * accepted.
 *
 * A key set is read from JWT_PUBLIC_KEYS_FILE: PEM public keys (one or
 * more, "-----BEGIN PUBLIC KEY-----"), or a JWKS document ({"keys":[...]},
 * what identity providers publish) whose RSA and P-256 EC keys carry a kid.
 * A token's kid chooses among keys that have one; otherwise (no kid, or
 * keys without one, as in PEM) at most the first 4 keys of the token's
 * algorithm are tried, in file order. JWKS keys whose "use" is not "sig",
 * whose "alg" is not the key's, or whose kid is over 128 bytes are not
 * loaded. A set is immutable once loaded: the server swaps whole
 * sets on SIGHUP (server.c) and readers hold its lock while verifying. */
#ifndef CHAT_WS_KEYS_H
#define CHAT_WS_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* JWT_ALGORITHMS, as a set of bits. */
enum ws_alg {
    WS_ALG_HS256 = 1,
    WS_ALG_RS256 = 2,
    WS_ALG_ES256 = 4,
};

/* Parses "HS256,RS256" (case-sensitive, as JWS names them). Returns the
 * bits, or -1 on an unknown or empty entry. */
int ws_alg_parse_list(const char *s);

/* The bit of a JWS alg name, or 0 for any other (none, HS512, ...). */
int ws_alg_from_name(const char *name, size_t len);

struct ws_keyset;

/* Parses PEM or JWKS text. Returns a set of at least one key, or NULL with
 * why in err (which never holds key material). */
struct ws_keyset *ws_keys_parse(const char *text, size_t len, char *err, size_t errlen);

/* Reads and parses a file. */
struct ws_keyset *ws_keys_load(const char *path, char *err, size_t errlen);

void ws_keys_free(struct ws_keyset *set);

size_t ws_keys_count(const struct ws_keyset *set);

/* Whether sig is a valid alg signature of data by a key of set (chosen by
 * kid, when the token has one; kid NULL otherwise). Any thread. */
bool ws_keys_verify(const struct ws_keyset *set, int alg, const char *kid, size_t kid_len,
                    const uint8_t *data, size_t len, const uint8_t *sig, size_t sig_len);

#endif
