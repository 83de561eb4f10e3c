/* http.c: HTTP/1.1 request heads (RFC 9112 section 2-5) and plain answers. */
#include "http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Finds the end of the head (an empty line; bare LF is tolerated, RFC 9112
 * 2.2) at or after `from`. Returns the offset just past it, or 0. */
static size_t find_head_end(const char *buf, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* The next line of head[*at..end), without its CR LF. */
static struct http_str next_line(const char *head, size_t end, size_t *at)
{
    struct http_str line = {head + *at, 0};
    const char *nl = memchr(head + *at, '\n', end - *at);
    size_t stop = nl ? (size_t)(nl - head) : end;
    line.len = stop - *at;
    if (line.len > 0 && line.p[line.len - 1] == '\r')
        line.len--;
    *at = nl ? stop + 1 : end;
    return line;
}

/* The length of "scheme://authority" at the start of an absolute-form
 * target, or 0 for any other form. */
static size_t absolute_form_prefix(struct http_str t)
{
    static const char *const schemes[] = {"http://", "https://"};
    for (size_t k = 0; k < 2; k++) {
        size_t n = strlen(schemes[k]);
        if (t.len < n || !http_str_ieq((struct http_str){t.p, n}, schemes[k]))
            continue;
        /* The authority runs to the path, the query, or the end. */
        size_t i = n;
        while (i < t.len && t.p[i] != '/' && t.p[i] != '?')
            i++;
        return i;
    }
    return 0;
}

static int parse_request_line(struct http_str l, struct http_req *req)
{
    size_t i = 0;
    while (i < l.len && is_tchar((unsigned char)l.p[i]))
        i++;
    if (i == 0 || i >= l.len || l.p[i] != ' ')
        return HTTP_REQ_BAD;
    req->method = (struct http_str){l.p, i};
    size_t t = ++i;
    /* The target is visible ASCII; RFC 9112 3.2 forbids white space in it. */
    while (i < l.len && l.p[i] > 0x20 && l.p[i] < 0x7f)
        i++;
    if (i == t || i >= l.len || l.p[i] != ' ')
        return HTTP_REQ_BAD;
    req->target = (struct http_str){l.p + t, i - t};
    i++;
    /* RFC 9112 3.2.2: a server must accept the absolute-form
     * (http://host/path?query), as proxies send it; what we route on is the
     * path and query after the authority. */
    size_t skip = absolute_form_prefix(req->target);
    req->target.p += skip;
    req->target.len -= skip;
    if (l.len - i != 8 || memcmp(l.p + i, "HTTP/1.", 7) != 0 || l.p[i + 7] < '0' ||
        l.p[i + 7] > '9')
        return HTTP_REQ_BAD;
    req->minor_version = l.p[i + 7] - '0';

    const char *q = memchr(req->target.p, '?', req->target.len);
    size_t plen = q ? (size_t)(q - req->target.p) : req->target.len;
    req->path = (struct http_str){req->target.p, plen};
    if (plen == 0 && skip > 0)
        req->path = (struct http_str){"/", 1}; /* http://host is http://host/ */
    req->query = q ? (struct http_str){q + 1, req->target.len - plen - 1}
                   : (struct http_str){req->target.p + req->target.len, 0};
    return 0;
}

static int parse_header_line(struct http_str l, struct http_header *h)
{
    size_t i = 0;
    while (i < l.len && is_tchar((unsigned char)l.p[i]))
        i++;
    /* RFC 9112 5.1: no white space between the name and the colon; a line
     * that starts with white space is obsolete folding, which we refuse. */
    if (i == 0 || i >= l.len || l.p[i] != ':')
        return HTTP_REQ_BAD;
    h->name = (struct http_str){l.p, i};
    i++;
    while (i < l.len && (l.p[i] == ' ' || l.p[i] == '\t'))
        i++;
    size_t end = l.len;
    while (end > i && (l.p[end - 1] == ' ' || l.p[end - 1] == '\t'))
        end--;
    for (size_t k = i; k < end; k++) {
        unsigned char c = (unsigned char)l.p[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return HTTP_REQ_BAD;
    }
    h->value = (struct http_str){l.p + i, end - i};
    return 0;
}

int http_req_parse(const char *buf, size_t len, size_t *scanned, struct http_req *req)
{
    /* Refuse garbage (a TLS hello, a binary probe) at its first byte instead
     * of waiting for a head that will never come. */
    if (len > 0 && !is_tchar((unsigned char)buf[0]))
        return HTTP_REQ_BAD;
    /* A terminator is at most 3 bytes, so 2 bytes already seen may begin it. */
    size_t from = *scanned > 2 ? *scanned - 2 : 0;
    size_t end = find_head_end(buf, len, from);
    if (end == 0) {
        *scanned = len;
        return len >= HTTP_REQ_MAX_HEAD ? HTTP_REQ_TOO_LARGE : HTTP_REQ_NEED_MORE;
    }
    if (end > HTTP_REQ_MAX_HEAD)
        return HTTP_REQ_TOO_LARGE;
    *scanned = end;

    memset(req, 0, sizeof(*req));
    size_t at = 0;
    int rc = parse_request_line(next_line(buf, end, &at), req);
    if (rc < 0)
        return rc;
    for (;;) {
        struct http_str l = next_line(buf, end, &at);
        if (l.len == 0)
            break;
        if (req->nheaders == HTTP_REQ_MAX_HEADERS)
            return HTTP_REQ_TOO_LARGE;
        rc = parse_header_line(l, &req->headers[req->nheaders]);
        if (rc < 0)
            return rc;
        req->nheaders++;
    }
    return (int)end;
}

bool http_str_ieq(struct http_str s, const char *lit)
{
    return strlen(lit) == s.len && strncasecmp(s.p, lit, s.len) == 0;
}

const struct http_str *http_req_header(const struct http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (http_str_ieq(req->headers[i].name, name))
            return &req->headers[i].value;
    return NULL;
}

size_t http_req_header_count(const struct http_req *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (http_str_ieq(req->headers[i].name, name))
            n++;
    return n;
}

static bool list_has_token(struct http_str v, const char *token)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t start = i;
        while (i < v.len && v.p[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v.p[end - 1] == ' ' || v.p[end - 1] == '\t'))
            end--;
        if (end > start && http_str_ieq((struct http_str){v.p + start, end - start}, token))
            return true;
    }
    return false;
}

bool http_req_header_has_token(const struct http_req *req, const char *name, const char *token)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (http_str_ieq(req->headers[i].name, name) &&
            list_has_token(req->headers[i].value, token))
            return true;
    return false;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

size_t http_resp_format(char *out, size_t cap, int status, const char *content_type,
                        const char *extra_headers, const char *body, size_t body_len)
{
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "Connection: close\r\n"
                     "%s\r\n",
                     status, http_status_text(status), content_type, body_len,
                     extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= cap || cap - (size_t)n < body_len)
        return 0;
    if (body_len)
        memcpy(out + n, body, body_len);
    return (size_t)n + body_len;
}
