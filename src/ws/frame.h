/* frame.h: the RFC 6455 frame parser and encoder. Pure: bytes in, events out.
 *
 * The parser is fed whatever bytes arrived and hands back one event at a time:
 * a whole message (fragments reassembled, text validated as UTF-8), a ping, a
 * pong, a close, or an error. Any split of the input gives the same events.
 * Errors are sticky: once an error event is returned the parser returns it
 * again and consumes nothing. Limits are fields set by ws_frame_parser_init. */
#ifndef CHAT_WS_FRAME_H
#define CHAT_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Protocol errors; ws_close_code_for maps each to its RFC 6455 7.4.1 code. */
enum ws_err {
    WS_ERR_PROTOCOL = -1, /* 1002 */
    WS_ERR_UTF8 = -2,     /* 1007 */
    WS_ERR_TOO_BIG = -3,  /* 1009 */
    WS_ERR_NOMEM = -4,    /* 1011 */
    WS_ERR_DEFLATE = -5,  /* 1007: a compressed message that does not inflate */
};

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

enum ws_event_type {
    WS_EV_NONE,    /* every byte given was consumed; feed more */
    WS_EV_MESSAGE, /* a whole text or binary message */
    WS_EV_PING,
    WS_EV_PONG,
    WS_EV_CLOSE,
    WS_EV_ERROR,
};

/* One parsed event. data points into the caller's input or into the parser's
 * own buffer, and stays valid until the next call on the same parser. */
struct ws_event {
    enum ws_event_type type;
    uint8_t opcode;      /* WS_EV_MESSAGE: WS_OP_TEXT or WS_OP_BINARY */
    bool deflated;       /* WS_EV_MESSAGE: RSV1 was set (permessage-deflate): data is
                          * compressed, its text not yet checked */
    const uint8_t *data; /* message or control payload; close: the reason */
    size_t len;
    uint16_t close_code; /* WS_EV_CLOSE: the code, or 0 when none was sent */
    int err;             /* WS_EV_ERROR: a ws_err */
};

enum ws_role {
    WS_ROLE_SERVER, /* frames from clients: must be masked (RFC 6455 5.1) */
    WS_ROLE_CLIENT, /* frames from servers: must not be masked */
};

/* The state of one connection's incoming stream; owned by whoever owns the
 * connection (a worker thread), never shared. */
struct ws_frame_parser {
    size_t max_message; /* limit on a reassembled message, in bytes */
    uint8_t role;       /* enum ws_role */
    uint8_t deflate;    /* permessage-deflate is agreed: RSV1 may mark a message */
    int err;            /* sticky ws_err, 0 while healthy */

    /* The frame being read. */
    uint8_t in_payload; /* 0: reading a header, 1: reading its payload */
    uint8_t hdr_len;    /* header bytes collected so far */
    uint8_t hdr[14];
    uint8_t opcode;
    uint8_t fin;
    uint8_t mask[4];
    uint64_t payload_len;
    uint64_t payload_done;

    /* The message being reassembled (msg_opcode 0: none in progress). */
    uint8_t msg_opcode;
    uint8_t msg_deflated; /* its first frame had RSV1 */
    uint32_t utf8_state;
    uint8_t *msg; /* heap, only while a message spans frames or reads */
    size_t msg_len;
    size_t msg_cap;

    /* A control frame's payload when it spans reads (RFC 6455 5.5: <= 125
     * bytes). Heap, allocated only then, so an idle connection stays small. */
    uint8_t ctl_len;
    uint8_t *ctl;
};

/* Prepares a parser. Any thread; the caller owns p. */
void ws_frame_parser_init(struct ws_frame_parser *p, enum ws_role role, size_t max_message);

/* Frees the parser's buffers; p may be initialised again afterwards. */
void ws_frame_parser_free(struct ws_frame_parser *p);

/* Releases the reassembly buffer when no message is in progress, so that an
 * idle connection holds no heap memory. */
void ws_frame_parser_shrink(struct ws_frame_parser *p);

/* Parses from data[0..len) until one event is complete or the input is used
 * up. Returns how many bytes were consumed and fills *ev (WS_EV_NONE when all
 * of them were consumed without completing an event). The payload of a frame
 * that lies whole in the input is unmasked in place, which is why data is not
 * const. Call again with the rest of the input until it returns WS_EV_NONE. */
size_t ws_frame_parse(struct ws_frame_parser *p, uint8_t *data, size_t len, struct ws_event *ev);

/* The close code that answers a ws_err. */
uint16_t ws_close_code_for(int err);

/* Whether a close code may appear in a close frame (RFC 6455 7.4). */
bool ws_close_code_valid(uint16_t code);

/* Bytes of header an unmasked frame of payload length len needs: 2, 4 or 10. */
size_t ws_frame_header_len(size_t len);

/* Writes an unmasked (server) frame header with the shortest length form.
 * out needs ws_frame_header_len(len) bytes. Returns the bytes written. */
size_t ws_frame_write_header(uint8_t *out, uint8_t opcode, bool fin, size_t len);

/* Writes a whole unmasked frame into out[0..cap). Returns its length, or 0
 * when cap is too small. */
size_t ws_frame_encode(uint8_t *out, size_t cap, uint8_t opcode, bool fin, const void *payload,
                       size_t len);

/* Writes a whole masked (client) frame. Returns its length, or 0 when cap is
 * too small. Used by tests and the load generator. */
size_t ws_frame_encode_masked(uint8_t *out, size_t cap, uint8_t opcode, bool fin,
                              const void *payload, size_t len, const uint8_t mask[4]);

/* Writes a close frame: no payload when code is 0, else the code and up to
 * 123 bytes of reason, cut at a character boundary. Returns its length
 * (at most 127), or 0 when cap is too small. */
size_t ws_frame_encode_close(uint8_t *out, size_t cap, uint16_t code, const char *reason,
                             size_t reason_len);

#endif
