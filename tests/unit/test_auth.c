/* test_auth.c: HS256 token checking. */
#include <string.h>

#include "jwt_helper.h"
#include "suites.h"
#include "ws/auth.h"

#define SECRET "s3cret"
#define NOW 1800000000
static const char HS256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static int verify(const char *tok, const char *secret, char *sub)
{
    return ws_auth_verify(tok, strlen(tok), (const uint8_t *)secret, strlen(secret), NOW, sub);
}

START_TEST(accepts_a_valid_token)
{
    char tok[1024], sub[WS_AUTH_SUB_MAX + 1];
    test_jwt(HS256, "{\"sub\":\"alice\",\"exp\":1900000000,\"nbf\":1700000000}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), 0);
    ck_assert_str_eq(sub, "alice");
    /* No exp at all is fine; escapes in sub are decoded. */
    test_jwt(HS256, "{\"sub\":\"b\\u00f6b\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), 0);
    ck_assert_str_eq(sub, "b\xc3\xb6"
                          "b");
}
END_TEST

START_TEST(refuses_bad_tokens)
{
    char tok[1024], sub[WS_AUTH_SUB_MAX + 1];
    test_jwt(HS256, "{\"sub\":\"alice\"}", "other", tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_SIGNATURE);

    test_jwt(HS256, "{\"sub\":\"alice\",\"exp\":1700000000}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_EXPIRED);
    test_jwt(HS256, "{\"sub\":\"alice\",\"exp\":1800000000}", SECRET, tok); /* exp == now */
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_EXPIRED);

    test_jwt(HS256, "{\"sub\":\"alice\",\"nbf\":1900000000}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_NOT_YET);

    test_jwt(HS256, "{\"name\":\"alice\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_NO_SUB);
    test_jwt(HS256, "{\"sub\":42}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_NO_SUB);
    test_jwt(HS256, "{\"sub\":\"\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_NO_SUB);

    test_jwt("{\"alg\":\"none\"}", "{\"sub\":\"alice\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_ALG);
    test_jwt("{\"alg\":\"HS512\"}", "{\"sub\":\"alice\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_ALG);

    test_jwt(HS256, "{\"sub\":\"alice\",\"exp\":\"soon\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_MALFORMED);
    test_jwt(HS256, "not json", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_MALFORMED);
    ck_assert_int_eq(verify("abc", SECRET, sub), WS_AUTH_MALFORMED);
    ck_assert_int_eq(verify("a.b.c.d", SECRET, sub), WS_AUTH_MALFORMED);
    ck_assert_int_eq(verify("..", SECRET, sub), WS_AUTH_MALFORMED);
    ck_assert_int_eq(verify("a*.b.c", SECRET, sub), WS_AUTH_MALFORMED);
}
END_TEST

START_TEST(tampered_payload_is_refused)
{
    char good[1024], evil[1024], sub[WS_AUTH_SUB_MAX + 1];
    test_jwt(HS256, "{\"sub\":\"alice\"}", SECRET, good);
    test_jwt(HS256, "{\"sub\":\"admin\"}", SECRET, evil);
    /* evil's header and payload with good's signature. */
    char mixed[2048];
    const char *gsig = strrchr(good, '.');
    size_t head = (size_t)(strrchr(evil, '.') - evil);
    memcpy(mixed, evil, head);
    strcpy(mixed + head, gsig);
    ck_assert_int_eq(verify(mixed, SECRET, sub), WS_AUTH_SIGNATURE);
}
END_TEST

START_TEST(base64url)
{
    uint8_t out[16];
    ck_assert_int_eq(ws_auth_b64url_decode("aGk", 3, out, sizeof(out)), 2);
    ck_assert_mem_eq(out, "hi", 2);
    ck_assert_int_eq(ws_auth_b64url_decode("-_8", 3, out, sizeof(out)), 2);
    ck_assert_int_eq(ws_auth_b64url_decode("aGl", 3, out, sizeof(out)), -1); /* non-zero pad bits */
    ck_assert_int_eq(ws_auth_b64url_decode("a", 1, out, sizeof(out)), -1);
    ck_assert_int_eq(ws_auth_b64url_decode("aGk=", 4, out, sizeof(out)), -1);
}
END_TEST

Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, accepts_a_valid_token);
    tcase_add_test(tc, refuses_bad_tokens);
    tcase_add_test(tc, tampered_payload_is_refused);
    tcase_add_test(tc, base64url);
    suite_add_tcase(s, tc);
    return s;
}
