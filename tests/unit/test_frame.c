/* test_frame.c: the RFC 6455 frame parser and encoder. */
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "ws/frame.h"

#define MAX_EVENTS 32

/* An event copied out of the parser, so runs can be compared. */
struct rec {
    enum ws_event_type type;
    uint8_t opcode;
    uint16_t close_code;
    int err;
    size_t len;
    uint8_t data[70000];
};

struct run {
    size_t n;
    struct rec ev[MAX_EVENTS];
};

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Feeds one chunk (copied, since the parser unmasks in place) and records
 * every event up to WS_EV_NONE or an error. */
static void feed(struct ws_frame_parser *p, const uint8_t *bytes, size_t len, struct run *r)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, bytes, len);
    size_t off = 0;
    for (;;) {
        struct ws_event ev;
        size_t used = ws_frame_parse(p, copy + off, len - off, &ev);
        off += used;
        if (ev.type == WS_EV_NONE) {
            ck_assert_uint_eq(off, len);
            break;
        }
        ck_assert_uint_lt(r->n, MAX_EVENTS);
        struct rec *e = &r->ev[r->n++];
        e->type = ev.type;
        e->opcode = ev.opcode;
        e->close_code = ev.close_code;
        e->err = ev.err;
        e->len = ev.len;
        ck_assert_uint_le(ev.len, sizeof(e->data));
        if (ev.len)
            memcpy(e->data, ev.data, ev.len);
        if (ev.type == WS_EV_ERROR)
            break;
    }
    free(copy);
}

/* Parses a whole input split into pieces of `step` bytes. */
static struct run *parse_steps(enum ws_role role, size_t max, const uint8_t *in, size_t len,
                               size_t step)
{
    struct run *r = calloc(1, sizeof(*r));
    struct ws_frame_parser p;
    ws_frame_parser_init(&p, role, max);
    for (size_t off = 0; off < len && (r->n == 0 || r->ev[r->n - 1].type != WS_EV_ERROR);) {
        size_t n = len - off < step ? len - off : step;
        feed(&p, in + off, n, r);
        off += n;
    }
    ws_frame_parser_free(&p);
    return r;
}

static struct run *parse_all(enum ws_role role, size_t max, const uint8_t *in, size_t len)
{
    return parse_steps(role, max, in, len, len ? len : 1);
}

static void assert_same(const struct run *a, const struct run *b, const char *what, size_t at)
{
    ck_assert_msg(a->n == b->n, "%s %zu: %zu events vs %zu", what, at, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        ck_assert_msg(a->ev[i].type == b->ev[i].type && a->ev[i].len == b->ev[i].len &&
                          a->ev[i].close_code == b->ev[i].close_code &&
                          a->ev[i].err == b->ev[i].err && a->ev[i].opcode == b->ev[i].opcode &&
                          memcmp(a->ev[i].data, b->ev[i].data, a->ev[i].len) == 0,
                      "%s %zu: event %zu differs", what, at, i);
    }
}

/* Appends a masked client frame to buf. */
static size_t put(uint8_t *buf, uint8_t op, int fin, const void *pl, size_t n)
{
    return ws_frame_encode_masked(buf, 80000, op, fin, pl, n, MASK);
}

/* Returns the single error a client input produces. */
static int error_of(const uint8_t *in, size_t len, size_t max)
{
    struct run *r = parse_all(WS_ROLE_SERVER, max, in, len);
    int err = (r->n > 0 && r->ev[r->n - 1].type == WS_EV_ERROR) ? r->ev[r->n - 1].err : 0;
    free(r);
    return err;
}

/* RFC 6455 5.7: the examples, byte for byte. */
START_TEST(rfc_examples_parse)
{
    const uint8_t unmasked_hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    const uint8_t masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    const uint8_t fragmented[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    const uint8_t masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};

    struct run *r = parse_all(WS_ROLE_CLIENT, 1 << 20, unmasked_hello, sizeof(unmasked_hello));
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->ev[0].type, WS_EV_MESSAGE);
    ck_assert_int_eq(r->ev[0].opcode, WS_OP_TEXT);
    ck_assert_mem_eq(r->ev[0].data, "Hello", 5);
    free(r);

    r = parse_all(WS_ROLE_SERVER, 1 << 20, masked_hello, sizeof(masked_hello));
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->ev[0].type, WS_EV_MESSAGE);
    ck_assert_uint_eq(r->ev[0].len, 5);
    ck_assert_mem_eq(r->ev[0].data, "Hello", 5);
    free(r);

    r = parse_all(WS_ROLE_CLIENT, 1 << 20, fragmented, sizeof(fragmented));
    ck_assert_uint_eq(r->n, 1);
    ck_assert_uint_eq(r->ev[0].len, 5);
    ck_assert_mem_eq(r->ev[0].data, "Hello", 5);
    free(r);

    r = parse_all(WS_ROLE_CLIENT, 1 << 20, ping, sizeof(ping));
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->ev[0].type, WS_EV_PING);
    ck_assert_mem_eq(r->ev[0].data, "Hello", 5);
    free(r);

    r = parse_all(WS_ROLE_SERVER, 1 << 20, masked_pong, sizeof(masked_pong));
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->ev[0].type, WS_EV_PONG);
    ck_assert_mem_eq(r->ev[0].data, "Hello", 5);
    free(r);
}
END_TEST

START_TEST(rfc_examples_encode)
{
    uint8_t out[70000];
    const uint8_t unmasked_hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    ck_assert_uint_eq(ws_frame_encode(out, sizeof(out), WS_OP_TEXT, true, "Hello", 5), 7);
    ck_assert_mem_eq(out, unmasked_hello, 7);

    const uint8_t masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    ck_assert_uint_eq(ws_frame_encode_masked(out, sizeof(out), WS_OP_TEXT, true, "Hello", 5, MASK),
                      11);
    ck_assert_mem_eq(out, masked_hello, 11);

    const uint8_t first[] = {0x01, 0x03, 0x48, 0x65, 0x6c}, last[] = {0x80, 0x02, 0x6c, 0x6f};
    ck_assert_uint_eq(ws_frame_encode(out, sizeof(out), WS_OP_TEXT, false, "Hel", 3), 5);
    ck_assert_mem_eq(out, first, 5);
    ck_assert_uint_eq(ws_frame_encode(out, sizeof(out), WS_OP_CONT, true, "lo", 2), 4);
    ck_assert_mem_eq(out, last, 4);

    const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    ck_assert_uint_eq(ws_frame_encode(out, sizeof(out), WS_OP_PING, true, "Hello", 5), 7);
    ck_assert_mem_eq(out, ping, 7);

    /* 256 bytes of binary: 0x82 0x7E 0x0100; 64 KiB: 0x82 0x7F 0x0000000000010000. */
    uint8_t *zeros = calloc(1, 65536);
    ck_assert_uint_eq(ws_frame_encode(out, sizeof(out), WS_OP_BINARY, true, zeros, 256), 260);
    const uint8_t h256[] = {0x82, 0x7e, 0x01, 0x00};
    ck_assert_mem_eq(out, h256, 4);
    ck_assert_uint_eq(ws_frame_encode(out, sizeof(out), WS_OP_BINARY, true, zeros, 65536), 65546);
    const uint8_t h64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    ck_assert_mem_eq(out, h64k, 10);
    free(zeros);
}
END_TEST

START_TEST(shortest_length_form)
{
    ck_assert_uint_eq(ws_frame_header_len(0), 2);
    ck_assert_uint_eq(ws_frame_header_len(125), 2);
    ck_assert_uint_eq(ws_frame_header_len(126), 4);
    ck_assert_uint_eq(ws_frame_header_len(65535), 4);
    ck_assert_uint_eq(ws_frame_header_len(65536), 10);
    uint8_t out[4];
    ck_assert_uint_eq(ws_frame_encode(out, sizeof(out), WS_OP_TEXT, true, "abc", 3), 0);
}
END_TEST

/* A stream of client frames exercising every path of the parser. */
static size_t build_stream(uint8_t *buf)
{
    size_t n = 0;
    static uint8_t big[300];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)i;
    n += put(buf + n, WS_OP_TEXT, 1, "Hello", 5);
    n += put(buf + n, WS_OP_PING, 1, "x", 1);
    n += put(buf + n, WS_OP_TEXT, 0, "frag\xe2\x82", 6); /* EURO SIGN cut between fragments */
    n += put(buf + n, WS_OP_PING, 1, "in-between", 10);
    n += put(buf + n, WS_OP_CONT, 0, "", 0);
    n += put(buf + n, WS_OP_CONT, 1, "\xac-end", 5);
    n += put(buf + n, WS_OP_BINARY, 1, big, sizeof(big));
    n += put(buf + n, WS_OP_TEXT, 1, "", 0);
    n += put(buf + n, WS_OP_PONG, 1, "", 0);
    n += put(buf + n, WS_OP_CLOSE, 1,
             "\x03\xe8"
             "bye",
             5);
    return n;
}

START_TEST(stream_events)
{
    uint8_t buf[1024];
    size_t n = build_stream(buf);
    struct run *r = parse_all(WS_ROLE_SERVER, 1 << 20, buf, n);
    ck_assert_uint_eq(r->n, 8);
    ck_assert_int_eq(r->ev[0].type, WS_EV_MESSAGE);
    ck_assert_mem_eq(r->ev[0].data, "Hello", 5);
    ck_assert_int_eq(r->ev[1].type, WS_EV_PING);
    /* RFC 6455 5.4: a control frame between fragments is delivered at once. */
    ck_assert_int_eq(r->ev[2].type, WS_EV_PING);
    ck_assert_mem_eq(r->ev[2].data, "in-between", 10);
    ck_assert_int_eq(r->ev[3].type, WS_EV_MESSAGE);
    ck_assert_uint_eq(r->ev[3].len, 11);
    ck_assert_mem_eq(r->ev[3].data, "frag\xe2\x82\xac-end", 11);
    ck_assert_int_eq(r->ev[4].type, WS_EV_MESSAGE);
    ck_assert_int_eq(r->ev[4].opcode, WS_OP_BINARY);
    ck_assert_uint_eq(r->ev[4].len, 300);
    ck_assert_uint_eq(r->ev[4].data[299], 299 & 0xff);
    ck_assert_int_eq(r->ev[5].type, WS_EV_MESSAGE);
    ck_assert_uint_eq(r->ev[5].len, 0);
    ck_assert_int_eq(r->ev[6].type, WS_EV_PONG);
    ck_assert_int_eq(r->ev[7].type, WS_EV_CLOSE);
    ck_assert_uint_eq(r->ev[7].close_code, 1000);
    free(r);
}
END_TEST

START_TEST(every_split_point_gives_same_events)
{
    uint8_t buf[1024];
    size_t n = build_stream(buf);
    struct run *whole = parse_all(WS_ROLE_SERVER, 1 << 20, buf, n);
    ck_assert_uint_eq(whole->n, 8);
    ck_assert_int_eq(whole->ev[7].type, WS_EV_CLOSE);
    ck_assert_uint_eq(whole->ev[7].close_code, 1000);
    ck_assert_mem_eq(whole->ev[7].data, "bye", 3);

    for (size_t cut = 0; cut <= n; cut++) {
        struct run *r = calloc(1, sizeof(*r));
        struct ws_frame_parser p;
        ws_frame_parser_init(&p, WS_ROLE_SERVER, 1 << 20);
        feed(&p, buf, cut, r);
        feed(&p, buf + cut, n - cut, r);
        ws_frame_parser_free(&p);
        assert_same(whole, r, "cut at", cut);
        free(r);
    }
    for (size_t step = 1; step <= 16; step++) {
        struct run *r = parse_steps(WS_ROLE_SERVER, 1 << 20, buf, n, step);
        assert_same(whole, r, "pieces of", step);
        free(r);
    }
    free(whole);
}
END_TEST

START_TEST(protocol_errors)
{
    uint8_t buf[512];
    size_t n;

    /* RFC 6455 5.1: a client frame without a mask. */
    n = ws_frame_encode(buf, sizeof(buf), WS_OP_TEXT, true, "hi", 2);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_PROTOCOL);

    /* RFC 6455 5.2: each reserved bit. */
    for (int bit = 0x40; bit >= 0x10; bit >>= 1) {
        n = put(buf, WS_OP_TEXT, 1, "hi", 2);
        buf[0] |= (uint8_t)bit;
        ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_PROTOCOL);
    }

    /* Every reserved opcode. */
    static const uint8_t reserved[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof(reserved); i++) {
        n = put(buf, reserved[i], 1, "hi", 2);
        ck_assert_msg(error_of(buf, n, 1000) == WS_ERR_PROTOCOL, "opcode %u", reserved[i]);
    }

    /* RFC 6455 5.5: a control frame over 125 bytes, and a fragmented one. */
    uint8_t big[126] = {0};
    n = put(buf, WS_OP_PING, 1, big, 126);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_PROTOCOL);
    n = put(buf, WS_OP_PING, 0, "x", 1);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_PROTOCOL);
    n = put(buf, WS_OP_CLOSE, 0, "", 0);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_PROTOCOL);

    /* A continuation with nothing to continue. */
    n = put(buf, WS_OP_CONT, 1, "x", 1);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_PROTOCOL);

    /* A new data frame inside a fragmented message. */
    n = put(buf, WS_OP_TEXT, 0, "a", 1);
    n += put(buf + n, WS_OP_TEXT, 1, "b", 1);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_PROTOCOL);
    n = put(buf, WS_OP_BINARY, 0, "a", 1);
    n += put(buf + n, WS_OP_TEXT, 1, "b", 1);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_PROTOCOL);
}
END_TEST

START_TEST(non_minimal_and_oversized_lengths)
{
    /* 16-bit length holding a value that fits in 7 bits. */
    const uint8_t len16[] = {0x81, 0xFE, 0x00, 0x05, 1, 2, 3, 4};
    ck_assert_int_eq(error_of(len16, sizeof(len16), 1 << 20), WS_ERR_PROTOCOL);
    /* 64-bit length holding a value that fits in 16 bits. */
    const uint8_t len64[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 1, 2, 3, 4};
    ck_assert_int_eq(error_of(len64, sizeof(len64), 1 << 20), WS_ERR_PROTOCOL);
    /* RFC 6455 5.2: the most significant bit of a 64-bit length must be 0. */
    const uint8_t top[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0x01, 0, 0, 1, 2, 3, 4};
    ck_assert_int_eq(error_of(top, sizeof(top), 1 << 20), WS_ERR_PROTOCOL);
}
END_TEST

START_TEST(size_limit_from_header_before_payload)
{
    uint8_t buf[512], payload[200];
    memset(payload, 'a', sizeof(payload));
    /* Exactly the limit passes. */
    size_t n = put(buf, WS_OP_TEXT, 1, payload, 100);
    struct run *r = parse_all(WS_ROLE_SERVER, 100, buf, n);
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->ev[0].type, WS_EV_MESSAGE);
    free(r);
    /* One byte over fails on the header alone: feed only the 6 header bytes. */
    n = put(buf, WS_OP_TEXT, 1, payload, 101);
    r = parse_all(WS_ROLE_SERVER, 100, buf, 6);
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->ev[0].type, WS_EV_ERROR);
    ck_assert_int_eq(r->ev[0].err, WS_ERR_TOO_BIG);
    ck_assert_uint_eq(ws_close_code_for(r->ev[0].err), 1009);
    free(r);
    /* Fragments that add up to one byte over fail at the second header. */
    n = put(buf, WS_OP_TEXT, 0, payload, 60);
    size_t first = n;
    n += put(buf + n, WS_OP_CONT, 1, payload, 41);
    r = parse_all(WS_ROLE_SERVER, 100, buf, first + 6);
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->ev[0].err, WS_ERR_TOO_BIG);
    free(r);
}
END_TEST

START_TEST(invalid_utf8_text_fails_fast)
{
    uint8_t buf[512];
    /* A single bad frame. */
    size_t n = put(buf, WS_OP_TEXT, 1, "ok\xed\xa0\x80", 5);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_UTF8);
    ck_assert_uint_eq(ws_close_code_for(WS_ERR_UTF8), 1007);
    /* A message ending inside a sequence. */
    n = put(buf, WS_OP_TEXT, 1, "ok\xe2\x82", 4);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_UTF8);
    /* Fail before the message ends: the first fragment is already bad. */
    n = put(buf, WS_OP_TEXT, 0, "\xc0\xaf", 2);
    struct run *r = parse_all(WS_ROLE_SERVER, 1000, buf, n);
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->ev[0].err, WS_ERR_UTF8);
    free(r);
    /* Fail inside a frame whose payload has not all arrived yet. */
    n = put(buf, WS_OP_TEXT, 1,
            "abc\xff"
            "defghijklmnop",
            17);
    r = parse_all(WS_ROLE_SERVER, 1000, buf, 6 + 5);
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->ev[0].err, WS_ERR_UTF8);
    free(r);
    /* Binary messages are not text: any bytes pass. */
    n = put(buf, WS_OP_BINARY, 1, "\xff\xfe", 2);
    r = parse_all(WS_ROLE_SERVER, 1000, buf, n);
    ck_assert_int_eq(r->ev[0].type, WS_EV_MESSAGE);
    free(r);
}
END_TEST

START_TEST(close_frames)
{
    uint8_t buf[256];
    /* Empty close: no code. */
    size_t n = put(buf, WS_OP_CLOSE, 1, "", 0);
    struct run *r = parse_all(WS_ROLE_SERVER, 1000, buf, n);
    ck_assert_int_eq(r->ev[0].type, WS_EV_CLOSE);
    ck_assert_uint_eq(r->ev[0].close_code, 0);
    free(r);
    /* RFC 6455 5.5.1: one byte of payload cannot hold a code. */
    n = put(buf, WS_OP_CLOSE, 1, "\x03", 1);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_PROTOCOL);
    /* RFC 6455 7.4: codes that may and may not be sent. */
    static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const uint16_t invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        uint8_t pl[2] = {(uint8_t)(valid[i] >> 8), (uint8_t)valid[i]};
        n = put(buf, WS_OP_CLOSE, 1, pl, 2);
        r = parse_all(WS_ROLE_SERVER, 1000, buf, n);
        ck_assert_msg(r->ev[0].type == WS_EV_CLOSE && r->ev[0].close_code == valid[i], "code %u",
                      valid[i]);
        free(r);
    }
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        uint8_t pl[2] = {(uint8_t)(invalid[i] >> 8), (uint8_t)invalid[i]};
        n = put(buf, WS_OP_CLOSE, 1, pl, 2);
        ck_assert_msg(error_of(buf, n, 1000) == WS_ERR_PROTOCOL, "code %u", invalid[i]);
    }
    /* A reason that is not UTF-8 is 1007. */
    n = put(buf, WS_OP_CLOSE, 1, "\x03\xe8\xce\xba\xed\xa0\x80", 7);
    ck_assert_int_eq(error_of(buf, n, 1000), WS_ERR_UTF8);
}
END_TEST

START_TEST(errors_are_sticky)
{
    uint8_t buf[64];
    size_t n = ws_frame_encode(buf, sizeof(buf), WS_OP_TEXT, true, "hi", 2);
    struct ws_frame_parser p;
    ws_frame_parser_init(&p, WS_ROLE_SERVER, 1000);
    struct ws_event ev;
    ws_frame_parse(&p, buf, n, &ev);
    ck_assert_int_eq(ev.type, WS_EV_ERROR);
    /* A good frame afterwards changes nothing and consumes nothing. */
    n = put(buf, WS_OP_TEXT, 1, "hi", 2);
    ck_assert_uint_eq(ws_frame_parse(&p, buf, n, &ev), 0);
    ck_assert_int_eq(ev.type, WS_EV_ERROR);
    ck_assert_int_eq(ev.err, WS_ERR_PROTOCOL);
    ws_frame_parser_free(&p);
}
END_TEST

START_TEST(client_role_refuses_masked_frames)
{
    uint8_t buf[64];
    size_t n = put(buf, WS_OP_TEXT, 1, "hi", 2);
    struct run *r = parse_all(WS_ROLE_CLIENT, 1000, buf, n);
    ck_assert_int_eq(r->ev[0].err, WS_ERR_PROTOCOL);
    free(r);
}
END_TEST

START_TEST(close_encoder)
{
    uint8_t out[256];
    const uint8_t expect[] = {0x88, 0x02, 0x03, 0xe9};
    ck_assert_uint_eq(ws_frame_encode_close(out, sizeof(out), 1001, NULL, 0), 4);
    ck_assert_mem_eq(out, expect, 4);
    ck_assert_uint_eq(ws_frame_encode_close(out, sizeof(out), 0, "ignored", 7), 2);
    /* A long reason is cut to 123 bytes at a character boundary. */
    char reason[200];
    memset(reason, 'a', 122);
    memcpy(reason + 122, "\xe2\x82\xac", 3); /* a 3-byte character across byte 123 */
    size_t n = ws_frame_encode_close(out, sizeof(out), 1000, reason, 125);
    ck_assert_uint_eq(n, 2 + 2 + 122);
    /* The result parses as a valid close (as a client would see it). */
    struct run *r = parse_all(WS_ROLE_CLIENT, 1000, out, n);
    ck_assert_int_eq(r->ev[0].type, WS_EV_CLOSE);
    ck_assert_uint_eq(r->ev[0].close_code, 1000);
    free(r);
}
END_TEST

START_TEST(shrink_releases_idle_buffer)
{
    uint8_t buf[256];
    struct ws_frame_parser p;
    ws_frame_parser_init(&p, WS_ROLE_SERVER, 1000);
    size_t n = put(buf, WS_OP_TEXT, 0, "abc", 3);
    struct run *r = calloc(1, sizeof(*r));
    feed(&p, buf, n, r);
    ck_assert_ptr_nonnull(p.msg);
    ws_frame_parser_shrink(&p); /* a message is in progress: kept */
    ck_assert_ptr_nonnull(p.msg);
    n = put(buf, WS_OP_CONT, 1, "def", 3);
    feed(&p, buf, n, r);
    ck_assert_uint_eq(r->n, 1);
    ck_assert_mem_eq(r->ev[0].data, "abcdef", 6);
    ws_frame_parser_shrink(&p);
    ck_assert_ptr_null(p.msg);
    free(r);
    ws_frame_parser_free(&p);
}
END_TEST

/* One whole client input through a parser that agreed permessage-deflate
 * (deflate on) or not; returns the first event and its deflated flag. */
static struct ws_event pmd_event(bool deflate, uint8_t *in, size_t len)
{
    static struct ws_frame_parser p;
    ws_frame_parser_free(&p);
    ws_frame_parser_init(&p, WS_ROLE_SERVER, 1000);
    p.deflate = deflate;
    struct ws_event ev;
    size_t off = 0;
    do
        off += ws_frame_parse(&p, in + off, len - off, &ev);
    while (ev.type == WS_EV_NONE && off < len);
    return ev;
}

START_TEST(rsv1_only_where_permessage_deflate_allows_it)
{
    uint8_t buf[256];
    /* Not UTF-8 once compressed: the text is checked after inflating. */
    static const uint8_t packed[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    size_t n = put(buf, WS_OP_TEXT, 1, packed, sizeof(packed));
    buf[0] |= 0x40;
    struct ws_event ev = pmd_event(true, buf, n);
    ck_assert(ev.type == WS_EV_MESSAGE && ev.deflated && ev.len == sizeof(packed));
    /* The same frame without the agreement: 1002. */
    n = put(buf, WS_OP_TEXT, 1, packed, sizeof(packed));
    buf[0] |= 0x40;
    ev = pmd_event(false, buf, n);
    ck_assert(ev.type == WS_EV_ERROR && ev.err == WS_ERR_PROTOCOL);
    /* A fragmented compressed message: RSV1 on the first frame only. */
    n = put(buf, WS_OP_TEXT, 0, packed, 3);
    buf[0] |= 0x40;
    size_t m = put(buf + n, WS_OP_CONT, 1, packed + 3, sizeof(packed) - 3);
    ev = pmd_event(true, buf, n + m);
    ck_assert(ev.type == WS_EV_MESSAGE && ev.deflated && ev.len == sizeof(packed));
    buf[n] |= 0x40; /* and on the continuation too: 1002 */
    ev = pmd_event(true, buf, n + m);
    ck_assert(ev.type == WS_EV_ERROR && ev.err == WS_ERR_PROTOCOL);
    /* On a control frame, or RSV2/RSV3 at all: 1002. */
    static const uint8_t bits[] = {0x40, 0x20, 0x10};
    for (size_t i = 0; i < 3; i++) {
        n = put(buf, i == 0 ? WS_OP_PING : WS_OP_TEXT, 1, "a", 1);
        buf[0] |= bits[i];
        ev = pmd_event(true, buf, n);
        ck_assert(ev.type == WS_EV_ERROR && ev.err == WS_ERR_PROTOCOL);
    }
    /* A plain message on a connection that agreed: not deflated. */
    n = put(buf, WS_OP_TEXT, 1, "plain", 5);
    ev = pmd_event(true, buf, n);
    ck_assert(ev.type == WS_EV_MESSAGE && !ev.deflated);
    ck_assert_uint_eq(ws_close_code_for(WS_ERR_DEFLATE), 1007);
    pmd_event(false, buf, 0);
}
END_TEST

SUITE(frame,
      rsv1_only_where_permessage_deflate_allows_it,
      rfc_examples_parse,
      rfc_examples_encode,
      shortest_length_form,
      stream_events,
      every_split_point_gives_same_events,
      protocol_errors,
      non_minimal_and_oversized_lengths,
      size_limit_from_header_before_payload,
      invalid_utf8_text_fails_fast,
      close_frames,
      errors_are_sticky,
      client_role_refuses_masked_frames,
      close_encoder,
      shrink_releases_idle_buffer)
