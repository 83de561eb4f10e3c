/* test_keys.c: algorithm lists and key files that must be refused. The
 * signatures themselves are checked end to end against keys the openssl
 * command line makes (tests/e2e/test_keys.py). */
#include <string.h>

#include "suites.h"
#include "ws/keys.h"

START_TEST(algorithm_lists)
{
    ck_assert_int_eq(ws_alg_parse_list("HS256"), WS_ALG_HS256);
    ck_assert_int_eq(ws_alg_parse_list("RS256, ES256"), WS_ALG_RS256 | WS_ALG_ES256);
    ck_assert_int_eq(ws_alg_parse_list("HS256,RS256,ES256"),
                     WS_ALG_HS256 | WS_ALG_RS256 | WS_ALG_ES256);
    const char *bad[] = {"", "none", "hs256", "HS512", "RS256,", ",RS256", "RS256,,ES256"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ws_alg_parse_list(bad[i]) == -1, "%s", bad[i]);
    ck_assert_int_eq(ws_alg_from_name("none", 4), 0);
}
END_TEST

START_TEST(key_files_that_hold_no_usable_key)
{
    char err[256];
    const char *bad[] = {
        "",
        "not a key",
        "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        struct ws_keyset *set = ws_keys_parse(bad[i], strlen(bad[i]), err, sizeof(err));
        ck_assert_msg(set == NULL && err[0], "accepted: %s", bad[i]);
    }
    ck_assert_ptr_null(ws_keys_load("/nonexistent/keys.pem", err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "cannot read"));
    /* Nothing verifies against no keys, whatever the signature. */
    uint8_t sig[64] = {0};
    ck_assert(!ws_keys_verify(NULL, WS_ALG_ES256, NULL, 0, sig, 1, sig, 64));
}
END_TEST

SUITE(keys,
      algorithm_lists,
      key_files_that_hold_no_usable_key)
