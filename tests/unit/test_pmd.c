/* test_pmd.c: the permessage-deflate negotiation table (RFC 7692 5, 7.1)
 * and the 101 answer that carries it. */
#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "ws/handshake.h"
#include "ws/pmd.h"

static char head[HTTP_REQ_MAX_HEAD];
static struct http_req req;

/* Negotiates over a request whose header lines are given. */
static unsigned negotiate(const char *headers, struct ws_pmd *out)
{
    snprintf(head, sizeof(head), "GET /api/chat-api/ws/lobby HTTP/1.1\r\nHost: x\r\n%s\r\n", headers);
    size_t scanned = 0;
    ck_assert_int_gt(http_req_parse(head, strlen(head), &scanned, &req), 0);
    return ws_pmd_negotiate(&req, out);
}

/* Whether the one header value is accepted, and with what. */
static struct ws_pmd offer(const char *value, unsigned *declined)
{
    char line[1024];
    snprintf(line, sizeof(line), "Sec-WebSocket-Extensions: %s\r\n", value);
    struct ws_pmd p;
    unsigned d = negotiate(line, &p);
    if (declined)
        *declined = d;
    return p;
}

START_TEST(the_parameters_each_alone)
{
    static const struct {
        const char *value;
        bool on, no_ctx, asked;
        uint8_t bits;
    } rows[] = {
        {"permessage-deflate", true, false, false, 15},
        {"permessage-deflate; client_max_window_bits", true, false, false, 15},
        {"permessage-deflate; client_max_window_bits=10", true, false, false, 15},
        {"permessage-deflate; client_no_context_takeover", true, false, false, 15},
        {"permessage-deflate; server_no_context_takeover", true, true, false, 15},
        {"permessage-deflate; server_max_window_bits=8", true, false, true, 8},
        {"permessage-deflate; server_max_window_bits=12", true, false, true, 12},
        {"permessage-deflate; server_max_window_bits=15", true, false, true, 15},
        {"permessage-deflate; server_max_window_bits=\"13\"", true, false, true, 13},
        {"PerMessage-Deflate ;  Server_No_Context_Takeover ", true, true, false, 15},
        {"permessage-deflate;server_no_context_takeover;client_no_context_takeover;"
         "server_max_window_bits=9;client_max_window_bits=9",
         true, true, true, 9},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct ws_pmd p = offer(rows[i].value, NULL);
        ck_assert_msg(p.on == rows[i].on && p.server_no_context == rows[i].no_ctx &&
                          p.server_bits_asked == rows[i].asked && p.server_bits == rows[i].bits,
                      "%s", rows[i].value);
    }
}
END_TEST

START_TEST(malformed_or_unknown_offers_are_declined)
{
    static const char *const bad[] = {
        "permessage-deflate; server_max_window_bits",      /* a value is required */
        "permessage-deflate; server_max_window_bits=7",    /* 8..15 */
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",   /* no leading zeros */
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=\"\"",
        "permessage-deflate; server_no_context_takeover=1", /* takes no value */
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; mux",                          /* unknown parameter */
        "permessage-deflate; ",
        "permessage-deflate; =10",
        "permessage-deflate; server_max_window_bits=\"10",   /* an open quote */
        "permessage-deflate server_no_context_takeover",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned declined;
        struct ws_pmd p = offer(bad[i], &declined);
        ck_assert_msg(!p.on && declined == 1, "%s", bad[i]);
    }
}
END_TEST

START_TEST(the_first_offer_we_can_honour_wins)
{
    unsigned declined;
    /* A bad offer, then a good one: the good one, the bad one counted. */
    struct ws_pmd p = offer("permessage-deflate; server_max_window_bits=20, "
                            "permessage-deflate; server_no_context_takeover, permessage-deflate",
                            &declined);
    ck_assert(p.on && p.server_no_context);
    ck_assert_uint_eq(declined, 1);
    /* Other extensions (with quoted commas in their values) are passed over. */
    p = offer("x-webkit-deflate-frame, foo; a=\"b,c\"; d, permessage-deflate; "
              "server_max_window_bits=10",
              &declined);
    ck_assert(p.on && p.server_bits == 10);
    ck_assert_uint_eq(declined, 0);
    /* Offers spread over several headers are read in order. */
    declined = negotiate("Sec-WebSocket-Extensions: permessage-deflate; bogus\r\n"
                         "Sec-WebSocket-Extensions: , permessage-deflate; "
                         "client_max_window_bits\r\n",
                         &p);
    ck_assert(p.on && !p.server_no_context && p.server_bits == 15);
    ck_assert_uint_eq(declined, 1);
    /* The old WebKit extension alone, or nothing: no compression. */
    p = offer("x-webkit-deflate-frame", &declined);
    ck_assert(!p.on && declined == 0);
    negotiate("", &p);
    ck_assert(!p.on);
}
END_TEST

START_TEST(what_each_agreement_lets_the_server_send)
{
    struct ws_pmd p = offer("permessage-deflate", NULL);
    ck_assert(ws_pmd_takes_stream(&p) && ws_pmd_takes_alone(&p));
    p = offer("permessage-deflate; server_no_context_takeover", NULL);
    ck_assert(!ws_pmd_takes_stream(&p) && ws_pmd_takes_alone(&p));
    p = offer("permessage-deflate; server_max_window_bits=15", NULL);
    ck_assert(ws_pmd_takes_stream(&p) && ws_pmd_takes_alone(&p));
    p = offer("permessage-deflate; server_max_window_bits=14", NULL);
    ck_assert(!ws_pmd_takes_stream(&p) && !ws_pmd_takes_alone(&p));
}
END_TEST

START_TEST(the_answer_names_what_was_agreed)
{
    char out[512];
    struct ws_pmd p = offer("permessage-deflate; client_max_window_bits", NULL);
    ck_assert_uint_gt(ws_pmd_write(out, sizeof(out), &p), 0);
    ck_assert_str_eq(out, "Sec-WebSocket-Extensions: permessage-deflate; "
                          "client_no_context_takeover\r\n");
    p = offer("permessage-deflate; server_no_context_takeover; server_max_window_bits=9", NULL);
    ws_pmd_write(out, sizeof(out), &p);
    ck_assert_str_eq(out, "Sec-WebSocket-Extensions: permessage-deflate; "
                          "client_no_context_takeover; server_no_context_takeover; "
                          "server_max_window_bits=9\r\n");
    ck_assert_uint_eq(ws_pmd_write(out, 20, &p), 0);
    p.on = false;
    ck_assert_uint_eq(ws_pmd_write(out, sizeof(out), &p), 0);
}
END_TEST

START_TEST(the_upgrade_carries_it_only_when_compression_is_on)
{
    static const char up[] =
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    struct ws_hs_policy pol = {.compression = true};
    struct ws_hs_result r;
    char out[512];
    for (int on = 0; on < 2; on++) {
        pol.compression = on;
        struct ws_pmd ignored;
        negotiate(up, &ignored);
        ws_hs_check(&req, &pol, &r);
        ck_assert_int_eq(r.status, 0);
        size_t n = ws_hs_write_101(out, sizeof(out), &r);
        ck_assert_uint_gt(n, 0);
        out[n] = '\0';
        ck_assert_int_eq(strstr(out, "permessage-deflate") != NULL, on);
        ck_assert(strstr(out, "\r\n\r\n") == out + n - 4);
    }
}
END_TEST

SUITE(pmd, the_parameters_each_alone, malformed_or_unknown_offers_are_declined,
      the_first_offer_we_can_honour_wins, what_each_agreement_lets_the_server_send,
      the_answer_names_what_was_agreed, the_upgrade_carries_it_only_when_compression_is_on)
