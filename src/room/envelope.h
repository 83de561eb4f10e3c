/* envelope.h: the message objects of docs/protocol.md. Pure.
 *
 * Turns a client's text frame into the JSON message every recipient gets, and
 * builds the server's own system messages. Each message is serialized once,
 * into a json_out the caller owns, and then framed once (fbuf.h). */
#ifndef CHAT_ROOM_ENVELOPE_H
#define CHAT_ROOM_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* The id a client may choose is at most this many bytes. */
#define ENVELOPE_ID_MAX 64

/* A message the server sends is at most MAX_MESSAGE_SIZE plus this many
 * bytes: the room for the fields the server adds around a client's data.
 * A client message whose envelope would be larger (its text escaped six-fold,
 * say) is refused with too_large; backend payloads follow the same bound. */
#define ENVELOPE_SLACK 1024

/* Everything about the sender and the moment that the server sets. */
struct envelope_ctx {
    const char *client_id; /* becomes `from` */
    const char *room;      /* the connection's room; NULL on a global connection */
    const char *pod_id;    /* the pod that accepted the message */
    int64_t now_ms;        /* Unix time in milliseconds */
    size_t max_len;        /* largest message built; 0: no bound */
    uint8_t rand[16];      /* fresh random bytes, for a UUID v4 id */
};

/* Errors in a client's message; the connection stays open. */
enum envelope_err {
    ENVELOPE_ERR_TYPE = -1, /* type is not chat, presence or notification */
    ENVELOPE_ERR_ROOM = -2, /* room is not the connection's own */
    ENVELOPE_ERR_ID = -3,   /* id is not a string of at most 64 bytes */
    ENVELOPE_ERR_NOMEM = -4,
    ENVELOPE_ERR_TOO_LARGE = -5, /* the envelope would pass max_len */
    ENVELOPE_ERR_READ_ONLY = -6, /* the connection's token allows receiving only */
    /* Not about a message: Redis refused the room's channel, so messages
     * from other pods do not reach the room (told to its members). */
    ENVELOPE_ERR_UNAVAILABLE = -7,
};

/* Builds the message for a client's text frame text[0..len) (valid UTF-8) and
 * appends it to out. A JSON object gives type, data and id; anything else is
 * a chat message with data {"text": <the text>}. Returns 0, or an
 * envelope_err with nothing appended. Never grows out by much more than
 * max_len, whatever the text. */
int envelope_from_client(const struct envelope_ctx *c, const char *text, size_t len,
                         struct json_out *out);

/* The machine-readable code of an envelope_err ("not_in_room", ...). */
const char *envelope_err_code(int err);

/* A sentence for people about an envelope_err. */
const char *envelope_err_message(int err);

/* Appends the system error message answering err to out. */
void envelope_error(const struct envelope_ctx *c, int err, struct json_out *out);

/* Appends the welcome message a connection gets first. */
void envelope_welcome(const struct envelope_ctx *c, struct json_out *out);

/* Writes ms as RFC 3339 UTC with milliseconds: 2026-02-05T00:00:00.000Z. */
void envelope_timestamp(int64_t ms, char out[32]);

/* Writes the UUID v4 made of rand as 36 characters and a NUL. */
void envelope_uuid(const uint8_t rand[16], char out[37]);

/* ---- On Redis ----
 *
 * A pod's payload on Redis is its envelope with the numbering declared as
 * its last three members, in this order and nothing after them:
 *   ...,"pod":"<id>","seq":<n>,"epoch":<n>}
 * envelope_from_client and the other builders write "pod" last for this
 * (close_message), envelope_number appends "seq" and "epoch" (the publisher,
 * redis/seq.h numbers them), and envelope_numbering reads all three back
 * from the end, so a receiver finds them without parsing the message and
 * can cut them off before clients see it (they get it up to "pod"'s value,
 * closed). A payload that does not end this way (a backend's) has no
 * numbering. */
struct envelope_numbering {
    const char *pod; /* into the payload, not NUL-terminated */
    size_t pod_len;
    uint64_t seq, epoch;
    size_t body_len; /* the payload up to its numbering (",\"seq\":..."): what clients
                        get, with a closing brace */
};

/* Reads the numbering at the end of payload. False when it does not end
 * that way. */
bool envelope_numbering(const char *payload, size_t len, struct envelope_numbering *t);

/* Writes payload (an envelope: a JSON object whose last member is "pod")
 * with "seq" and "epoch" added after it into out. Returns the length, or 0
 * when it does not fit in cap or payload does not end in '}'. */
size_t envelope_number(const char *payload, size_t len, uint64_t seq, uint64_t epoch, char *out,
                       size_t cap);

#endif
