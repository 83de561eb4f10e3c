/* test_http.c: the request-head parser and plain answers. */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "suites.h"

static const char REQ[] = "GET /api/chat-api/ws/lobby?token=abc&x=1 HTTP/1.1\r\n"
                          "Host: localhost:8080\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: keep-alive, Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "X-Empty:\r\n"
                          "X-Padded: \t value \t\r\n"
                          "\r\n";

static int parse_str(const char *s, struct http_req *req)
{
    size_t scanned = 0;
    return http_req_parse(s, strlen(s), &scanned, req);
}

START_TEST(parses_a_request)
{
    struct http_req req;
    ck_assert_int_eq(parse_str(REQ, &req), (int)strlen(REQ));
    ck_assert(http_str_ieq(req.method, "GET"));
    ck_assert_uint_eq(req.path.len, strlen("/api/chat-api/ws/lobby"));
    ck_assert_mem_eq(req.path.p, "/api/chat-api/ws/lobby", req.path.len);
    ck_assert_uint_eq(req.query.len, strlen("token=abc&x=1"));
    ck_assert_mem_eq(req.query.p, "token=abc&x=1", req.query.len);
    ck_assert_int_eq(req.minor_version, 1);
    ck_assert_uint_eq(req.nheaders, 7);
    const struct http_str *h = http_req_header(&req, "sec-websocket-key");
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(h->len, 24);
    h = http_req_header(&req, "X-Padded");
    ck_assert_uint_eq(h->len, 5);
    ck_assert_mem_eq(h->p, "value", 5);
    ck_assert_uint_eq(http_req_header(&req, "X-Empty")->len, 0);
    ck_assert_ptr_null(http_req_header(&req, "Origin"));
    ck_assert(http_req_header_has_token(&req, "Connection", "upgrade"));
    ck_assert(http_req_header_has_token(&req, "connection", "KEEP-ALIVE"));
    ck_assert(!http_req_header_has_token(&req, "Connection", "close"));
    ck_assert(!http_req_header_has_token(&req, "Connection", "keep"));
}
END_TEST

START_TEST(every_split_point)
{
    size_t len = strlen(REQ);
    for (size_t cut = 0; cut < len; cut++) {
        struct http_req req;
        size_t scanned = 0;
        ck_assert_int_eq(http_req_parse(REQ, cut, &scanned, &req), HTTP_REQ_NEED_MORE);
        ck_assert_uint_eq(scanned, cut);
        ck_assert_int_eq(http_req_parse(REQ, len, &scanned, &req), (int)len);
        ck_assert_uint_eq(req.nheaders, 7);
    }
    /* One byte at a time, as a slowloris client sends it: each call only
     * looks at what is new, and the result is the same. */
    struct http_req req;
    size_t scanned = 0;
    for (size_t i = 1; i < len; i++)
        ck_assert_int_eq(http_req_parse(REQ, i, &scanned, &req), HTTP_REQ_NEED_MORE);
    ck_assert_int_eq(http_req_parse(REQ, len, &scanned, &req), (int)len);
    ck_assert_uint_eq(req.nheaders, 7);
}
END_TEST

START_TEST(bare_lf_and_no_query)
{
    struct http_req req;
    const char *r = "GET /healthz HTTP/1.0\nHost: x\n\n";
    ck_assert_int_eq(parse_str(r, &req), (int)strlen(r));
    ck_assert_int_eq(req.minor_version, 0);
    ck_assert_uint_eq(req.query.len, 0);
    ck_assert_uint_eq(req.nheaders, 1);
}
END_TEST

START_TEST(refuses_malformed_heads)
{
    static const char *const bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",                      /* two spaces */
        "GET / HTTP/2.0\r\n\r\n",                       /* not HTTP/1.x */
        "GET / HTTP/1.1 \r\n\r\n",                      /* trailing space */
        "GET /\r\n\r\n",                                /* no version */
        "G(T / HTTP/1.1\r\n\r\n",                       /* not a token */
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",           /* space before the colon */
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", /* obsolete folding */
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", /* control character */
        "GET /a\177b HTTP/1.1\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_req req;
        ck_assert_msg(parse_str(bad[i], &req) == HTTP_REQ_BAD, "case %zu", i);
    }
}
END_TEST

START_TEST(refuses_garbage_at_first_byte)
{
    /* A TLS ClientHello starts with 0x16: refused without waiting for more. */
    const char hello[] = "\x16\x03\x01\x02";
    struct http_req req;
    size_t scanned = 0;
    ck_assert_int_eq(http_req_parse(hello, 1, &scanned, &req), HTTP_REQ_BAD);
}
END_TEST

START_TEST(limits)
{
    char *big = malloc(HTTP_REQ_MAX_HEAD + 100);
    strcpy(big, "GET / HTTP/1.1\r\nX: ");
    size_t n = strlen(big);
    memset(big + n, 'a', HTTP_REQ_MAX_HEAD + 100 - n);
    struct http_req req;
    size_t scanned = 0;
    ck_assert_int_eq(http_req_parse(big, HTTP_REQ_MAX_HEAD - 1, &scanned, &req),
                     HTTP_REQ_NEED_MORE);
    ck_assert_int_eq(http_req_parse(big, HTTP_REQ_MAX_HEAD, &scanned, &req), HTTP_REQ_TOO_LARGE);
    free(big);

    /* 65 headers are too many; 64 are fine. */
    char many[4096] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 64; i++)
        strcat(many, "A: b\r\n");
    char more[4096];
    strcpy(more, many);
    strcat(many, "\r\n");
    strcat(more, "A: b\r\n\r\n");
    ck_assert_int_gt(parse_str(many, &req), 0);
    ck_assert_uint_eq(req.nheaders, 64);
    ck_assert_int_eq(parse_str(more, &req), HTTP_REQ_TOO_LARGE);
}
END_TEST

START_TEST(formats_answers)
{
    char out[512];
    size_t n = http_resp_format(out, sizeof(out), 426, "text/plain",
                                "Sec-WebSocket-Version: 13\r\n", "upgrade\n", 8);
    ck_assert_uint_gt(n, 0);
    out[n] = '\0';
    ck_assert(strstr(out, "HTTP/1.1 426 Upgrade Required\r\n") == out);
    ck_assert_ptr_nonnull(strstr(out, "Content-Length: 8\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "Sec-WebSocket-Version: 13\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "\r\n\r\nupgrade\n"));
    ck_assert_uint_eq(http_resp_format(out, 20, 200, "text/plain", NULL, "x", 1), 0);
}
END_TEST

START_TEST(absolute_form)
{
    /* RFC 9112 3.2.2: the absolute-form is routed by its path and query. */
    struct http_req req;
    const char *abs = "GET http://chat.example:8080/api/chat-api/ws/lobby?x=1 HTTP/1.1\r\n"
                      "Host: chat.example:8080\r\n\r\n";
    ck_assert_int_eq(parse_str(abs, &req), (int)strlen(abs));
    ck_assert_uint_eq(req.path.len, strlen("/api/chat-api/ws/lobby"));
    ck_assert_mem_eq(req.path.p, "/api/chat-api/ws/lobby", req.path.len);
    ck_assert_uint_eq(req.query.len, 3);
    const char *bare = "GET HTTPS://h?q=2 HTTP/1.1\r\nHost: h\r\n\r\n";
    ck_assert_int_eq(parse_str(bare, &req), (int)strlen(bare));
    ck_assert_uint_eq(req.path.len, 1);
    ck_assert_mem_eq(req.path.p, "/", 1);
    ck_assert_mem_eq(req.query.p, "q=2", 3);
    /* Only http and https are absolute forms; anything else is a path. */
    const char *other = "GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n";
    ck_assert_int_eq(parse_str(other, &req), (int)strlen(other));
    ck_assert_mem_eq(req.path.p, "ftp://h/x", req.path.len);
}
END_TEST

SUITE(http,
      parses_a_request,
      absolute_form,
      every_split_point,
      bare_lf_and_no_query,
      refuses_malformed_heads,
      refuses_garbage_at_first_byte,
      limits,
      formats_answers)
