/* envelope.c: building messages without re-encoding what the client sent. */
#include "room/envelope.h"

#include <stdio.h>
#include <string.h>

/* The types a client may send. "system" is the server's own voice (and
 * backends' through Redis): a client's is refused, so nobody can forge a
 * welcome or an error line (docs/protocol.md). */
static const char *const TYPES[] = {"chat", "presence", "notification"};

/* Writes v as exactly width decimal digits. */
static char *put_digits(char *p, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

void envelope_timestamp(int64_t ms, char out[32])
{
    /* Once per message, so no gmtime_r and strftime: the civil date from a
     * day count is a few integer operations (the proleptic Gregorian
     * calendar in 400-year eras of 146097 days, March-based years). */
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    if (year < 0 || year > 9999)
        year = year < 0 ? 0 : 9999; /* RFC 3339 years have four digits */
    char *p = out;
    p = put_digits(p, year, 4);
    *p++ = '-';
    p = put_digits(p, month, 2);
    *p++ = '-';
    p = put_digits(p, day, 2);
    *p++ = 'T';
    p = put_digits(p, rem / 3600000, 2);
    *p++ = ':';
    p = put_digits(p, rem / 60000 % 60, 2);
    *p++ = ':';
    p = put_digits(p, rem / 1000 % 60, 2);
    *p++ = '.';
    p = put_digits(p, rem % 1000, 3);
    *p++ = 'Z';
    *p = '\0';
}

void envelope_uuid(const uint8_t rand[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    memcpy(b, rand, 16);
    /* RFC 9562 5.4: version 4, variant 10. */
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    size_t w = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[w++] = '-';
        out[w++] = hex[b[i] >> 4];
        out[w++] = hex[b[i] & 15];
    }
    out[w] = '\0';
}

/* Appends {"id":...,"type":...,"room":...,"from":..., then the caller adds
 * the data value and close_message finishes the object. */
static void open_message(const struct envelope_ctx *c, struct json_out *out, const char *id,
                         size_t id_len, const char *type, const char *from)
{
    char uuid[37];
    if (!id) {
        envelope_uuid(c->rand, uuid);
        id = uuid;
        id_len = 36;
    }
    json_out_lit(out, "{\"id\":");
    json_out_str(out, id, id_len);
    json_out_lit(out, ",\"type\":\"");
    json_out_lit(out, type);
    json_out_lit(out, "\",\"room\":");
    json_out_str_or_null(out, c->room);
    json_out_lit(out, ",\"from\":");
    json_out_str_or_null(out, from);
    json_out_lit(out, ",\"data\":");
}

/* Closes an envelope with its timestamp and, last of all, "pod": the
 * numbering on Redis follows it (envelope_number). */
static void close_message(const struct envelope_ctx *c, struct json_out *out)
{
    char ts[32];
    envelope_timestamp(c->now_ms, ts);
    json_out_lit(out, ",\"timestamp\":\"");
    json_out_lit(out, ts);
    json_out_lit(out, "\",\"pod\":");
    json_out_str_or_null(out, c->pod_id);
    json_out_lit(out, "}");
}

/* The fields a client's object may set; the last occurrence of a key wins, as
 * in JSON.parse. */
struct client_fields {
    struct json_span type, data, room, id;
    int has_type, has_data, has_room, has_id;
};

/* Reads the members we use. Returns 0, or -1 when text is not a JSON object. */
static int read_fields(const char *text, size_t len, struct client_fields *f)
{
    size_t pos = 0;
    struct json_member m;
    int rc;
    memset(f, 0, sizeof(*f));
    while ((rc = json_object_next(text, len, &pos, &m)) == 1) {
        if (json_string_eq(m.key, "type")) {
            f->type = m.value;
            f->has_type = 1;
        } else if (json_string_eq(m.key, "data")) {
            f->data = m.value;
            f->has_data = 1;
        } else if (json_string_eq(m.key, "room")) {
            f->room = m.value;
            f->has_room = 1;
        } else if (json_string_eq(m.key, "id")) {
            f->id = m.value;
            f->has_id = 1;
        }
    }
    return rc;
}

static const char *known_type(struct json_span t)
{
    if (t.type != JSON_STRING)
        return NULL;
    for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++)
        if (json_string_eq(t, TYPES[i]))
            return TYPES[i];
    return NULL;
}

static int room_allowed(const struct envelope_ctx *c, struct json_span r)
{
    if (r.type == JSON_NULL)
        return c->room == NULL;
    if (r.type != JSON_STRING || c->room == NULL)
        return 0;
    return json_string_eq(r, c->room);
}

/* Checks the message built from out[start..]: on failure it is taken out
 * again and the error returned. */
static int finish(const struct envelope_ctx *c, struct json_out *out, size_t start)
{
    int rc = 0;
    if (out->oom)
        rc = ENVELOPE_ERR_NOMEM;
    else if (c->max_len && out->len - start > c->max_len)
        rc = ENVELOPE_ERR_TOO_LARGE;
    if (rc < 0)
        out->len = start;
    return rc;
}

int envelope_from_client(const struct envelope_ctx *c, const char *text, size_t len,
                         struct json_out *out)
{
    struct client_fields f;
    size_t start = out->len;

    if (read_fields(text, len, &f) < 0) {
        /* Not a JSON object: a line typed into websocat. Measured before it
         * is built, so a text that escapes to many times its size never
         * takes that much memory. */
        if (c->max_len && json_str_len(text, len) > c->max_len)
            return ENVELOPE_ERR_TOO_LARGE;
        open_message(c, out, NULL, 0, "chat", c->client_id);
        json_out_lit(out, "{\"text\":");
        json_out_str(out, text, len);
        json_out_lit(out, "}");
        close_message(c, out);
        return finish(c, out, start);
    }

    const char *type = "chat";
    if (f.has_type && !(type = known_type(f.type)))
        return ENVELOPE_ERR_TYPE;
    if (f.has_room && !room_allowed(c, f.room))
        return ENVELOPE_ERR_ROOM;
    char id[ENVELOPE_ID_MAX];
    long id_len = -1;
    if (f.has_id) {
        if (f.id.type != JSON_STRING)
            return ENVELOPE_ERR_ID;
        id_len = json_string_decode(f.id, id, sizeof(id));
        if (id_len < 0)
            return ENVELOPE_ERR_ID;
    }

    if (c->max_len && f.has_data && f.data.len > c->max_len)
        return ENVELOPE_ERR_TOO_LARGE;
    open_message(c, out, id_len >= 0 ? id : NULL, id_len >= 0 ? (size_t)id_len : 0, type,
                 c->client_id);
    if (f.has_data)
        json_out_raw(out, f.data.p, f.data.len);
    else
        json_out_lit(out, "{}");
    close_message(c, out);
    return finish(c, out, start);
}

const char *envelope_err_code(int err)
{
    switch (err) {
    case ENVELOPE_ERR_TYPE: return "invalid_type";
    case ENVELOPE_ERR_ROOM: return "not_in_room";
    case ENVELOPE_ERR_ID: return "invalid_id";
    case ENVELOPE_ERR_TOO_LARGE: return "too_large";
    case ENVELOPE_ERR_READ_ONLY: return "read_only";
    case ENVELOPE_ERR_UNAVAILABLE: return "room_unavailable";
    default: return "internal_error";
    }
}

const char *envelope_err_message(int err)
{
    switch (err) {
    case ENVELOPE_ERR_TYPE:
        return "type must be one of chat, presence, notification (system is the server's own)";
    case ENVELOPE_ERR_ROOM:
        return "room must be this connection's own room (null on a global connection)";
    case ENVELOPE_ERR_ID: return "id must be a string of at most 64 bytes";
    case ENVELOPE_ERR_TOO_LARGE:
        return "the message would pass MAX_MESSAGE_SIZE plus 1 KiB once wrapped for delivery";
    case ENVELOPE_ERR_READ_ONLY: return "this connection's token allows receiving only";
    case ENVELOPE_ERR_UNAVAILABLE:
        return "Redis refused this room's channel: messages from other pods do not reach the "
               "room until it is allowed (retried with backoff); this pod's own members still "
               "hear each other";
    default: return "the server could not process the message";
    }
}

void envelope_error(const struct envelope_ctx *c, int err, struct json_out *out)
{
    open_message(c, out, NULL, 0, "system", "system");
    json_out_lit(out, "{\"event\":\"error\",\"code\":\"");
    json_out_lit(out, envelope_err_code(err));
    json_out_lit(out, "\",\"message\":");
    json_out_str_or_null(out, envelope_err_message(err));
    json_out_lit(out, "}");
    close_message(c, out);
}

void envelope_welcome(const struct envelope_ctx *c, struct json_out *out)
{
    open_message(c, out, NULL, 0, "system", "system");
    json_out_lit(out, "{\"event\":\"welcome\",\"client_id\":");
    json_out_str_or_null(out, c->client_id);
    json_out_lit(out, ",\"room\":");
    json_out_str_or_null(out, c->room);
    json_out_lit(out, ",\"pod\":");
    json_out_str_or_null(out, c->pod_id);
    json_out_lit(out, "}");
    close_message(c, out);
}

/* ---- the numbering on Redis (envelope.h) ---- */

/* Reads the decimal number that ends just before *end (moving *end back over
 * it). False when there is none or it overflows. */
static bool number_before(const char *p, size_t *end, uint64_t *v)
{
    size_t i = *end, digits = 0;
    while (i > 0 && p[i - 1] >= '0' && p[i - 1] <= '9' && digits < 20) {
        i--;
        digits++;
    }
    if (digits == 0 || digits == 20 || (digits > 1 && p[i] == '0'))
        return false;
    uint64_t n = 0;
    for (size_t k = i; k < *end; k++)
        n = n * 10 + (uint64_t)(p[k] - '0');
    *v = n;
    *end = i;
    return true;
}

/* Moves *end back over lit, which must stand just before it. */
static bool lit_before(const char *p, size_t *end, const char *lit)
{
    size_t n = strlen(lit);
    if (*end < n || memcmp(p + *end - n, lit, n) != 0)
        return false;
    *end -= n;
    return true;
}

bool envelope_numbering(const char *payload, size_t len, struct envelope_numbering *t)
{
    size_t end = len;
    if (!lit_before(payload, &end, "}") || !number_before(payload, &end, &t->epoch) ||
        !lit_before(payload, &end, ",\"epoch\":") || !number_before(payload, &end, &t->seq) ||
        !lit_before(payload, &end, ",\"seq\":"))
        return false;
    t->body_len = end;
    if (!lit_before(payload, &end, "\""))
        return false;
    /* The pod id: config.c allows no quote or backslash in it. */
    size_t stop = end;
    while (end > 0 && payload[end - 1] != '"' && payload[end - 1] != '\\')
        end--;
    if (end == stop || end == 0 || payload[end - 1] != '"')
        return false;
    t->pod = payload + end;
    t->pod_len = stop - end;
    end--;
    return lit_before(payload, &end, "\"pod\":") && end > 0 &&
           (payload[end - 1] == ',' || payload[end - 1] == '{');
}

size_t envelope_number(const char *payload, size_t len, uint64_t seq, uint64_t epoch, char *out,
                       size_t cap)
{
    if (len == 0 || payload[len - 1] != '}')
        return 0;
    char tail[64];
    int n = snprintf(tail, sizeof(tail), ",\"seq\":%llu,\"epoch\":%llu}", (unsigned long long)seq,
                     (unsigned long long)epoch);
    if (n < 0 || len - 1 + (size_t)n > cap)
        return 0;
    memcpy(out, payload, len - 1);
    memcpy(out + len - 1, tail, (size_t)n);
    return len - 1 + (size_t)n;
}
