/* test_handshake.c: routes, upgrade checks, refusals and the 101 answer. */
#include <stdio.h>
#include <string.h>

#include "jwt_helper.h"
#include "suites.h"
#include "ws/keys.h"
#include "ws/handshake.h"

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";

/* Parses a request built from a request line and extra header lines, then
 * runs the check with the given policy. The head buffer must outlive res. */
static char head[HTTP_REQ_MAX_HEAD];
static struct http_req req;

static void check(const char *method, const char *target, const char *headers,
                  const struct ws_hs_policy *pol, struct ws_hs_result *res)
{
    snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n", method, target,
             headers);
    size_t scanned = 0;
    ck_assert_int_gt(http_req_parse(head, strlen(head), &scanned, &req), 0);
    ws_hs_check(&req, pol, res);
}

#define UPGRADE                                                                                    \
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"                   \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static const struct ws_hs_policy OPEN = {0};

START_TEST(accept_key_from_rfc)
{
    /* RFC 6455 1.3: the worked example. */
    char out[29];
    ws_hs_accept_key(KEY, strlen(KEY), out);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

START_TEST(routes_with_and_without_prefix)
{
    struct ws_hs_result r;
    static const struct {
        const char *target;
        enum ws_hs_route route;
    } plain[] = {
        {"/api/chat-api/ws/stats", WS_HS_STATS},
        {"/ws/stats", WS_HS_STATS},
        {"/healthz", WS_HS_HEALTHZ},
        {"/readyz", WS_HS_READYZ},
        {"/metrics", WS_HS_METRICS},
        {"/", WS_HS_INDEX},
        {"/api/chat-api/", WS_HS_INDEX},
        {"/ws/stats?pretty=1", WS_HS_STATS},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        check("GET", plain[i].target, "", &OPEN, &r);
        ck_assert_msg(r.status == 0 && r.route == plain[i].route, "%s", plain[i].target);
    }
    /* Stats is never an upgrade, even when asked for one. */
    check("GET", "/ws/stats", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.route, WS_HS_STATS);

    check("GET", "/api/chat-api/ws", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.route, WS_HS_CHAT);
    ck_assert(!r.has_room);
    ck_assert_str_eq(r.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    check("GET", "/ws", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.route, WS_HS_CHAT);
    ck_assert(!r.has_room);

    check("GET", "/ws/lobby", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.route, WS_HS_CHAT);
    ck_assert(r.has_room);
    ck_assert_str_eq(r.room, "lobby");

    check("GET", "/api/chat-api/ws/team%3Aops", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.room, "team:ops");

    check("GET", "/api/chat-api/ws?room=lobby&x=1", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.room, "lobby");

    check("GET", "/api/chat-api/ws/lobby?room=lobby", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 0);
}
END_TEST

START_TEST(not_found_and_method)
{
    struct ws_hs_result r;
    static const char *const missing[] = {"/nope", "/api/chat-api", "/api/chat-api//",
                                          "/wss",  "/api/chat-api/healthz", "/api/chat-api/echo"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        check("GET", missing[i], UPGRADE, &OPEN, &r);
        ck_assert_msg(r.status == 404, "%s gave %d", missing[i], r.status);
    }
    check("POST", "/api/chat-api/ws", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_ptr_nonnull(strstr(r.extra_headers, "Allow: GET"));
    check("DELETE", "/healthz", "", &OPEN, &r);
    ck_assert_int_eq(r.status, 405);
}
END_TEST

START_TEST(echo_only_when_enabled)
{
    struct ws_hs_result r;
    struct ws_hs_policy pol = {.echo_enabled = true};
    check("GET", "/api/chat-api/echo", UPGRADE, &pol, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.route, WS_HS_ECHO);
    check("GET", "/api/chat-api/echo", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 404);
}
END_TEST

START_TEST(upgrade_refusals)
{
    struct ws_hs_result r;
    /* A plain GET on a WebSocket path. */
    check("GET", "/api/chat-api/ws", "", &OPEN, &r);
    ck_assert_int_eq(r.status, 426);
    ck_assert_ptr_nonnull(strstr(r.extra_headers, "Sec-WebSocket-Version: 13"));
    /* RFC 6455 4.4: an unsupported version gets 426 naming 13. */
    check("GET", "/ws",
          "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
          &OPEN, &r);
    ck_assert_int_eq(r.status, 426);
    ck_assert_ptr_nonnull(strstr(r.extra_headers, "Sec-WebSocket-Version: 13"));
    /* Connection without the upgrade token. */
    check("GET", "/ws",
          "Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
          &OPEN, &r);
    ck_assert_int_eq(r.status, 400);
    /* Upgrade and Connection are case-insensitive and may be lists. */
    check("GET", "/ws",
          "Upgrade: WebSocket\r\nConnection: keep-alive, UPGRADE\r\n"
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
          &OPEN, &r);
    ck_assert_int_eq(r.status, 0);
    /* Keys that are not the base64 of 16 bytes. */
    static const char *const keys[] = {"",
                                       "abc",
                                       "dGhlIHNhbXBsZSBub25jZQ",
                                       "dGhlIHNhbXBsZSBub25jZQ=x",
                                       "dGhlIHNhbXBsZSBub25jZ*==",
                                       "dGhlIHNhbXBsZSBub25jZQo="};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char h[256];
        snprintf(h, sizeof(h),
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n",
                 keys[i]);
        check("GET", "/ws", h, &OPEN, &r);
        ck_assert_msg(r.status == 400, "key '%s' gave %d", keys[i], r.status);
    }
    /* Two keys. */
    check("GET", "/ws", UPGRADE "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", &OPEN, &r);
    ck_assert_int_eq(r.status, 400);
}
END_TEST

START_TEST(http_1_0_is_refused)
{
    char h[512];
    snprintf(h, sizeof(h), "GET /ws HTTP/1.0\r\nHost: x\r\n" UPGRADE "\r\n");
    size_t scanned = 0;
    struct http_req rq;
    ck_assert_int_gt(http_req_parse(h, strlen(h), &scanned, &rq), 0);
    struct ws_hs_result r;
    ws_hs_check(&rq, &OPEN, &r);
    ck_assert_int_eq(r.status, 400);
}
END_TEST

START_TEST(room_names)
{
    struct ws_hs_result r;
    char target[512];
    char name128[129];
    memset(name128, 'a', 128);
    name128[128] = '\0';
    snprintf(target, sizeof(target), "/ws/%s", name128);
    check("GET", target, UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(strlen(r.room), 128);
    snprintf(target, sizeof(target), "/ws/%sa", name128);
    check("GET", target, UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 400);

    static const char *const bad[] = {
        "/ws/a%20b", "/ws/a/b",        "/ws/%zz",      "/ws/%",  "/ws/caf%C3%A9",
        "/ws?room=", "/ws?room=a%2Fb", "/ws/a?room=b", "/ws/%00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check("GET", bad[i], UPGRADE, &OPEN, &r);
        ck_assert_msg(r.status == 400, "%s gave %d", bad[i], r.status);
    }
    /* A good path room with a bad ?room= is refused, and carries no room. */
    check("GET", "/ws/lobby?room=bad!", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert(!r.has_room);
    ck_assert_str_eq(r.room, "");

    static const char *const good[] = {"/ws/A-Z_a.z:09", "/ws?room=x", "/ws/x?room=x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        check("GET", good[i], UPGRADE, &OPEN, &r);
        ck_assert_msg(r.status == 0, "%s gave %d", good[i], r.status);
    }
}
END_TEST

START_TEST(origin_allowlist)
{
    struct ws_hs_result r;
    char *origins[] = {"https://chat.example", "http://localhost:8080"};
    struct ws_hs_policy pol = {.origins = origins, .n_origins = 2};
    check("GET", "/ws", UPGRADE "Origin: https://evil.example\r\n", &pol, &r);
    ck_assert_int_eq(r.status, 403);
    check("GET", "/ws", UPGRADE "Origin: http://localhost:8080\r\n", &pol, &r);
    ck_assert_int_eq(r.status, 0);
    check("GET", "/ws", UPGRADE, &pol, &r); /* no Origin: not a browser */
    ck_assert_int_eq(r.status, 0);
    check("GET", "/ws", UPGRADE "Origin: https://evil.example\r\n", &OPEN, &r);
    ck_assert_int_eq(r.status, 0);
}
END_TEST

START_TEST(token_checks)
{
    struct ws_hs_result r;
    struct ws_hs_policy pol = {.auth_enabled = true,
                               .keys = {.algs = WS_ALG_HS256,
                                        .secret = (const uint8_t *)"k",
                                        .secret_len = 1},
                               .now_s = 1800000000};
    char tok[512], h[1024], target[1024];
    test_jwt("{\"alg\":\"HS256\"}", "{\"sub\":\"alice\"}", "k", tok);

    check("GET", "/ws/lobby", UPGRADE, &pol, &r);
    ck_assert_int_eq(r.status, 401);
    snprintf(h, sizeof(h), UPGRADE "Authorization: Bearer %s\r\n", tok);
    check("GET", "/ws/lobby", h, &pol, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.client_id, "alice");
    snprintf(target, sizeof(target), "/ws/lobby?token=%s", tok);
    check("GET", target, UPGRADE, &pol, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.client_id, "alice");

    test_jwt("{\"alg\":\"HS256\"}", "{\"sub\":\"alice\"}", "wrong", tok);
    snprintf(h, sizeof(h), UPGRADE "Authorization: Bearer %s\r\n", tok);
    check("GET", "/ws/lobby", h, &pol, &r);
    ck_assert_int_eq(r.status, 401);
    ck_assert_str_eq(r.reason, "token signature does not match");
    /* Without auth a token is ignored and there is no client id from it. */
    check("GET", "/ws/lobby", h, &OPEN, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.client_id, "");
}
END_TEST

START_TEST(writes_101)
{
    struct ws_hs_result r;
    check("GET", "/ws", UPGRADE, &OPEN, &r);
    char out[256];
    size_t n = ws_hs_write_101(out, sizeof(out), &r);
    out[n] = '\0';
    ck_assert_str_eq(out,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
                     "\r\n\r\n");
    ck_assert_uint_eq(ws_hs_write_101(out, 50, &r), 0);
}
END_TEST

START_TEST(query_params)
{
    struct http_str q = {"a=1&room=x%3Ay&roomy=2&flag", 27}, v;
    ck_assert(ws_hs_query_param(q, "room", &v));
    ck_assert_uint_eq(v.len, 5);
    ck_assert_mem_eq(v.p, "x%3Ay", 5);
    ck_assert(ws_hs_query_param(q, "flag", &v));
    ck_assert_uint_eq(v.len, 0);
    ck_assert(!ws_hs_query_param(q, "roo", &v));
    char out[16];
    ck_assert_int_eq(ws_hs_percent_decode("x%3Ay", 5, out, sizeof(out)), 3);
    ck_assert_mem_eq(out, "x:y", 3);
}
END_TEST

START_TEST(methods_and_repeated_rooms)
{
    struct ws_hs_result r;
    /* RFC 9110 9.1: methods are case-sensitive. */
    check("get", "/api/chat-api/ws", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 405);
    check("get", "/healthz", "", &OPEN, &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_ptr_nonnull(strstr(r.extra_headers, "Allow: GET, HEAD"));
    /* HEAD works on the plain routes, never on an upgrade. */
    const char *plain[] = {"/healthz", "/readyz", "/metrics", "/ws/stats", "/"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        check("HEAD", plain[i], "", &OPEN, &r);
        ck_assert_msg(r.status == 0 && r.head_only, "HEAD %s", plain[i]);
    }
    check("GET", "/healthz", "", &OPEN, &r);
    ck_assert(!r.head_only);
    check("HEAD", "/api/chat-api/ws", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 405);
    /* Every ?room= must agree, with each other and with the path. */
    check("GET", "/ws?room=a&room=b", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 400);
    check("GET", "/ws?room=a&room=a", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.room, "a");
    check("GET", "/ws/a?room=a&room=b", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 400);
    check("GET", "/ws?room=a&room=%zz", UPGRADE, &OPEN, &r);
    ck_assert_int_eq(r.status, 400);
}
END_TEST

SUITE(handshake,
      accept_key_from_rfc,
      methods_and_repeated_rooms,
      routes_with_and_without_prefix,
      not_found_and_method,
      echo_only_when_enabled,
      upgrade_refusals,
      http_1_0_is_refused,
      room_names,
      origin_allowlist,
      token_checks,
      writes_101,
      query_params)
