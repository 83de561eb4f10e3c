/* test_auth.c: HS256 token checking. */
#include <stdio.h>
#include <string.h>

#include "jwt_helper.h"
#include "suites.h"
#include "ws/auth.h"
#include "ws/b64url.h"
#include "ws/keys.h"

#define SECRET "s3cret"
#define NOW 1800000000
static const char HS256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Verifies for the global scope with no room rules; sub receives the id. */
static int verify_in(const char *tok, const char *secret, const struct ws_auth_scope *scope,
                     struct ws_auth_claims *c)
{
    struct ws_auth_keys keys = {.algs = WS_ALG_HS256,
                                .secret = (const uint8_t *)secret,
                                .secret_len = strlen(secret)};
    return ws_auth_verify(tok, strlen(tok), &keys, NOW, scope, c);
}

static int verify(const char *tok, const char *secret, char *sub)
{
    struct ws_auth_scope scope = {0};
    struct ws_auth_claims c;
    int rc = verify_in(tok, secret, &scope, &c);
    memcpy(sub, c.sub, sizeof(c.sub));
    return rc;
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
    /* WS_AUTH_LEEWAY_S of clock skew is forgiven at the upgrade, no more. */
    test_jwt(HS256, "{\"sub\":\"alice\",\"exp\":1799999995}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_EXPIRED);
    test_jwt(HS256, "{\"sub\":\"alice\",\"exp\":1799999996}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), 0);

    test_jwt(HS256, "{\"sub\":\"alice\",\"nbf\":1900000000}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_NOT_YET);
    test_jwt(HS256, "{\"sub\":\"alice\",\"nbf\":1800000006}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_NOT_YET);
    test_jwt(HS256, "{\"sub\":\"alice\",\"nbf\":1800000005}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), 0);

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
    ck_assert_int_eq(ws_b64url_decode("aGk", 3, out, sizeof(out)), 2);
    ck_assert_mem_eq(out, "hi", 2);
    ck_assert_int_eq(ws_b64url_decode("-_8", 3, out, sizeof(out)), 2);
    ck_assert_int_eq(ws_b64url_decode("aGl", 3, out, sizeof(out)), -1); /* non-zero pad bits */
    ck_assert_int_eq(ws_b64url_decode("a", 1, out, sizeof(out)), -1);
    ck_assert_int_eq(ws_b64url_decode("aGk=", 4, out, sizeof(out)), -1);
}
END_TEST

START_TEST(sub_must_be_a_clean_name)
{
    char tok[1024], sub[WS_AUTH_SUB_MAX + 1];
    /* A raw 0xFF byte: JSON allows it in a string, UTF-8 does not. */
    test_jwt(HS256, "{\"sub\":\"ev\xffil\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_NO_SUB);
    const char *refused[] = {
        "{\"sub\":\"a\\u0007b\"}", "{\"sub\":\"a\\nb\"}", "{\"sub\":\"a\\u007fb\"}",
        "{\"sub\":\"a\\u0085b\"}", "{\"sub\":\"\\ud800\"}",
        /* Bidirectional embeddings, overrides and isolates reorder what a page
         * shows; line and paragraph separators split it; invisible ones hide. */
        "{\"sub\":\"alice\\u202e nimda\"}", "{\"sub\":\"a\\u202ab\"}", "{\"sub\":\"a\\u202db\"}",
        "{\"sub\":\"a\\u2066b\"}", "{\"sub\":\"a\\u2069b\"}", "{\"sub\":\"a\\u2028b\"}",
        "{\"sub\":\"a\\u2029b\"}", "{\"sub\":\"sys\\u200btem\"}", "{\"sub\":\"\\ufeffbob\"}"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        test_jwt(HS256, refused[i], SECRET, tok);
        ck_assert_msg(verify(tok, SECRET, sub) == WS_AUTH_NO_SUB, "%s", refused[i]);
    }
    /* Nobody may speak as the server. */
    test_jwt(HS256, "{\"sub\":\"system\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), WS_AUTH_RESERVED);
    ck_assert_ptr_nonnull(strstr(ws_auth_err_text(WS_AUTH_RESERVED), "system"));
    /* ...in any case or spacing. */
    const char *variants[] = {"System",  "SYSTEM",        " system",     "system ",
                              "sys tem", "\\u00a0system", "s y s t e m", "\\u3000SyStEm"};
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        char claims[128];
        snprintf(claims, sizeof(claims), "{\"sub\":\"%s\"}", variants[i]);
        test_jwt(HS256, claims, SECRET, tok);
        ck_assert_msg(verify(tok, SECRET, sub) == WS_AUTH_RESERVED, "%s", variants[i]);
    }
    /* Names in any script are fine, and so are names that merely contain it. */
    test_jwt(HS256, "{\"sub\":\"\\u00e9l\\u00e8ve \\u4e2d\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), 0);
    test_jwt(HS256, "{\"sub\":\"systems team\"}", SECRET, tok);
    ck_assert_int_eq(verify(tok, SECRET, sub), 0);
    test_jwt(HS256, "{\"sub\":\"\\u05e9\\u05dc\\u05d5\\u05dd\"}", SECRET, tok); /* Hebrew is fine */
    ck_assert_int_eq(verify(tok, SECRET, sub), 0);
}
END_TEST

START_TEST(room_claims)
{
    char tok[1024];
    struct ws_auth_claims c;
    struct ws_auth_scope lobby = {.room = "lobby"}, team = {.room = "team-42-dev"},
                         global = {.room = NULL}, other = {.room = "ops"};
    test_jwt(HS256, "{\"sub\":\"a\",\"rooms\":[\"lobby\",\"team-42-*\",\"global\"]}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &lobby, &c), 0);
    ck_assert_int_eq(verify_in(tok, SECRET, &team, &c), 0);
    ck_assert_int_eq(verify_in(tok, SECRET, &global, &c), 0);
    ck_assert_int_eq(verify_in(tok, SECRET, &other, &c), WS_AUTH_ROOM);
    /* A prefix is a prefix; "global" is the scope, not a room called so. */
    struct ws_auth_scope team4 = {.room = "team-4"}, named_global = {.room = "global"};
    ck_assert_int_eq(verify_in(tok, SECRET, &team4, &c), WS_AUTH_ROOM);
    ck_assert_int_eq(verify_in(tok, SECRET, &named_global, &c), WS_AUTH_ROOM);
    test_jwt(HS256, "{\"sub\":\"a\",\"rooms\":[\"lobby\"]}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &global, &c), WS_AUTH_ROOM);
    test_jwt(HS256, "{\"sub\":\"a\",\"rooms\":[]}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &lobby, &c), WS_AUTH_ROOM);
    /* Without the claim: every room, unless rooms are required. */
    test_jwt(HS256, "{\"sub\":\"a\"}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &other, &c), 0);
    struct ws_auth_scope strict = {.room = "ops", .require_rooms = true};
    ck_assert_int_eq(verify_in(tok, SECRET, &strict, &c), WS_AUTH_NO_ROOMS);
    /* A claim of the wrong shape is a malformed token. */
    test_jwt(HS256, "{\"sub\":\"a\",\"rooms\":\"lobby\"}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &lobby, &c), WS_AUTH_MALFORMED);
    test_jwt(HS256, "{\"sub\":\"a\",\"rooms\":[\"lobby\",7]}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &lobby, &c), WS_AUTH_MALFORMED);
}
END_TEST

START_TEST(read_only_and_exp_are_handed_back)
{
    char tok[1024];
    struct ws_auth_claims c;
    struct ws_auth_scope any = {0};
    test_jwt(HS256, "{\"sub\":\"a\",\"read_only\":true,\"exp\":1800000100}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &any, &c), 0);
    ck_assert(c.read_only);
    ck_assert_int_eq(c.exp, 1800000100);
    /* exp far in the future saturates instead of overflowing later. */
    test_jwt(HS256, "{\"sub\":\"a\",\"exp\":9.3e15}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &any, &c), 0);
    ck_assert_int_eq(c.exp, WS_AUTH_EXP_MAX);
    test_jwt(HS256, "{\"sub\":\"a\",\"exp\":1e300}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &any, &c), 0);
    ck_assert_int_eq(c.exp, WS_AUTH_EXP_MAX);
    test_jwt(HS256, "{\"sub\":\"a\",\"read_only\":false}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &any, &c), 0);
    ck_assert(!c.read_only);
    ck_assert_int_eq(c.exp, 0);
    test_jwt(HS256, "{\"sub\":\"a\",\"read_only\":\"yes\"}", SECRET, tok);
    ck_assert_int_eq(verify_in(tok, SECRET, &any, &c), WS_AUTH_MALFORMED);
}
END_TEST

SUITE(auth,
      accepts_a_valid_token,
      sub_must_be_a_clean_name,
      refuses_bad_tokens,
      tampered_payload_is_refused,
      base64url,
      room_claims,
      read_only_and_exp_are_handed_back)
