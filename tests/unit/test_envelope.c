/* test_envelope.c: client frames to messages, and system messages. Output is
 * read back with cJSON, an independent parser. */
#include <cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "room/envelope.h"
#include "suites.h"

static struct envelope_ctx room_ctx(void)
{
    struct envelope_ctx c = {
        .client_id = "alice", .room = "lobby", .pod_id = "pod-1", .now_ms = 1770249600123LL};
    memset(c.rand, 0xab, sizeof(c.rand));
    return c;
}

/* Builds the message for text and parses the result. */
static cJSON *build(const struct envelope_ctx *c, const char *text, int *rc, struct json_out *o)
{
    o->len = 0;
    *rc = envelope_from_client(c, text, strlen(text), o);
    if (*rc < 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(o->p, o->len);
    ck_assert_msg(j != NULL, "not JSON: %.*s", (int)o->len, o->p);
    return j;
}

static const char *str(cJSON *j, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

START_TEST(plain_text_becomes_chat)
{
    struct envelope_ctx c = room_ctx();
    struct json_out o = {0};
    int rc;
    cJSON *j = build(&c, "hello \"world\"\n", &rc, &o);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(str(j, "type"), "chat");
    ck_assert_str_eq(str(j, "room"), "lobby");
    ck_assert_str_eq(str(j, "from"), "alice");
    ck_assert_str_eq(str(j, "pod"), "pod-1");
    ck_assert_str_eq(str(j, "timestamp"), "2026-02-05T00:00:00.123Z");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "text")->valuestring,
                     "hello \"world\"\n");
    /* A server-made id is a UUID v4. */
    const char *id = str(j, "id");
    ck_assert_uint_eq(strlen(id), 36);
    ck_assert_int_eq(id[14], '4');
    ck_assert(strchr("89ab", id[19]) != NULL);
    cJSON_Delete(j);
    /* JSON that is not an object is text too. */
    j = build(&c, "[1,2]", &rc, &o);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "text")->valuestring,
                     "[1,2]");
    cJSON_Delete(j);
    j = build(&c, "{\"type\":\"shout\",", &rc, &o); /* cut after a comma: text */
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "text"));
    cJSON_Delete(j);
    j = build(&c, "{\"type\":\"chat\"", &rc, &o); /* broken object: text */
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "text"));
    cJSON_Delete(j);
    json_out_free(&o);
}
END_TEST

START_TEST(object_fields)
{
    struct envelope_ctx c = room_ctx();
    struct json_out o = {0};
    int rc;
    cJSON *j =
        build(&c,
              "{\"type\":\"presence\",\"id\":\"m-1\",\"data\":{\"n\":12345678901234567891},"
              "\"from\":\"mallory\",\"timestamp\":\"1999-01-01T00:00:00Z\",\"room\":\"lobby\"}",
              &rc, &o);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(str(j, "type"), "presence");
    ck_assert_str_eq(str(j, "id"), "m-1");
    /* from and timestamp are the server's, whatever the client says. */
    ck_assert_str_eq(str(j, "from"), "alice");
    ck_assert_str_eq(str(j, "timestamp"), "2026-02-05T00:00:00.123Z");
    cJSON_Delete(j);
    /* data is carried byte for byte: a large integer keeps every digit. */
    ck_assert_ptr_nonnull(memmem(o.p, o.len, "\"data\":{\"n\":12345678901234567891}", 33));

    j = build(&c, "{}", &rc, &o);
    ck_assert_str_eq(str(j, "type"), "chat");
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(j, "data")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 0);
    cJSON_Delete(j);

    j = build(&c, "{\"data\":\"just a string\",\"type\":\"notification\"}", &rc, &o);
    ck_assert_str_eq(str(j, "data"), "just a string");
    cJSON_Delete(j);
    /* The last of duplicate keys wins, as in JSON.parse. */
    j = build(&c, "{\"type\":\"bogus\",\"type\":\"presence\"}", &rc, &o);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(str(j, "type"), "presence");
    cJSON_Delete(j);
    json_out_free(&o);
}
END_TEST

START_TEST(errors)
{
    struct envelope_ctx c = room_ctx();
    struct json_out o = {0};
    int rc;
    build(&c, "{\"type\":\"shout\"}", &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_TYPE);
    ck_assert_uint_eq(o.len, 0);
    build(&c, "{\"type\":1}", &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_TYPE);
    /* system is the server's own voice; a client's is refused, in any spelling
     * that would reach the page as system. */
    build(&c, "{\"type\":\"system\",\"data\":{\"event\":\"welcome\"}}", &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_TYPE);
    ck_assert_str_eq(envelope_err_code(rc), "invalid_type");
    build(&c, "{\"type\":\"sys\\u0074em\"}", &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_TYPE);
    build(&c, "{\"type\":\"chat\",\"type\":\"system\"}", &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_TYPE);
    build(&c, "{\"room\":\"other\"}", &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_ROOM);
    ck_assert_str_eq(envelope_err_code(rc), "not_in_room");
    build(&c, "{\"room\":null}", &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_ROOM);
    build(&c, "{\"id\":7}", &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_ID);
    char id[128];
    memset(id, 'i', 65);
    id[65] = '\0';
    char msg[256];
    snprintf(msg, sizeof(msg), "{\"id\":\"%s\"}", id);
    build(&c, msg, &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_ID);
    id[64] = '\0';
    snprintf(msg, sizeof(msg), "{\"id\":\"%s\"}", id);
    cJSON *j = build(&c, msg, &rc, &o);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(str(j, "id"), id);
    cJSON_Delete(j);
    json_out_free(&o);
}
END_TEST

START_TEST(global_connection)
{
    struct envelope_ctx c = room_ctx();
    c.room = NULL;
    struct json_out o = {0};
    int rc;
    cJSON *j = build(&c, "{\"room\":null,\"data\":1}", &rc, &o);
    ck_assert_int_eq(rc, 0);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "room")));
    cJSON_Delete(j);
    build(&c, "{\"room\":\"lobby\"}", &rc, &o);
    ck_assert_int_eq(rc, ENVELOPE_ERR_ROOM);
    json_out_free(&o);
}
END_TEST

START_TEST(system_messages)
{
    struct envelope_ctx c = room_ctx();
    struct json_out o = {0};
    envelope_welcome(&c, &o);
    cJSON *j = cJSON_ParseWithLength(o.p, o.len);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(str(j, "type"), "system");
    cJSON *d = cJSON_GetObjectItem(j, "data");
    ck_assert_str_eq(str(d, "event"), "welcome");
    ck_assert_str_eq(str(d, "client_id"), "alice");
    ck_assert_str_eq(str(d, "room"), "lobby");
    ck_assert_str_eq(str(d, "pod"), "pod-1");
    cJSON_Delete(j);

    o.len = 0;
    envelope_error(&c, ENVELOPE_ERR_ROOM, &o);
    j = cJSON_ParseWithLength(o.p, o.len);
    d = cJSON_GetObjectItem(j, "data");
    ck_assert_str_eq(str(d, "event"), "error");
    ck_assert_str_eq(str(d, "code"), "not_in_room");
    ck_assert_ptr_nonnull(str(d, "message"));
    cJSON_Delete(j);
    json_out_free(&o);
}
END_TEST

START_TEST(timestamps)
{
    char ts[32];
    envelope_timestamp(0, ts);
    ck_assert_str_eq(ts, "1970-01-01T00:00:00.000Z");
    envelope_timestamp(1770249600999LL, ts);
    ck_assert_str_eq(ts, "2026-02-05T00:00:00.999Z");
    envelope_timestamp(-1, ts);
    ck_assert_str_eq(ts, "1969-12-31T23:59:59.999Z");
    envelope_timestamp(951782400000LL, ts); /* a leap day in a year divisible by 400 */
    ck_assert_str_eq(ts, "2000-02-29T00:00:00.000Z");
    envelope_timestamp(4107542399999LL, ts); /* 2100 is not a leap year */
    ck_assert_str_eq(ts, "2100-02-28T23:59:59.999Z");
    /* Agrees with the C library over 700 years, at odd times of day. */
    for (int64_t ms = -5000000000000LL; ms < 17000000000000LL; ms += 86400000LL * 97 + 3723456) {
        time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char want[64];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms - (int64_t)secs * 1000));
        envelope_timestamp(ms, ts);
        ck_assert_msg(strcmp(ts, want) == 0, "%lld: %s != %s", (long long)ms, ts, want);
    }
}
END_TEST

START_TEST(bounded_by_max_len)
{
    struct envelope_ctx c = room_ctx();
    struct json_out o = {0};
    int rc;
    /* Unbounded, 1000 control characters escape to 6000 bytes. */
    char text[1001];
    memset(text, '\x01', 1000);
    text[1000] = '\0';
    cJSON *j = build(&c, text, &rc, &o);
    ck_assert_int_eq(rc, 0);
    size_t full = o.len;
    ck_assert_uint_gt(full, 6000);
    cJSON_Delete(j);
    /* Bounded just below what it needs: refused, nothing left in out, and
     * the buffer never grew to the blown-up size. */
    c.max_len = full - 1;
    json_out_free(&o);
    o.len = 0;
    ck_assert_int_eq(envelope_from_client(&c, text, 1000, &o), ENVELOPE_ERR_TOO_LARGE);
    ck_assert_uint_eq(o.len, 0);
    json_out_free(&o);
    c.max_len = 3000;
    ck_assert_int_eq(envelope_from_client(&c, text, 1000, &o), ENVELOPE_ERR_TOO_LARGE);
    ck_assert_uint_lt(o.cap, 3000);
    /* At the bound it passes. */
    c.max_len = full;
    ck_assert_int_eq(envelope_from_client(&c, text, 1000, &o), 0);
    ck_assert_uint_eq(o.len, full);
    /* An object's data counts too. */
    c.max_len = 100;
    o.len = 0;
    const char *obj = "{\"data\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}";
    ck_assert_int_eq(envelope_from_client(&c, obj, strlen(obj), &o), ENVELOPE_ERR_TOO_LARGE);
    ck_assert_str_eq(envelope_err_code(ENVELOPE_ERR_TOO_LARGE), "too_large");
    json_out_free(&o);
}
END_TEST

/* A pod's payload on Redis ends with its numbering after "pod" (envelope.h):
 * written, read back exactly, cut where it starts, and nothing else (a
 * truncation, a backend's payload, a bad number or pod) is taken for one. */
START_TEST(the_numbering_on_redis)
{
    const char *msg = "{\"id\":\"x\",\"data\":{\"pod\":\"fake\"},\"pod\":\"chat-1\"}";
    char out[256];
    size_t n = envelope_number(msg, strlen(msg), 41, 1764000000123ull, out, sizeof(out));
    ck_assert_uint_gt(n, 0);
    const char *want = "{\"id\":\"x\",\"data\":{\"pod\":\"fake\"},\"pod\":\"chat-1\",\"seq\":41,"
                       "\"epoch\":1764000000123}";
    ck_assert_uint_eq(n, strlen(want));
    ck_assert(memcmp(out, want, n) == 0);
    struct envelope_numbering t;
    ck_assert(envelope_numbering(out, n, &t));
    ck_assert_uint_eq(t.seq, 41);
    ck_assert_uint_eq(t.epoch, 1764000000123ull);
    ck_assert_uint_eq(t.pod_len, 6);
    ck_assert(memcmp(t.pod, "chat-1", 6) == 0);
    /* What clients get: the message up to its numbering. */
    ck_assert_uint_eq(t.body_len, strlen(msg) - 1);
    ck_assert(memcmp(out, msg, t.body_len) == 0);
    /* No truncation of it is a tail, and nor are payloads that end otherwise. */
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(!envelope_numbering(out, k, &t), "cut at %zu", k);
    const char *bad[] = {
        "{\"pod\":\"a\",\"seq\":1}",
        "{\"pod\":\"a\",\"seq\":01,\"epoch\":2}",
        "{\"pod\":\"a\",\"seq\":-1,\"epoch\":2}",
        "{\"pod\":\"a\",\"seq\":1,\"epoch\":99999999999999999999}",
        "{\"xpod\":\"a\",\"seq\":1,\"epoch\":2}",
        "{\"pod\":\"a\\\"\",\"seq\":1,\"epoch\":2}",
        "{\"pod\":\"\",\"seq\":1,\"epoch\":2}",
        "{\"type\":\"notification\",\"seq\":1,\"epoch\":2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!envelope_numbering(bad[i], strlen(bad[i]), &t), "%s", bad[i]);
    ck_assert(envelope_numbering("{\"pod\":\"a\",\"seq\":0,\"epoch\":2}", 29, &t));
    /* Appending needs a closing brace and room. */
    ck_assert_uint_eq(envelope_number("[1]", 3, 1, 1, out, sizeof(out)), 0);
    ck_assert_uint_eq(envelope_number(msg, strlen(msg), 1, 1, out, strlen(msg) + 5), 0);
}
END_TEST

SUITE(envelope,
      the_numbering_on_redis,
      plain_text_becomes_chat,
      object_fields,
      errors,
      global_connection,
      system_messages,
      timestamps,
      bounded_by_max_len)
