/* auth.c: HS256 JWT checking with OpenSSL's HMAC and our JSON scanner. */
#include "ws/auth.h"

#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ws/b64url.h"
#include "ws/keys.h"
#include "ws/utf8.h"

/* Tokens arrive in a request head of at most 8 KiB. */
#define PART_MAX 8192

/* Finds the top-level member key in the object js[0..n). */
static bool find_member(const char *js, size_t n, const char *key, struct json_span *out)
{
    size_t pos = 0;
    struct json_member m;
    bool found = false;
    int rc;
    while ((rc = json_object_next(js, n, &pos, &m)) == 1) {
        if (json_string_eq(m.key, key)) {
            *out = m.value;
            found = true;
        }
    }
    return rc == 0 && found;
}

/* Reads a NumericDate (RFC 7519 2) member; returns false when it is absent
 * and -1 in *bad when it is present but not a number. */
static bool numeric_date(const char *js, size_t n, const char *key, double *out, int *bad)
{
    struct json_span v;
    if (!find_member(js, n, key, &v))
        return false;
    char buf[64];
    if (v.type != JSON_NUMBER || v.len >= sizeof(buf)) {
        *bad = -1;
        return false;
    }
    memcpy(buf, v.p, v.len);
    buf[v.len] = '\0';
    *out = strtod(buf, NULL);
    return true;
}

/* The rooms claim against the room asked for: 0 when it may enter. */
static int rooms_allow(const char *js, size_t n, const struct ws_auth_scope *scope)
{
    struct json_span rooms;
    if (!find_member(js, n, "rooms", &rooms))
        return scope->require_rooms ? WS_AUTH_NO_ROOMS : 0;
    if (rooms.type != JSON_ARRAY)
        return WS_AUTH_MALFORMED;
    size_t pos = 0;
    struct json_span e;
    int rc, allowed = 0;
    while ((rc = json_array_next(rooms.p, rooms.len, &pos, &e)) == 1) {
        char name[WS_AUTH_ROOM_MAX + 2];
        long k = e.type == JSON_STRING ? json_string_decode(e, name, sizeof(name) - 1) : -1;
        if (k < 0)
            return WS_AUTH_MALFORMED;
        name[k] = '\0';
        if (!scope->room || strcmp(name, WS_AUTH_GLOBAL) == 0)
            allowed |= !scope->room && strcmp(name, WS_AUTH_GLOBAL) == 0;
        else if (k > 0 && name[k - 1] == '*')
            allowed |= strncmp(scope->room, name, (size_t)k - 1) == 0;
        else
            allowed |= strcmp(scope->room, name) == 0;
    }
    if (rc < 0)
        return WS_AUTH_MALFORMED;
    return allowed ? 0 : WS_AUTH_ROOM;
}

/* Checks the signature sig[0..sn) of signed[0..len) by the algorithm alg. */
static bool signature_ok(const struct ws_auth_keys *keys, int alg, const char *hj, size_t hn,
                         const char *signed_part, size_t len, const uint8_t *sig, long sn)
{
    if (sn < 0)
        return false;
    if (alg == WS_ALG_HS256) {
        if (!keys->secret)
            return false;
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        if (!HMAC(EVP_sha256(), keys->secret, (int)keys->secret_len,
                  (const unsigned char *)signed_part, len, mac, &mac_len))
            return false;
        /* Compare in constant time so the signature cannot be guessed bytewise. */
        return sn == (long)mac_len && CRYPTO_memcmp(sig, mac, mac_len) == 0;
    }
    /* RS256, ES256: the header's kid, when it has one, picks the key. */
    struct json_span kid;
    char kbuf[129];
    long kl = -1;
    if (find_member(hj, hn, "kid", &kid) && kid.type == JSON_STRING) {
        kl = json_string_decode(kid, kbuf, sizeof(kbuf));
        if (kl < 0)
            return false; /* over any kid a key may carry */
    }
    return ws_keys_verify(keys->set, alg, kl >= 0 ? kbuf : NULL, kl >= 0 ? (size_t)kl : 0,
                          (const uint8_t *)signed_part, len, sig, (size_t)sn);
}

/* The code point at s[*i] of valid UTF-8, advancing *i past it. */
static uint32_t next_code_point(const unsigned char *s, size_t *i)
{
    uint32_t c = s[(*i)++];
    int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    c &= more == 3 ? 0x07u : more == 2 ? 0x0fu : more == 1 ? 0x1fu : 0x7fu;
    while (more-- > 0)
        c = (c << 6) | (s[(*i)++] & 0x3fu);
    return c;
}

/* Code points that would let one name pass for another on a page or in a
 * terminal: controls (C0, DEL, C1); bidirectional embeddings, overrides
 * and isolates, which reorder what follows (U+202A-202E, U+2066-2069); line
 * and paragraph separators (U+2028, U+2029); and invisible ones (zero
 * width, LRM/RLM, word joiners, BOM). */
static bool deceptive(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x200b && c <= 0x200f) ||
           (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x2069) || c == 0xfeff;
}

static bool space(uint32_t c)
{
    return c == 0x20 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* Whether sub, without its spaces and in any case, is the server's name. */
static bool names_reserved(const char *sub, size_t len)
{
    const char *want = WS_AUTH_RESERVED_SUB;
    size_t i = 0, k = 0;
    while (i < len) {
        uint32_t c = next_code_point((const unsigned char *)sub, &i);
        if (space(c))
            continue;
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (want[k] == '\0' || c != (unsigned char)want[k])
            return false;
        k++;
    }
    return want[k] == '\0';
}

int ws_auth_verify(const char *tok, size_t len, const struct ws_auth_keys *keys, int64_t now_s,
                   const struct ws_auth_scope *scope, struct ws_auth_claims *out)
{
    *out = (struct ws_auth_claims){0};
    char *sub = out->sub;
    const char *dot1 = memchr(tok, '.', len);
    if (!dot1)
        return WS_AUTH_MALFORMED;
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok));
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)))
        return WS_AUTH_MALFORMED;
    size_t hlen = (size_t)(dot1 - tok), plen = (size_t)(dot2 - dot1 - 1);
    size_t slen = len - (size_t)(dot2 + 1 - tok);
    if (hlen == 0 || plen == 0 || hlen > PART_MAX || plen > PART_MAX)
        return WS_AUTH_MALFORMED;

    uint8_t header[PART_MAX], payload[PART_MAX];
    long hn = ws_b64url_decode(tok, hlen, header, sizeof(header));
    long pn = ws_b64url_decode(dot1 + 1, plen, payload, sizeof(payload));
    if (hn < 0 || pn < 0)
        return WS_AUTH_MALFORMED;
    const char *hj = (const char *)header, *pj = (const char *)payload;
    if (json_check(hj, (size_t)hn) != JSON_OBJECT || json_check(pj, (size_t)pn) != JSON_OBJECT)
        return WS_AUTH_MALFORMED;

    /* The algorithm is the server's choice (JWT_ALGORITHMS); the token only
     * says which of those it used. */
    struct json_span alg;
    int bit = 0;
    if (find_member(hj, (size_t)hn, "alg", &alg) && alg.type == JSON_STRING && alg.len >= 2)
        bit = ws_alg_from_name(alg.p + 1, alg.len - 2);
    if (!bit || !(keys->algs & bit))
        return WS_AUTH_ALG;

    uint8_t sig[1024]; /* RSA up to 8192 bits */
    long sn = ws_b64url_decode(dot2 + 1, slen, sig, sizeof(sig));
    if (!signature_ok(keys, bit, hj, (size_t)hn, tok, (size_t)(dot2 - tok), sig, sn))
        return WS_AUTH_SIGNATURE;

    /* Clocks of the issuer and of this server differ a little: at the
     * upgrade, exp and nbf are checked with WS_AUTH_LEEWAY_S to spare. */
    double t;
    int bad = 0;
    if (numeric_date(pj, (size_t)pn, "exp", &t, &bad)) {
        if (!(isfinite(t) && (double)(now_s - WS_AUTH_LEEWAY_S) < t))
            return WS_AUTH_EXPIRED;
        /* Saturated: exp is used in milliseconds later, and a date past
         * 9999 (or 1e300) means "no end" anyway. */
        out->exp = t > (double)WS_AUTH_EXP_MAX ? WS_AUTH_EXP_MAX : (int64_t)t;
    }
    if (numeric_date(pj, (size_t)pn, "nbf", &t, &bad) &&
        !(isfinite(t) && (double)(now_s + WS_AUTH_LEEWAY_S) >= t))
        return WS_AUTH_NOT_YET;
    if (bad)
        return WS_AUTH_MALFORMED;
    struct json_span ro;
    if (find_member(pj, (size_t)pn, "read_only", &ro)) {
        if (ro.type != JSON_TRUE && ro.type != JSON_FALSE)
            return WS_AUTH_MALFORMED;
        out->read_only = ro.type == JSON_TRUE;
    }

    struct json_span s;
    if (!find_member(pj, (size_t)pn, "sub", &s) || s.type != JSON_STRING)
        return WS_AUTH_NO_SUB;
    long n = json_string_decode(s, sub, WS_AUTH_SUB_MAX);
    if (n <= 0)
        return WS_AUTH_NO_SUB;
    sub[n] = '\0';
    if (!ws_auth_sub_valid(sub, (size_t)n))
        return WS_AUTH_NO_SUB;
    /* The server's own messages say from "system": no client may, in any
     * case or with spaces around or inside. */
    if (names_reserved(sub, (size_t)n))
        return WS_AUTH_RESERVED;
    return rooms_allow(pj, (size_t)pn, scope);
}

bool ws_auth_sub_valid(const char *sub, size_t len)
{
    /* It reaches every client as `from` in a text frame: it must be UTF-8
     * (RFC 6455 5.6), and nothing in it may disguise one user as another. */
    if (len == 0 || ws_utf8_check((const uint8_t *)sub, len) < 0)
        return false;
    for (size_t i = 0; i < len;)
        if (deceptive(next_code_point((const unsigned char *)sub, &i)))
            return false;
    return true;
}

const char *ws_auth_err_text(int err)
{
    switch (err) {
    case WS_AUTH_ALG: return "token's alg is not one this server accepts (JWT_ALGORITHMS)";
    case WS_AUTH_SIGNATURE: return "token signature does not match";
    case WS_AUTH_EXPIRED: return "token has expired";
    case WS_AUTH_NOT_YET: return "token is not valid yet (nbf)";
    case WS_AUTH_NO_SUB:
        return "token has no usable sub claim (1-128 bytes of UTF-8 without control, "
               "bidirectional-override, separator or invisible characters)";
    case WS_AUTH_RESERVED:
        return "token sub \"system\" (in any case or spacing) is the server's own name";
    case WS_AUTH_ROOM: return "token's rooms claim does not allow this room";
    case WS_AUTH_NO_ROOMS: return "token has no rooms claim, and AUTH_REQUIRE_ROOMS is on";
    default: return "token is not a well-formed JWT";
    }
}
