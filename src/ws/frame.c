/* frame.c: RFC 6455 section 5 framing.
 *
 * The parser is a two-state machine (header, payload) fed arbitrary slices of
 * the byte stream. A payload that lies whole in one slice is unmasked in place
 * and handed out without a copy; one that spans slices is unmasked into the
 * reassembly buffer (data) or the control buffer as it arrives, so a text
 * message is UTF-8 checked byte by byte and fails at the first bad byte. */
#include "ws/frame.h"

#include <stdlib.h>
#include <string.h>

#include "ws/utf8.h"

#define HDR_MIN 2
#define CONTROL_MAX 125
/* A reassembly buffer this large is dropped between messages. */
#define MSG_KEEP_MAX 16384

void ws_frame_parser_init(struct ws_frame_parser *p, enum ws_role role, size_t max_message)
{
    memset(p, 0, sizeof(*p));
    p->role = (uint8_t)role;
    p->max_message = max_message;
}

static bool is_control(uint8_t op);

void ws_frame_parser_free(struct ws_frame_parser *p)
{
    free(p->msg);
    free(p->ctl);
    p->msg = NULL;
    p->ctl = NULL;
    p->msg_cap = 0;
    p->msg_len = 0;
}

void ws_frame_parser_shrink(struct ws_frame_parser *p)
{
    if (p->msg_opcode == 0 && p->msg) {
        free(p->msg);
        p->msg = NULL;
        p->msg_cap = 0;
        p->msg_len = 0;
    }
    /* The control buffer is in use only while a control payload is read. */
    if (p->ctl && !(p->in_payload && is_control(p->opcode))) {
        free(p->ctl);
        p->ctl = NULL;
    }
}

uint16_t ws_close_code_for(int err)
{
    switch (err) {
    case WS_ERR_UTF8:
    case WS_ERR_DEFLATE: return WS_CLOSE_BAD_DATA;
    case WS_ERR_TOO_BIG: return WS_CLOSE_TOO_BIG;
    case WS_ERR_NOMEM: return WS_CLOSE_INTERNAL;
    default: return WS_CLOSE_PROTOCOL;
    }
}

bool ws_close_code_valid(uint16_t code)
{
    /* RFC 6455 7.4.1/7.4.2: 1004-1006 and 1015 are reserved and never sent;
     * 1000-2999 are for the protocol, of which IANA has registered up to 1014;
     * 3000-4999 are for libraries and applications. */
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

static bool is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

static bool known_opcode(uint8_t op)
{
    return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY || op == WS_OP_CLOSE ||
           op == WS_OP_PING || op == WS_OP_PONG;
}

/* XORs n bytes of src with the mask, starting at mask position `phase`, into
 * dst (which may equal src). Whole 8-byte words where it can. */
static void unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4], size_t phase)
{
    uint8_t m[8];
    for (size_t i = 0; i < 8; i++)
        m[i] = mask[(phase + i) & 3];
    uint64_t mw;
    memcpy(&mw, m, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= mw;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ m[i & 7];
}

static size_t fail(struct ws_frame_parser *p, int err, size_t consumed, struct ws_event *ev)
{
    p->err = err;
    memset(ev, 0, sizeof(*ev));
    ev->type = WS_EV_ERROR;
    ev->err = err;
    return consumed;
}

/* How many header bytes the frame needs, judging by the bytes seen so far. */
static uint8_t header_need(const struct ws_frame_parser *p)
{
    if (p->hdr_len < HDR_MIN)
        return HDR_MIN;
    uint8_t need = HDR_MIN;
    uint8_t len7 = p->hdr[1] & 0x7f;
    if (len7 == 126)
        need += 2;
    else if (len7 == 127)
        need += 8;
    if (p->hdr[1] & 0x80)
        need += 4;
    return need;
}

/* Checks a complete header and starts its payload. Returns 0 or a ws_err. */
static int begin_frame(struct ws_frame_parser *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    uint8_t op = b0 & 0x0f;
    bool masked = (b1 & 0x80) != 0;
    uint8_t len7 = b1 & 0x7f;
    uint64_t len = len7;
    size_t at = HDR_MIN;

    /* RFC 6455 5.2: RSV bits belong to extensions; RFC 7692 6: permessage-deflate
     * owns RSV1, set on the first frame of a compressed data message only. */
    bool rsv1 = (b0 & 0x40) != 0;
    if ((b0 & 0x30) || (rsv1 && (!p->deflate || is_control(op) || op == WS_OP_CONT)))
        return WS_ERR_PROTOCOL;
    if (!known_opcode(op))
        return WS_ERR_PROTOCOL;
    /* RFC 6455 5.1: clients mask every frame, servers never do. */
    if (masked != (p->role == WS_ROLE_SERVER))
        return WS_ERR_PROTOCOL;
    if (len7 == 126) {
        len = ((uint64_t)p->hdr[2] << 8) | p->hdr[3];
        at += 2;
        /* RFC 6455 5.2: the minimal number of bytes must encode the length. */
        if (len < 126)
            return WS_ERR_PROTOCOL;
    } else if (len7 == 127) {
        len = 0;
        for (size_t i = 0; i < 8; i++)
            len = (len << 8) | p->hdr[2 + i];
        at += 8;
        if ((len >> 63) != 0 || len <= 0xffff)
            return WS_ERR_PROTOCOL;
    }
    if (masked)
        memcpy(p->mask, p->hdr + at, 4);

    p->opcode = op;
    p->fin = (b0 & 0x80) != 0;
    p->payload_len = len;
    p->payload_done = 0;

    if (is_control(op)) {
        /* RFC 6455 5.5: control frames are at most 125 bytes and never fragmented. */
        if (!p->fin || len > CONTROL_MAX)
            return WS_ERR_PROTOCOL;
        /* RFC 6455 5.5.1: a close body is empty or starts with a 2-byte code. */
        if (op == WS_OP_CLOSE && len == 1)
            return WS_ERR_PROTOCOL;
        p->ctl_len = 0;
        return 0;
    }

    if (op == WS_OP_CONT) {
        if (p->msg_opcode == 0)
            return WS_ERR_PROTOCOL; /* continuation with nothing to continue */
    } else {
        if (p->msg_opcode != 0)
            return WS_ERR_PROTOCOL; /* RFC 6455 5.4: fragments may not interleave */
        if (p->msg && p->msg_cap > MSG_KEEP_MAX)
            ws_frame_parser_shrink(p);
        p->msg_opcode = op;
        p->msg_deflated = rsv1;
        p->msg_len = 0;
        p->utf8_state = WS_UTF8_ACCEPT;
    }
    /* The limit is checked from the header, before any byte is buffered. A
     * compressed message is checked again as it is inflated; its own bytes
     * may pass the limit by what DEFLATE adds to data it cannot shrink. */
    size_t limit = p->max_message + (p->msg_deflated ? p->max_message / 256 + 64 : 0);
    if (len > limit || p->msg_len + len > limit)
        return WS_ERR_TOO_BIG;
    return 0;
}

/* Makes room for `more` bytes of reassembled message. */
static int msg_reserve(struct ws_frame_parser *p, size_t more)
{
    size_t want = p->msg_len + more;
    if (want <= p->msg_cap)
        return 0;
    size_t cap = p->msg_cap ? p->msg_cap : 256;
    while (cap < want)
        cap *= 2;
    if (cap > p->max_message)
        cap = p->max_message > want ? p->max_message : want;
    uint8_t *m = realloc(p->msg, cap);
    if (!m)
        return WS_ERR_NOMEM;
    p->msg = m;
    p->msg_cap = cap;
    return 0;
}

/* Turns a finished control payload into its event. */
static int control_event(struct ws_frame_parser *p, const uint8_t *pl, size_t n,
                         struct ws_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->data = pl;
    ev->len = n;
    if (p->opcode == WS_OP_PING) {
        ev->type = WS_EV_PING;
        return 0;
    }
    if (p->opcode == WS_OP_PONG) {
        ev->type = WS_EV_PONG;
        return 0;
    }
    ev->type = WS_EV_CLOSE;
    if (n >= 2) {
        uint16_t code = (uint16_t)((pl[0] << 8) | pl[1]);
        if (!ws_close_code_valid(code))
            return WS_ERR_PROTOCOL;
        /* RFC 6455 5.5.1: the reason is UTF-8; 8.1: invalid text fails with 1007. */
        if (ws_utf8_check(pl + 2, n - 2) < 0)
            return WS_ERR_UTF8;
        ev->close_code = code;
        ev->data = pl + 2;
        ev->len = n - 2;
    } else {
        ev->data = NULL;
        ev->len = 0;
    }
    return 0;
}

/* Whether the message's bytes are text to check as they come: a compressed
 * one is checked once inflated (by the connection). */
static bool checks_text(const struct ws_frame_parser *p)
{
    return p->msg_opcode == WS_OP_TEXT && !p->msg_deflated;
}

static void message_event(const struct ws_frame_parser *p, const uint8_t *data, size_t n,
                          struct ws_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = WS_EV_MESSAGE;
    ev->opcode = p->msg_opcode;
    ev->deflated = p->msg_deflated;
    ev->data = data;
    ev->len = n;
}

size_t ws_frame_parse(struct ws_frame_parser *p, uint8_t *data, size_t len, struct ws_event *ev)
{
    size_t off = 0;

    if (p->err)
        return fail(p, p->err, 0, ev);

    for (;;) {
        if (!p->in_payload) {
            uint8_t need = header_need(p);
            while (p->hdr_len < need && off < len) {
                p->hdr[p->hdr_len++] = data[off++];
                need = header_need(p);
            }
            if (p->hdr_len < need) {
                memset(ev, 0, sizeof(*ev));
                ev->type = WS_EV_NONE;
                return off;
            }
            int rc = begin_frame(p);
            if (rc < 0)
                return fail(p, rc, off, ev);
            p->hdr_len = 0;
            p->in_payload = 1;
        }

        size_t avail = len - off;
        uint64_t rem = p->payload_len - p->payload_done;
        bool control = is_control(p->opcode);

        /* Fast path: the whole payload of an unfragmented frame is here. */
        if (p->payload_done == 0 && rem <= avail &&
            (control || (p->fin && p->opcode != WS_OP_CONT))) {
            size_t n = (size_t)rem;
            uint8_t *pl = data + off;
            if (p->role == WS_ROLE_SERVER)
                unmask(pl, pl, n, p->mask, 0);
            off += n;
            p->in_payload = 0;
            if (control) {
                int rc = control_event(p, pl, n, ev);
                if (rc < 0)
                    return fail(p, rc, off, ev);
                return off;
            }
            if (checks_text(p) && ws_utf8_check(pl, n) < 0)
                return fail(p, WS_ERR_UTF8, off, ev);
            message_event(p, pl, n, ev);
            p->msg_opcode = 0;
            return off;
        }

        /* Slow path: unmask what is here into the parser's own buffer. */
        size_t take = rem < avail ? (size_t)rem : avail;
        size_t phase = (size_t)(p->payload_done & 3);
        if (control) {
            if (!p->ctl && !(p->ctl = malloc(CONTROL_MAX)))
                return fail(p, WS_ERR_NOMEM, off, ev);
            if (p->role == WS_ROLE_SERVER)
                unmask(p->ctl + p->ctl_len, data + off, take, p->mask, phase);
            else
                memcpy(p->ctl + p->ctl_len, data + off, take);
            p->ctl_len = (uint8_t)(p->ctl_len + take);
        } else if (take > 0) {
            int rc = msg_reserve(p, take);
            if (rc < 0)
                return fail(p, rc, off, ev);
            uint8_t *dst = p->msg + p->msg_len;
            if (p->role == WS_ROLE_SERVER)
                unmask(dst, data + off, take, p->mask, phase);
            else
                memcpy(dst, data + off, take);
            /* Reject invalid text at the first bad byte, not at the end. */
            if (checks_text(p) && ws_utf8_feed(&p->utf8_state, dst, take) < 0)
                return fail(p, WS_ERR_UTF8, off + take, ev);
            p->msg_len += take;
        }
        off += take;
        p->payload_done += take;
        if (p->payload_done < p->payload_len) {
            memset(ev, 0, sizeof(*ev));
            ev->type = WS_EV_NONE;
            return off;
        }

        /* The frame is complete. */
        p->in_payload = 0;
        if (control) {
            int rc = control_event(p, p->ctl, p->ctl_len, ev);
            if (rc < 0)
                return fail(p, rc, off, ev);
            return off;
        }
        if (p->fin) {
            if (checks_text(p) && p->utf8_state != WS_UTF8_ACCEPT)
                return fail(p, WS_ERR_UTF8, off, ev);
            message_event(p, p->msg, p->msg_len, ev);
            p->msg_opcode = 0;
            return off;
        }
        /* A non-final fragment: go on with the next frame. */
    }
}

size_t ws_frame_header_len(size_t len)
{
    if (len < 126)
        return 2;
    if (len <= 0xffff)
        return 4;
    return 10;
}

size_t ws_frame_write_header(uint8_t *out, uint8_t opcode, bool fin, size_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    uint64_t l = len;
    for (int i = 7; i >= 0; i--) {
        out[2 + i] = (uint8_t)l;
        l >>= 8;
    }
    return 10;
}

size_t ws_frame_encode(uint8_t *out, size_t cap, uint8_t opcode, bool fin, const void *payload,
                       size_t len)
{
    size_t h = ws_frame_header_len(len);
    if (cap < h || cap - h < len)
        return 0;
    ws_frame_write_header(out, opcode, fin, len);
    if (len)
        memcpy(out + h, payload, len);
    return h + len;
}

size_t ws_frame_encode_masked(uint8_t *out, size_t cap, uint8_t opcode, bool fin,
                              const void *payload, size_t len, const uint8_t mask[4])
{
    size_t h = ws_frame_header_len(len);
    if (cap < h + 4 || cap - h - 4 < len)
        return 0;
    ws_frame_write_header(out, opcode, fin, len);
    out[1] |= 0x80;
    memcpy(out + h, mask, 4);
    if (len)
        unmask(out + h + 4, payload, len, mask, 0);
    return h + 4 + len;
}

size_t ws_frame_encode_close(uint8_t *out, size_t cap, uint16_t code, const char *reason,
                             size_t reason_len)
{
    uint8_t body[CONTROL_MAX];
    size_t n = 0;
    if (code) {
        body[0] = (uint8_t)(code >> 8);
        body[1] = (uint8_t)code;
        n = 2;
        if (reason_len > CONTROL_MAX - 2) {
            /* Cut at a character boundary: back up over continuation bytes. */
            reason_len = CONTROL_MAX - 2;
            while (reason_len > 0 && ((uint8_t)reason[reason_len] & 0xC0) == 0x80)
                reason_len--;
        }
        if (reason_len)
            memcpy(body + 2, reason, reason_len);
        n += reason_len;
    }
    return ws_frame_encode(out, cap, WS_OP_CLOSE, true, body, n);
}
