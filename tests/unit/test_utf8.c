/* test_utf8.c: UTF-8 validation, including the edges RFC 3629 forbids. */
#include <string.h>

#include "suites.h"
#include "ws/utf8.h"

static int check_str(const char *s, size_t n)
{
    return ws_utf8_check((const uint8_t *)s, n);
}

START_TEST(valid_sequences)
{
    static const char *const ok[] = {
        "",
        "plain ascii, long enough to take the eight-byte path",
        "\xc2\x80",                                     /* U+0080, smallest 2-byte */
        "\xdf\xbf",                                     /* U+07FF */
        "\xe0\xa0\x80",                                 /* U+0800, smallest 3-byte */
        "\xed\x9f\xbf",                                 /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",                                 /* U+E000, just above them */
        "\xef\xbf\xbf",                                 /* U+FFFF */
        "\xf0\x90\x80\x80",                             /* U+10000, smallest 4-byte */
        "\xf4\x8f\xbf\xbf",                             /* U+10FFFF, the largest code point */
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", /* kosme */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(check_str(ok[i], strlen(ok[i])) == 0, "case %zu should be valid", i);
}
END_TEST

START_TEST(invalid_sequences)
{
    static const char *const bad[] = {
        "\x80",             /* lone continuation */
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong 2-byte */
        "\xe0\x80\x80",     /* overlong 3-byte */
        "\xe0\x9f\xbf",     /* overlong U+07FF */
        "\xf0\x80\x80\x80", /* overlong 4-byte */
        "\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
        "\xed\xa0\x80",     /* U+D800, a surrogate */
        "\xed\xbf\xbf",     /* U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* no lead byte above F4 */
        "\xfe",
        "\xff",
        "\xe2\x82",     /* truncated at the end */
        "abc\xc3",      /* truncated after ASCII */
        "\xc3\x28",     /* continuation expected */
        "12345678\x80", /* bad byte after the fast path */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(check_str(bad[i], strlen(bad[i])) != 0, "case %zu should be invalid", i);
}
END_TEST

START_TEST(split_sequence_is_valid_across_chunks)
{
    /* EURO SIGN E2 82 AC cut after every byte. */
    const uint8_t euro[] = {'a', 0xe2, 0x82, 0xac, 'b'};
    for (size_t cut = 0; cut <= sizeof(euro); cut++) {
        uint32_t st = WS_UTF8_ACCEPT;
        ck_assert_int_eq(ws_utf8_feed(&st, euro, cut), 0);
        ck_assert_int_eq(ws_utf8_feed(&st, euro + cut, sizeof(euro) - cut), 0);
        ck_assert_uint_eq(st, WS_UTF8_ACCEPT);
    }
}
END_TEST

START_TEST(fails_at_first_impossible_byte)
{
    /* ED A0 can never become valid: the second byte must be refused alone,
     * before any further byte arrives. */
    uint32_t st = WS_UTF8_ACCEPT;
    const uint8_t a[] = {0xed};
    const uint8_t b[] = {0xa0};
    ck_assert_int_eq(ws_utf8_feed(&st, a, 1), 0);
    ck_assert_int_eq(ws_utf8_feed(&st, b, 1), -1);
    /* F4 90: above U+10FFFF, refused at the second byte too. */
    st = WS_UTF8_ACCEPT;
    const uint8_t c[] = {0xf4, 0x90};
    ck_assert_int_eq(ws_utf8_feed(&st, c, 2), -1);
}
END_TEST

START_TEST(every_code_point_round_trips)
{
    /* Every scalar value, encoded by hand, validates; every surrogate does not. */
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xC0 | (cp >> 6));
            b[1] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 | (cp >> 12));
            b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | (cp >> 18));
            b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        int expect = (cp >= 0xD800 && cp <= 0xDFFF) ? -1 : 0;
        ck_assert_msg(ws_utf8_check(b, n) == expect, "U+%04X", cp);
    }
}
END_TEST

SUITE(utf8,
      valid_sequences,
      invalid_sequences,
      split_sequence_is_valid_across_chunks,
      fails_at_first_impossible_byte,
      every_code_point_round_trips)
