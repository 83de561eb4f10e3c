/* keys.c: PEM and JWKS public keys, RS256 and ES256 checks (keys.h). */
#include "ws/keys.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ws/b64url.h"

#define KID_MAX 128
#define KEYS_MAX 64
/* Signature checks one token may cost when its kid does not pick a key:
 * each RSA or ECDSA check is tens of microseconds of the acceptor thread. */
#define KEYS_TRY_MAX 4
#define FILE_MAX (1 << 20)

struct ws_key {
    char kid[KID_MAX + 1]; /* empty: none (PEM) */
    int alg;               /* WS_ALG_RS256 or WS_ALG_ES256 */
    EVP_PKEY *pkey;
};

struct ws_keyset {
    size_t n;
    struct ws_key keys[KEYS_MAX];
};

int ws_alg_from_name(const char *name, size_t len)
{
    static const struct {
        const char *name;
        int bit;
    } algs[] = {{"HS256", WS_ALG_HS256}, {"RS256", WS_ALG_RS256}, {"ES256", WS_ALG_ES256}};
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0)
            return algs[i].bit;
    return 0;
}

int ws_alg_parse_list(const char *s)
{
    int bits = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        int bit = ws_alg_from_name(p, len);
        if (!bit)
            return -1;
        bits |= bit;
        if (!comma)
            return bits;
        p = comma + 1;
    }
}

void ws_keys_free(struct ws_keyset *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        EVP_PKEY_free(set->keys[i].pkey);
    free(set);
}

size_t ws_keys_count(const struct ws_keyset *set)
{
    return set ? set->n : 0;
}

/* The JWS alg a key can verify, or 0 (an EC key must be on P-256). */
static int alg_of(EVP_PKEY *k)
{
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA)
        return WS_ALG_RS256;
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) {
        char group[64];
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) == 1 &&
            (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0))
            return WS_ALG_ES256;
    }
    return 0;
}

static bool add_key(struct ws_keyset *set, EVP_PKEY *k, const char *kid, size_t kid_len)
{
    int alg = k ? alg_of(k) : 0;
    if (!alg || set->n == KEYS_MAX || kid_len > KID_MAX) {
        EVP_PKEY_free(k);
        return false;
    }
    struct ws_key *key = &set->keys[set->n++];
    memcpy(key->kid, kid, kid_len);
    key->kid[kid_len] = '\0';
    key->alg = alg;
    key->pkey = k;
    return true;
}

static void parse_pem(struct ws_keyset *set, const char *text, size_t len)
{
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    if (!bio)
        return;
    EVP_PKEY *k;
    while ((k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) != NULL)
        add_key(set, k, "", 0);
    BIO_free(bio);
    ERR_clear_error(); /* the read that ended the loop */
}

/* A JWK's string member called name (the last, as in JSON.parse). */
static bool jwk_member(const char *js, size_t n, const char *name, struct json_span *out)
{
    size_t pos = 0;
    struct json_member m;
    bool found = false;
    while (json_object_next(js, n, &pos, &m) == 1)
        if (json_string_eq(m.key, name) && m.value.type == JSON_STRING) {
            *out = m.value;
            found = true;
        }
    return found;
}

/* Decodes a base64url member of a JWK (n, e, x, y) into out. Returns its
 * length or -1. */
static long jwk_bytes(const char *js, size_t n, const char *name, uint8_t *out, size_t cap)
{
    struct json_span v;
    return jwk_member(js, n, name, &v) ? ws_b64url_decode(v.p + 1, v.len - 2, out, cap) : -1;
}

/* A JWK's text member (kty, kid, crv), decoded into out. -1 when absent. */
static long jwk_string(const char *js, size_t n, const char *name, char *out, size_t cap)
{
    struct json_span v;
    return jwk_member(js, n, name, &v) ? json_string_decode(v, out, cap) : -1;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *k = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return k;
}

static EVP_PKEY *jwk_rsa(const char *js, size_t n)
{
    uint8_t mod[1024], exp[16];
    long nl = jwk_bytes(js, n, "n", mod, sizeof(mod));
    long el = jwk_bytes(js, n, "e", exp, sizeof(exp));
    if (nl <= 0 || el <= 0)
        return NULL;
    BIGNUM *bn_n = BN_bin2bn(mod, (int)nl, NULL), *bn_e = BN_bin2bn(exp, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *k = NULL;
    if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        k = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return k;
}

static EVP_PKEY *jwk_ec(const char *js, size_t n)
{
    char crv[16];
    long cl = jwk_string(js, n, "crv", crv, sizeof(crv) - 1);
    if (cl != 5 || memcmp(crv, "P-256", 5) != 0)
        return NULL;
    uint8_t point[65];
    point[0] = 4; /* SEC 1: uncompressed point, x then y */
    if (jwk_bytes(js, n, "x", point + 1, 32) != 32 || jwk_bytes(js, n, "y", point + 33, 32) != 32)
        return NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *k = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
        k = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return k;
}

/* Whether a JWK may verify signatures of alg: "use", when present, must be
 * "sig" (RFC 7517 4.2), and "alg", when present, must be alg (4.4). */
static bool jwk_for_signing(const char *js, size_t n, int alg)
{
    struct json_span u, a;
    if (jwk_member(js, n, "use", &u) && !json_string_eq(u, "sig"))
        return false;
    if (jwk_member(js, n, "alg", &a))
        return a.len >= 2 && ws_alg_from_name(a.p + 1, a.len - 2) == alg;
    return true;
}

/* Reads {"keys":[...]}; keys of other types (oct, OKP) are passed over, and
 * so are keys not for signing, or for another alg, or whose kid is over
 * KID_MAX bytes (never taken as a key without a kid). */
static bool parse_jwks(struct ws_keyset *set, const char *text, size_t len, char *err,
                       size_t errlen)
{
    size_t pos = 0;
    struct json_member m;
    struct json_span keys = {0};
    int rc;
    while ((rc = json_object_next(text, len, &pos, &m)) == 1)
        if (json_string_eq(m.key, "keys"))
            keys = m.value;
    if (rc < 0 || keys.type != JSON_ARRAY) {
        snprintf(err, errlen, "not a JWKS document: no \"keys\" array");
        return false;
    }
    pos = 0;
    struct json_span jwk;
    while ((rc = json_array_next(keys.p, keys.len, &pos, &jwk)) == 1) {
        if (jwk.type != JSON_OBJECT)
            continue;
        char kty[8], kid[KID_MAX + 1];
        long tl = jwk_string(jwk.p, jwk.len, "kty", kty, sizeof(kty) - 1);
        long kl = jwk_string(jwk.p, jwk.len, "kid", kid, sizeof(kid) - 1);
        struct json_span kid_span;
        if (kl < 0 && jwk_member(jwk.p, jwk.len, "kid", &kid_span))
            continue; /* a kid we cannot keep: the key is not used at all */
        if (kl < 0)
            kl = 0;
        EVP_PKEY *k = NULL;
        if (tl == 3 && memcmp(kty, "RSA", 3) == 0)
            k = jwk_rsa(jwk.p, jwk.len);
        else if (tl == 2 && memcmp(kty, "EC", 2) == 0)
            k = jwk_ec(jwk.p, jwk.len);
        if (k && !jwk_for_signing(jwk.p, jwk.len, alg_of(k))) {
            EVP_PKEY_free(k);
            continue;
        }
        if (k && !add_key(set, k, kid, (size_t)kl)) {
            snprintf(err, errlen, "more than %d keys", KEYS_MAX);
            return false;
        }
    }
    return rc == 0;
}

struct ws_keyset *ws_keys_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct ws_keyset *set = calloc(1, sizeof(*set));
    if (!set) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    err[0] = '\0';
    if (i < len && text[i] == '{') {
        if (!parse_jwks(set, text, len, err, errlen) && !err[0])
            snprintf(err, errlen, "not a well-formed JWKS document");
    } else {
        parse_pem(set, text, len);
    }
    if (!err[0] && set->n == 0)
        snprintf(err, errlen,
                 "no RSA or P-256 EC public key for signing in it (JWKS keys "
                 "need use \"sig\" or none, a matching alg or none, and a kid "
                 "of at most %d bytes)",
                 KID_MAX);
    if (err[0]) {
        ws_keys_free(set);
        return NULL;
    }
    return set;
}

struct ws_keyset *ws_keys_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(FILE_MAX);
    size_t n = buf ? fread(buf, 1, FILE_MAX, f) : 0;
    bool too_big = buf && n == FILE_MAX;
    fclose(f);
    struct ws_keyset *set = NULL;
    if (!buf)
        snprintf(err, errlen, "out of memory");
    else if (too_big)
        snprintf(err, errlen, "%s is over 1 MiB", path);
    else
        set = ws_keys_parse(buf, n, err, errlen);
    free(buf);
    return set;
}

/* JWS ES256 signatures are r and s, 32 bytes each (RFC 7518 3.4); OpenSSL
 * verifies the DER form. Returns the DER length in *der (freed by the
 * caller with OPENSSL_free), or 0. */
static int es256_der(const uint8_t *sig, size_t sig_len, unsigned char **der)
{
    if (sig_len != 64)
        return 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    int n = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        *der = NULL;
        n = i2d_ECDSA_SIG(es, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return n > 0 ? n : 0;
}

static bool verify_with(EVP_PKEY *k, const uint8_t *data, size_t len, const uint8_t *sig,
                        size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

bool ws_keys_verify(const struct ws_keyset *set, int alg, const char *kid, size_t kid_len,
                    const uint8_t *data, size_t len, const uint8_t *sig, size_t sig_len)
{
    if (!set)
        return false;
    unsigned char *der = NULL;
    size_t vlen = sig_len;
    const uint8_t *vsig = sig;
    if (alg == WS_ALG_ES256) {
        int n = es256_der(sig, sig_len, &der);
        if (!n)
            return false;
        vsig = der;
        vlen = (size_t)n;
    }
    /* With a kid, only the keys that carry it, if any key carries one;
     * otherwise the first KEYS_TRY_MAX keys of the algorithm, in file order,
     * so a bogus token costs a bounded number of signature checks. */
    bool any_kid = false;
    for (size_t i = 0; kid && i < set->n; i++)
        any_kid |= set->keys[i].kid[0] != '\0';
    bool ok = false;
    unsigned tried = 0;
    for (size_t i = 0; i < set->n && !ok && tried < KEYS_TRY_MAX; i++) {
        const struct ws_key *key = &set->keys[i];
        if (key->alg != alg)
            continue;
        if (kid && any_kid && (strlen(key->kid) != kid_len || memcmp(key->kid, kid, kid_len) != 0))
            continue;
        tried++;
        ok = verify_with(key->pkey, data, len, vsig, vlen);
    }
    OPENSSL_free(der);
    return ok;
}
