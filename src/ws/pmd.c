/* pmd.c: the permessage-deflate offer parser and the server's answer. */
#include "ws/pmd.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A cursor over one header value (RFC 7230 3.2.6 tokens and quoted
 * strings; RFC 6455 9.1 the extension list). */
struct scan {
    const char *p;
    size_t n, i;
};

static bool tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool at(const struct scan *s, char c)
{
    return s->i < s->n && s->p[s->i] == c;
}

static void ows(struct scan *s)
{
    while (at(s, ' ') || at(s, '\t'))
        s->i++;
}

/* A token at the cursor; false (nothing taken) when there is none. */
static bool token(struct scan *s, struct http_str *t)
{
    size_t start = s->i;
    while (s->i < s->n && tchar(s->p[s->i]))
        s->i++;
    t->p = s->p + start;
    t->len = s->i - start;
    return t->len > 0;
}

/* A token or a quoted string, unquoted into buf (RFC 7692 7.1: a quoted
 * value must read as the token it stands for, which window_bits checks).
 * False when malformed or longer than cap - 1. */
static bool value(struct scan *s, char *buf, size_t cap)
{
    size_t len = 0;
    if (!at(s, '"')) {
        struct http_str t;
        if (!token(s, &t) || t.len >= cap)
            return false;
        memcpy(buf, t.p, t.len);
        buf[t.len] = '\0';
        return true;
    }
    for (s->i++; s->i < s->n && s->p[s->i] != '"'; s->i++) {
        if (s->p[s->i] == '\\' && ++s->i == s->n)
            return false;
        if (len + 1 >= cap)
            return false;
        buf[len++] = s->p[s->i];
    }
    if (!at(s, '"') || len == 0)
        return false;
    s->i++;
    buf[len] = '\0';
    return true;
}

/* Skips to just past the next comma outside a quoted string (or the end):
 * where the next offer starts after a malformed one. */
static void next_element(struct scan *s)
{
    bool quoted = false;
    for (; s->i < s->n; s->i++) {
        char c = s->p[s->i];
        if (quoted && c == '\\')
            s->i++;
        else if (c == '"')
            quoted = !quoted;
        else if (c == ',' && !quoted) {
            s->i++;
            return;
        }
    }
}

/* 8..15 written without leading zeros (RFC 7692 7.1.2.1). */
static int window_bits(const char *v)
{
    if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && v[2] == '\0')
        return 10 + (v[1] - '0');
    if ((v[0] == '8' || v[0] == '9') && v[1] == '\0')
        return v[0] - '0';
    return -1;
}

enum param { P_SERVER_NO_CTX, P_CLIENT_NO_CTX, P_SERVER_BITS, P_CLIENT_BITS, P_COUNT };

static const char *const PARAM_NAMES[P_COUNT] = {
    "server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
    "client_max_window_bits"};

/* Takes one parameter of a permessage-deflate offer into *pmd. False when
 * it is unknown, repeated (RFC 7692 7: a second one declines the offer) or
 * has a value it may not have. */
static bool take_param(struct scan *s, struct ws_pmd *pmd, unsigned *seen)
{
    struct http_str name;
    if (!token(s, &name))
        return false;
    int which = -1;
    for (int k = 0; k < P_COUNT; k++)
        if (http_str_ieq(name, PARAM_NAMES[k]))
            which = k;
    if (which < 0 || (*seen & (1u << which)))
        return false;
    *seen |= 1u << which;
    ows(s);
    char v[8];
    bool has_value = at(s, '=');
    if (has_value) {
        s->i++;
        ows(s);
        if (!value(s, v, sizeof(v)))
            return false;
    }
    int bits = has_value ? window_bits(v) : 0;
    switch (which) {
    case P_SERVER_NO_CTX: pmd->server_no_context = true; return !has_value;
    case P_CLIENT_NO_CTX: return !has_value;
    case P_SERVER_BITS:
        pmd->server_bits = (uint8_t)bits;
        pmd->server_bits_asked = true;
        return bits > 0;
    default: return !has_value || bits > 0; /* client_max_window_bits: our inflater takes any */
    }
}

/* Reads one element of the list at the cursor and moves past it. Returns 1
 * for a permessage-deflate offer we honour (in *pmd), 0 for another
 * extension, -1 for a declined permessage-deflate offer. */
static int element(struct scan *s, struct ws_pmd *pmd)
{
    struct http_str name;
    ows(s);
    if (!token(s, &name)) {
        next_element(s); /* an empty element (RFC 7230 7: "a,,b") or junk */
        return 0;
    }
    bool ours = http_str_ieq(name, "permessage-deflate");
    *pmd = (struct ws_pmd){.on = true, .server_bits = 15};
    unsigned seen = 0;
    for (;;) {
        ows(s);
        if (s->i == s->n || at(s, ',')) {
            if (s->i < s->n)
                s->i++;
            return ours ? 1 : 0;
        }
        if (!at(s, ';'))
            break;
        s->i++;
        ows(s);
        if (ours ? !take_param(s, pmd, &seen) : !token(s, &name))
            break;
        if (!ours) { /* another extension's parameter: read past its value */
            ows(s);
            char v[256];
            if (at(s, '=') && (s->i++, ows(s), !value(s, v, sizeof(v))))
                break;
        }
    }
    next_element(s);
    return ours ? -1 : 0;
}

unsigned ws_pmd_negotiate(const struct http_req *req, struct ws_pmd *out)
{
    unsigned declined = 0;
    memset(out, 0, sizeof(*out));
    for (size_t h = 0; h < req->nheaders; h++) {
        if (!http_str_ieq(req->headers[h].name, "Sec-WebSocket-Extensions"))
            continue;
        struct scan s = {.p = req->headers[h].value.p, .n = req->headers[h].value.len};
        while (s.i < s.n) {
            struct ws_pmd pmd;
            int rc = element(&s, &pmd);
            if (rc > 0) {
                *out = pmd;
                return declined;
            }
            declined += rc < 0;
        }
    }
    return declined;
}

size_t ws_pmd_write(char *out, size_t cap, const struct ws_pmd *pmd)
{
    if (!pmd->on)
        return 0;
    char bits[32] = "";
    if (pmd->server_bits_asked)
        snprintf(bits, sizeof(bits), "; server_max_window_bits=%u", (unsigned)pmd->server_bits);
    int n = snprintf(out, cap,
                     "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover%s%s\r\n",
                     pmd->server_no_context ? "; server_no_context_takeover" : "", bits);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
