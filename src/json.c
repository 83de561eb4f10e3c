/* json.c: RFC 8259 grammar checking by recursive descent with a depth limit. */
#include "json.h"

#include "hex.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const char *s;
    size_t len;
    size_t at;
};

static void skip_ws(struct scan *sc)
{
    while (sc->at < sc->len) {
        char c = sc->s[sc->at];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        sc->at++;
    }
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool scan_string(struct scan *sc)
{
    if (sc->at >= sc->len || sc->s[sc->at] != '"')
        return false;
    sc->at++;
    while (sc->at < sc->len) {
        unsigned char c = (unsigned char)sc->s[sc->at++];
        if (c == '"')
            return true;
        if (c < 0x20)
            return false; /* RFC 8259 7: control characters must be escaped */
        if (c != '\\')
            continue;
        if (sc->at >= sc->len)
            return false;
        char e = sc->s[sc->at++];
        if (e == 'u') {
            if (sc->len - sc->at < 4)
                return false;
            for (int i = 0; i < 4; i++)
                if (hex_value(sc->s[sc->at++]) < 0)
                    return false;
        } else if (!strchr("\"\\/bfnrt", e) || e == 0) {
            return false;
        }
    }
    return false;
}

static bool scan_digits(struct scan *sc)
{
    size_t start = sc->at;
    while (sc->at < sc->len && is_digit(sc->s[sc->at]))
        sc->at++;
    return sc->at > start;
}

static bool scan_number(struct scan *sc)
{
    if (sc->at < sc->len && sc->s[sc->at] == '-')
        sc->at++;
    if (sc->at >= sc->len)
        return false;
    if (sc->s[sc->at] == '0')
        sc->at++; /* no leading zeros */
    else if (!scan_digits(sc))
        return false;
    if (sc->at < sc->len && sc->s[sc->at] == '.') {
        sc->at++;
        if (!scan_digits(sc))
            return false;
    }
    if (sc->at < sc->len && (sc->s[sc->at] == 'e' || sc->s[sc->at] == 'E')) {
        sc->at++;
        if (sc->at < sc->len && (sc->s[sc->at] == '+' || sc->s[sc->at] == '-'))
            sc->at++;
        if (!scan_digits(sc))
            return false;
    }
    return true;
}

static bool scan_word(struct scan *sc, const char *w)
{
    size_t n = strlen(w);
    if (sc->len - sc->at < n || memcmp(sc->s + sc->at, w, n) != 0)
        return false;
    sc->at += n;
    return true;
}

static enum json_type scan_value(struct scan *sc, int depth);

/* Scans ws, "key", ws, ':', ws, value. */
static bool scan_member(struct scan *sc, int depth, struct json_member *m)
{
    skip_ws(sc);
    size_t k = sc->at;
    if (!scan_string(sc))
        return false;
    m->key = (struct json_span){sc->s + k, sc->at - k, JSON_STRING};
    skip_ws(sc);
    if (sc->at >= sc->len || sc->s[sc->at] != ':')
        return false;
    sc->at++;
    skip_ws(sc);
    size_t v = sc->at;
    enum json_type t = scan_value(sc, depth);
    if (t == JSON_INVALID)
        return false;
    m->value = (struct json_span){sc->s + v, sc->at - v, t};
    return true;
}

/* Scans the rest of an object or array after its opening bracket. */
static bool scan_container(struct scan *sc, int depth, bool object)
{
    char close = object ? '}' : ']';
    skip_ws(sc);
    if (sc->at < sc->len && sc->s[sc->at] == close) {
        sc->at++;
        return true;
    }
    for (;;) {
        if (object) {
            struct json_member m;
            if (!scan_member(sc, depth, &m))
                return false;
        } else {
            skip_ws(sc);
            if (scan_value(sc, depth) == JSON_INVALID)
                return false;
        }
        skip_ws(sc);
        if (sc->at >= sc->len)
            return false;
        char c = sc->s[sc->at++];
        if (c == close)
            return true;
        if (c != ',')
            return false;
    }
}

static enum json_type scan_value(struct scan *sc, int depth)
{
    if (sc->at >= sc->len)
        return JSON_INVALID;
    switch (sc->s[sc->at]) {
    case '{':
    case '[': {
        bool object = sc->s[sc->at] == '{';
        if (depth >= JSON_MAX_DEPTH)
            return JSON_INVALID;
        sc->at++;
        if (!scan_container(sc, depth + 1, object))
            return JSON_INVALID;
        return object ? JSON_OBJECT : JSON_ARRAY;
    }
    case '"': return scan_string(sc) ? JSON_STRING : JSON_INVALID;
    case 't': return scan_word(sc, "true") ? JSON_TRUE : JSON_INVALID;
    case 'f': return scan_word(sc, "false") ? JSON_FALSE : JSON_INVALID;
    case 'n': return scan_word(sc, "null") ? JSON_NULL : JSON_INVALID;
    default: return scan_number(sc) ? JSON_NUMBER : JSON_INVALID;
    }
}

enum json_type json_check(const char *s, size_t len)
{
    struct scan sc = {s, len, 0};
    skip_ws(&sc);
    enum json_type t = scan_value(&sc, 0);
    skip_ws(&sc);
    return sc.at == len ? t : JSON_INVALID;
}

/* The walk's cursor after the closing brace: distinct from every offset, so
 * an input that ends right after a comma is not taken as finished. */
#define WALK_DONE SIZE_MAX

/* One step of a walk over the members of an object (m) or the elements of
 * an array (v): both ends are checked as in json_object_next. */
static int walk_next(const char *s, size_t len, size_t *pos, bool object, struct json_member *m,
                     struct json_span *v)
{
    char open = object ? '{' : '[', close = object ? '}' : ']';
    struct scan sc = {s, len, *pos};
    if (sc.at == 0) {
        skip_ws(&sc);
        if (sc.at >= len || s[sc.at] != open)
            return -1;
        sc.at++;
        skip_ws(&sc);
        if (sc.at < len && s[sc.at] == close) {
            sc.at++;
            skip_ws(&sc);
            *pos = WALK_DONE;
            return sc.at == len ? 0 : -1;
        }
    } else if (sc.at == WALK_DONE) {
        return 0;
    }
    if (object) {
        if (!scan_member(&sc, 1, m))
            return -1;
    } else {
        skip_ws(&sc);
        size_t start = sc.at;
        enum json_type t = scan_value(&sc, 1);
        if (t == JSON_INVALID)
            return -1;
        *v = (struct json_span){s + start, sc.at - start, t};
    }
    skip_ws(&sc);
    if (sc.at >= len)
        return -1;
    char c = s[sc.at++];
    if (c == close) {
        skip_ws(&sc);
        if (sc.at != len)
            return -1;
        *pos = WALK_DONE;
        return 1;
    }
    if (c != ',')
        return -1;
    *pos = sc.at; /* a comma: another member must follow */
    return 1;
}

int json_object_next(const char *s, size_t len, size_t *pos, struct json_member *m)
{
    return walk_next(s, len, pos, true, m, NULL);
}

int json_array_next(const char *s, size_t len, size_t *pos, struct json_span *v)
{
    return walk_next(s, len, pos, false, NULL, v);
}

static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static unsigned long hex4(const char *p)
{
    unsigned long v = 0;
    for (int i = 0; i < 4; i++)
        v = (v << 4) | (unsigned long)hex_value(p[i]);
    return v;
}

long json_string_decode(struct json_span str, char *out, size_t cap)
{
    /* The span was checked by the scanner: escapes are well formed. */
    const char *p = str.p + 1, *end = str.p + str.len - 1;
    size_t n = 0;
    while (p < end) {
        char tmp[4];
        size_t w;
        if (*p != '\\') {
            tmp[0] = *p++;
            w = 1;
        } else {
            char e = p[1];
            p += 2;
            if (e == 'u') {
                unsigned long cp = hex4(p);
                p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                        return -1;
                    unsigned long lo = hex4(p + 2);
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return -1;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return -1;
                }
                w = put_utf8(tmp, cp);
            } else {
                const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
                tmp[0] = to[strchr(from, e) - from];
                w = 1;
            }
        }
        if (cap - n < w)
            return -1;
        memcpy(out + n, tmp, w);
        n += w;
    }
    return (long)n;
}

bool json_string_eq(struct json_span str, const char *key)
{
    size_t klen = strlen(key);
    if (str.len < 2)
        return false;
    if (!memchr(str.p, '\\', str.len))
        return str.len - 2 == klen && memcmp(str.p + 1, key, klen) == 0;
    char buf[256];
    long n = json_string_decode(str, buf, sizeof(buf));
    return n >= 0 && (size_t)n == klen && memcmp(buf, key, klen) == 0;
}

static bool reserve(struct json_out *o, size_t more)
{
    if (o->oom)
        return false;
    if (o->cap - o->len >= more)
        return true;
    size_t cap = o->cap ? o->cap : 256;
    while (cap - o->len < more)
        cap *= 2;
    char *p = realloc(o->p, cap);
    if (!p) {
        o->oom = true;
        return false;
    }
    o->p = p;
    o->cap = cap;
    return true;
}

void json_out_raw(struct json_out *o, const char *s, size_t len)
{
    if (!reserve(o, len))
        return;
    memcpy(o->p + o->len, s, len);
    o->len += len;
}

void json_out_lit(struct json_out *o, const char *s)
{
    json_out_raw(o, s, strlen(s));
}

/* How many bytes c takes inside a JSON string: itself, a two-byte escape,
 * or \u00XX. */
static size_t escaped_width(unsigned char c)
{
    if (c >= 0x20 && c != '"' && c != '\\')
        return 1;
    return (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f')
               ? 2
               : 6;
}

size_t json_str_len(const char *s, size_t len)
{
    size_t n = 2;
    for (size_t i = 0; i < len; i++)
        n += escaped_width((unsigned char)s[i]);
    return n;
}

void json_out_str(struct json_out *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* Exactly what it needs: a worst-case reserve (every byte \u00XX) would
     * ask six times the text's size of a large message. */
    if (!reserve(o, json_str_len(s, len)))
        return;
    char *w = o->p + o->len;
    *w++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *w++ = (char)c;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '\n': *w++ = 'n'; break;
        case '\r': *w++ = 'r'; break;
        case '\t': *w++ = 't'; break;
        case '\b': *w++ = 'b'; break;
        case '\f': *w++ = 'f'; break;
        default:
            *w++ = 'u';
            *w++ = '0';
            *w++ = '0';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        }
    }
    *w++ = '"';
    o->len = (size_t)(w - o->p);
}

void json_out_str_or_null(struct json_out *o, const char *s)
{
    if (s)
        json_out_str(o, s, strlen(s));
    else
        json_out_lit(o, "null");
}

void json_out_free(struct json_out *o)
{
    free(o->p);
    o->p = NULL;
    o->len = o->cap = 0;
    o->oom = false;
}
