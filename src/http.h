/* http.h: the HTTP/1.1 request-head parser and plain answers. Pure.
 *
 * The caller accumulates the bytes of one request head in its own buffer and
 * calls http_req_parse after each read. Only bytes not seen before are searched
 * for the end of the head (a slowloris client costs nothing per byte); once the
 * head is complete it is parsed once, and every string in the result points
 * into the caller's buffer. */
#ifndef CHAT_HTTP_H
#define CHAT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_REQ_MAX_HEAD 8192
#define HTTP_REQ_MAX_HEADERS 64

enum http_req_status {
    HTTP_REQ_NEED_MORE = -1, /* the head is not complete yet */
    HTTP_REQ_BAD = -2,       /* not an HTTP/1.x request head: answer 400 */
    HTTP_REQ_TOO_LARGE = -3, /* over HTTP_REQ_MAX_HEAD or too many headers: 431 */
};

struct http_str {
    const char *p;
    size_t len;
};

struct http_header {
    struct http_str name;
    struct http_str value; /* without surrounding white space */
};

struct http_req {
    struct http_str method;
    struct http_str target; /* as sent: path and query */
    struct http_str path;   /* target up to '?' */
    struct http_str query;  /* after '?', empty when none */
    int minor_version;      /* HTTP/1.<minor> */
    size_t nheaders;
    struct http_header headers[HTTP_REQ_MAX_HEADERS];
};

/* Parses buf[0..len), the bytes received so far. *scanned is the caller's
 * cursor (start it at 0, keep it between calls for the same request). Returns
 * the length of the complete head (> 0) with *req filled in, or an
 * http_req_status. Any thread. */
int http_req_parse(const char *buf, size_t len, size_t *scanned, struct http_req *req);

/* The first header called name (case-insensitive), or NULL. */
const struct http_str *http_req_header(const struct http_req *req, const char *name);

/* How many headers are called name. */
size_t http_req_header_count(const struct http_req *req, const char *name);

/* Whether some header called name holds token in its comma-separated list
 * (case-insensitive, as for Connection and Upgrade). */
bool http_req_header_has_token(const struct http_req *req, const char *name, const char *token);

/* Whether s equals the NUL-terminated lit, case-insensitively. */
bool http_str_ieq(struct http_str s, const char *lit);

/* The standard reason phrase of a status code. */
const char *http_status_text(int status);

/* Formats a complete answer with Content-Length and Connection: close.
 * extra_headers is NULL or lines each ending in "\r\n". Returns the length
 * written, or 0 when cap is too small. The body is copied after the head. */
size_t http_resp_format(char *out, size_t cap, int status, const char *content_type,
                        const char *extra_headers, const char *body, size_t body_len);

#endif
