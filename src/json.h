/* json.h: a validating JSON scanner and a string builder. Pure.
 *
 * The envelope carries a client's `data` through byte for byte. A tree parser
 * (cJSON) turns every number into a double, so 12345678901234567891 would
 * reach other clients as 1.2345678901234568e+19; this scanner instead checks
 * the grammar of RFC 8259 and reports where each member of the top-level
 * object lies in the input, so values are copied, never reprinted. */
#ifndef CHAT_JSON_H
#define CHAT_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Nesting deeper than this is refused, so hostile input cannot exhaust the stack. */
#define JSON_MAX_DEPTH 128

enum json_type {
    JSON_INVALID,
    JSON_OBJECT,
    JSON_ARRAY,
    JSON_STRING,
    JSON_NUMBER,
    JSON_TRUE,
    JSON_FALSE,
    JSON_NULL,
};

/* A value's bytes in the input, quotes included for strings. */
struct json_span {
    const char *p;
    size_t len;
    enum json_type type;
};

struct json_member {
    struct json_span key; /* a JSON_STRING span */
    struct json_span value;
};

/* The type of s[0..len) if it is exactly one JSON value (white space around
 * it allowed), else JSON_INVALID. Does not check UTF-8: see ws/utf8.h. */
enum json_type json_check(const char *s, size_t len);

/* Walks the members of the object s[0..len). Start with *pos = 0. Returns 1
 * with *m filled, 0 after the last member when the object is well formed to
 * its end, -1 when s is not exactly one well-formed object. */
int json_object_next(const char *s, size_t len, size_t *pos, struct json_member *m);

/* Walks the elements of the array s[0..len) the same way: 1 with *v filled,
 * 0 after the last, -1 when s is not exactly one well-formed array. */
int json_array_next(const char *s, size_t len, size_t *pos, struct json_span *v);

/* Decodes a JSON_STRING span into out[0..cap) (not NUL-terminated). Returns
 * the decoded length, or -1 when it does not fit or holds a lone surrogate. */
long json_string_decode(struct json_span str, char *out, size_t cap);

/* Whether a JSON_STRING span decodes to exactly the NUL-terminated key. */
bool json_string_eq(struct json_span str, const char *key);

/* A growing output buffer. The owner frees p with json_out_free. */
struct json_out {
    char *p;
    size_t len;
    size_t cap;
    bool oom; /* an append failed; the contents are then incomplete */
};

void json_out_raw(struct json_out *o, const char *s, size_t len);
void json_out_lit(struct json_out *o, const char *s);
/* The length of s[0..len) as json_out_str writes it, quotes included. */
size_t json_str_len(const char *s, size_t len);
/* Appends s[0..len) as a JSON string literal, quotes included. */
void json_out_str(struct json_out *o, const char *s, size_t len);
/* Appends s as a JSON string, or null when s is NULL. */
void json_out_str_or_null(struct json_out *o, const char *s);
void json_out_free(struct json_out *o);

#endif
