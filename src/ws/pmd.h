/* pmd.h: negotiating permessage-deflate (RFC 7692) in the upgrade. Pure.
 *
 * The server accepts the first offer in the client's
 * Sec-WebSocket-Extensions headers whose parameters it can honour (RFC 7692
 * 5.1, 7.1) and declines the rest by not naming them: a declined offer never
 * refuses the upgrade. It always asks for client_no_context_takeover (7.1.1.1
 * lets a server add it), so one inflater per worker, reset per message,
 * reads every client. */
#ifndef CHAT_WS_PMD_H
#define CHAT_WS_PMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* The window the server's room streams use (2^15 = 32 KiB, what a
 * per-connection compressor gets: bench/README.md measured 8 KiB at 1.07x
 * the wire bytes of ws' per-connection contexts, 32 KiB at 0.98x). A client
 * that limits the server's window below it gets no stream frames. */
#define WS_PMD_STREAM_BITS 15

/* What was agreed for one connection. */
struct ws_pmd {
    bool on;                /* permessage-deflate is in use */
    bool server_no_context; /* the client asked for server_no_context_takeover */
    bool server_bits_asked; /* the client sent server_max_window_bits (answered with it) */
    uint8_t server_bits;    /* the largest window the server may use: 8..15 */
};

/* Looks at every Sec-WebSocket-Extensions header of req, in order, and
 * fills *out with the first permessage-deflate offer that is well formed
 * and whose parameters are known (out->on false when none is). Returns how
 * many permessage-deflate offers were declined before it (or in all). */
unsigned ws_pmd_negotiate(const struct http_req *req, struct ws_pmd *out);

/* Writes the Sec-WebSocket-Extensions answer line (with its CRLF) for an
 * agreed pmd. Returns its length, or 0 when cap is too small or pmd is off. */
size_t ws_pmd_write(char *out, size_t cap, const struct ws_pmd *pmd);

/* Whether the room streams' frames may go to this connection: the server
 * keeps context, in a window no larger than the client allows. */
static inline bool ws_pmd_takes_stream(const struct ws_pmd *p)
{
    return p->on && !p->server_no_context && p->server_bits >= WS_PMD_STREAM_BITS;
}

/* Whether frames compressed alone with a full window (2^15) may go to it. */
static inline bool ws_pmd_takes_alone(const struct ws_pmd *p)
{
    return p->on && p->server_bits == 15;
}

#endif
