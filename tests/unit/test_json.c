/* test_json.c: the JSON scanner and string builder. */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "suites.h"

static enum json_type type_of(const char *s)
{
    return json_check(s, strlen(s));
}

START_TEST(grammar)
{
    static const struct {
        const char *text;
        enum json_type type;
    } cases[] = {
        {"{}", JSON_OBJECT},
        {" { \"a\" : [1, -2.5e+10, true, false, null, \"x\"] } ", JSON_OBJECT},
        {"[]", JSON_ARRAY},
        {"\"\\u00e9\\n\\/\"", JSON_STRING},
        {"0", JSON_NUMBER},
        {"-0.0E-0", JSON_NUMBER},
        {"12345678901234567890123", JSON_NUMBER},
        {"true", JSON_TRUE},
        {"null", JSON_NULL},
        {"", JSON_INVALID},
        {"{", JSON_INVALID},
        {"{\"a\":}", JSON_INVALID},
        {"{\"a\":1,}", JSON_INVALID},
        {"[1,]", JSON_INVALID},
        {"{a:1}", JSON_INVALID},
        {"01", JSON_INVALID},
        {"1.", JSON_INVALID},
        {".5", JSON_INVALID},
        {"+1", JSON_INVALID},
        {"1e", JSON_INVALID},
        {"tru", JSON_INVALID},
        {"\"tab\there\"", JSON_INVALID},
        {"\"\\x\"", JSON_INVALID},
        {"\"\\u12g4\"", JSON_INVALID},
        {"\"open", JSON_INVALID},
        {"{} {}", JSON_INVALID},
        {"[1 2]", JSON_INVALID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(type_of(cases[i].text) == cases[i].type, "case %zu: %s", i, cases[i].text);
}
END_TEST

START_TEST(depth_limit)
{
    char *deep = malloc(2 * JSON_MAX_DEPTH + 10);
    size_t n = 0;
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        deep[n++] = ']';
    ck_assert_int_eq(json_check(deep, n), JSON_ARRAY);
    n = 0;
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        deep[n++] = ']';
    ck_assert_int_eq(json_check(deep, n), JSON_INVALID);
    free(deep);
}
END_TEST

START_TEST(members)
{
    const char *s = " {\"a\":1, \"b\" : {\"c\":[2]}, \"\\u0061\":\"x\"} ";
    size_t pos = 0, len = strlen(s);
    struct json_member m;
    ck_assert_int_eq(json_object_next(s, len, &pos, &m), 1);
    ck_assert(json_string_eq(m.key, "a"));
    ck_assert_int_eq(m.value.type, JSON_NUMBER);
    ck_assert_int_eq(json_object_next(s, len, &pos, &m), 1);
    ck_assert(json_string_eq(m.key, "b"));
    ck_assert_uint_eq(m.value.len, strlen("{\"c\":[2]}"));
    ck_assert_mem_eq(m.value.p, "{\"c\":[2]}", m.value.len);
    ck_assert_int_eq(json_object_next(s, len, &pos, &m), 1);
    ck_assert(json_string_eq(m.key, "a")); /* escaped key decodes to "a" */
    ck_assert_int_eq(json_object_next(s, len, &pos, &m), 0);

    pos = 0;
    ck_assert_int_eq(json_object_next("{}", 2, &pos, &m), 0);
    pos = 0;
    ck_assert_int_eq(json_object_next("[1]", 3, &pos, &m), -1);
    pos = 0;
    /* Bytes after the closing brace make the whole object invalid. */
    ck_assert_int_eq(json_object_next("{\"a\":1} x", 9, &pos, &m), -1);
    /* Cut right after a comma: the object is not finished. */
    pos = 0;
    const char *comma = "{\"a\":1,";
    ck_assert_int_eq(json_object_next(comma, strlen(comma), &pos, &m), 1);
    ck_assert_int_eq(json_object_next(comma, strlen(comma), &pos, &m), -1);
    pos = 0;
    const char *trunc = "{\"a\":1,\"b\":";
    ck_assert_int_eq(json_object_next(trunc, strlen(trunc), &pos, &m), 1);
    ck_assert_int_eq(json_object_next(trunc, strlen(trunc), &pos, &m), -1);
}
END_TEST

START_TEST(string_decode)
{
    char out[64];
    const char *text = "\"a\\u00e9\\ud83d\\ude00\\n\"";
    struct json_span s = {text, strlen(text), JSON_STRING};
    long n = json_string_decode(s, out, sizeof(out));
    ck_assert_int_eq(n, 1 + 2 + 4 + 1);
    ck_assert_mem_eq(out, "a\xc3\xa9\xf0\x9f\x98\x80\n", 8);
    struct json_span lone = {"\"\\ud83d\"", 8, JSON_STRING};
    ck_assert_int_eq(json_string_decode(lone, out, sizeof(out)), -1);
    struct json_span low = {"\"\\ude00\"", 8, JSON_STRING};
    ck_assert_int_eq(json_string_decode(low, out, sizeof(out)), -1);
    struct json_span longer = {"\"abcdef\"", 8, JSON_STRING};
    ck_assert_int_eq(json_string_decode(longer, out, 5), -1);
}
END_TEST

START_TEST(builder_escapes)
{
    struct json_out o = {0};
    json_out_str(&o, "q\"b\\n\n\x01\x1f\xc3\xa9", 10);
    json_out_lit(&o, ",");
    json_out_str_or_null(&o, NULL);
    ck_assert(!o.oom);
    const char *expect = "\"q\\\"b\\\\n\\n\\u0001\\u001f\xc3\xa9\",null";
    ck_assert_uint_eq(o.len, strlen(expect));
    ck_assert_mem_eq(o.p, expect, o.len);
    /* What the builder writes, the scanner reads back. */
    o.len = 0;
    json_out_str(&o, "\x01\x02\x7f\"", 4);
    ck_assert_int_eq(json_check(o.p, o.len), JSON_STRING);
    json_out_free(&o);
}
END_TEST

START_TEST(escaped_length_is_exact)
{
    const char *cases[] = {"", "plain", "q\"b\\n\nr\rt\tb\bf\f", "\x01\x1f\x7f", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct json_out o = {0};
        json_out_str(&o, cases[i], strlen(cases[i]));
        ck_assert_uint_eq(json_str_len(cases[i], strlen(cases[i])), o.len);
        json_out_free(&o);
    }
    ck_assert_uint_eq(json_str_len("\x01", 1), 8); /* "\u0001" with its quotes */
}
END_TEST

SUITE(json,
      grammar,
      depth_limit,
      members,
      string_decode,
      builder_escapes,
      escaped_length_is_exact)
