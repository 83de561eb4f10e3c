/* compressor.c: zlib behind a worker's permessage-deflate (compressor.h). */
#include "compressor.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "stats.h"
#include "ws/frame.h"
#include "ws/pmd.h"

/* zlib's level for every context: chat-sized JSON gains little past 6, and
 * a stream's message is compressed once for all its members. */
#define LEVEL 6
/* memLevel of a stream: 2^(4+7) hash heads and 2^(4+6) symbols per block.
 * With the 32 KiB window a busy context holds about 146 KB (measured: 64 KB
 * window, 64 KB chains, 4 KB heads, 4 KB symbols, its state) instead of
 * about 270 KB at zlib's default memLevel 8, for the same ratio on chat
 * messages, which are far shorter than a block. */
#define STREAM_MEM_LEVEL 4
/* The inflated-message buffer is kept between messages up to this size. */
#define KEEP (256u << 10)

/* One room's deflate context in one worker. */
struct room_stream {
    z_stream z;
    struct list_node link;     /* in the compressor's streams, least recently used first */
    struct room_stream **home; /* the room's pointer to it */
    uint64_t last_ms;          /* its last message */
    uint32_t age;              /* messages since it started afresh */
};

static void bump(atomic_uint_fast64_t *c, uint64_t by)
{
    atomic_fetch_add_explicit(c, by, memory_order_relaxed);
}

void compressor_init(struct compressor *z, uint32_t cap, struct worker_counters *counters)
{
    memset(z, 0, sizeof(*z));
    z->cap = cap;
    z->counters = counters;
}

static void free_stream(struct compressor *z, struct room_stream *s)
{
    list_unlink(&z->streams, &s->link);
    *s->home = NULL;
    deflateEnd(&s->z);
    free(s);
    z->alive--;
    atomic_fetch_sub_explicit(&z->counters->deflate_streams, 1, memory_order_relaxed);
}

void compressor_free(struct compressor *z)
{
    while (z->streams.head)
        free_stream(z, list_entry(z->streams.head, struct room_stream, link));
    if (z->alone)
        deflateEnd(z->alone);
    if (z->inflater)
        inflateEnd(z->inflater);
    free(z->alone);
    free(z->inflater);
    free(z->out);
    free(z->in);
    memset(z, 0, sizeof(*z));
}

/* Resizes a buffer of the compressor's to cap bytes. */
static bool resize(uint8_t **buf, size_t *buf_cap, size_t cap)
{
    uint8_t *p = realloc(*buf, cap);
    if (!p)
        return false;
    *buf = p;
    *buf_cap = cap;
    return true;
}

/* Grows the scratch buffer to at least want bytes. */
static bool out_reserve(struct compressor *z, size_t want)
{
    if (want <= z->out_cap)
        return true;
    size_t cap = z->out_cap ? z->out_cap : 4096;
    while (cap < want)
        cap *= 2;
    return resize(&z->out, &z->out_cap, cap);
}

/* Compresses payload with s, ending on a sync flush whose 00 00 ff ff is
 * cut (RFC 7692 7.2.1), into a frame with RSV1. NULL when out of memory. */
static struct fbuf *squeeze(struct compressor *z, z_stream *s, uint8_t opcode,
                            const uint8_t *payload, size_t len)
{
    size_t done = 0;
    s->next_in = (Bytef *)(uintptr_t)payload;
    s->avail_in = (uInt)len;
    if (!out_reserve(z, deflateBound(s, (uLong)len) + 16))
        return NULL;
    for (;;) {
        s->next_out = z->out + done;
        s->avail_out = (uInt)(z->out_cap - done);
        int rc = deflate(s, Z_SYNC_FLUSH);
        done = z->out_cap - s->avail_out;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return NULL;
        /* zlib: output space left over means the flush is complete. */
        if (s->avail_out > 0)
            break;
        if (!out_reserve(z, z->out_cap * 2))
            return NULL;
    }
    if (done >= 4 && !memcmp(z->out + done - 4, "\x00\x00\xff\xff", 4))
        done -= 4;
    bump(&z->counters->deflate_messages, 1);
    bump(&z->counters->deflate_bytes_in, len);
    bump(&z->counters->deflate_bytes_out, done);
    return fbuf_new_deflated(opcode, z->out, done);
}

static struct room_stream *new_stream(struct compressor *z, struct room_stream **home)
{
    if (z->alive >= z->cap)
        return NULL;
    struct room_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    /* Raw DEFLATE (negative bits), the streams' window. */
    if (deflateInit2(&s->z, LEVEL, Z_DEFLATED, -WS_PMD_STREAM_BITS, STREAM_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(s);
        return NULL;
    }
    s->home = home;
    *home = s;
    list_push_tail(&z->streams, &s->link);
    z->alive++;
    bump(&z->counters->deflate_streams, 1);
    return s;
}

struct fbuf *compressor_stream(struct compressor *z, struct room_stream **home, uint8_t opcode,
                               const uint8_t *payload, size_t len, bool restart, uint64_t now,
                               bool *restarted)
{
    struct room_stream *s = *home;
    *restarted = false;
    if (!s) {
        if (!(s = new_stream(z, home))) {
            bump(&z->counters->deflate_stream_refused, 1);
            return NULL;
        }
        *restarted = true;
    } else if (restart) {
        deflateReset(&s->z);
        s->age = 0;
        *restarted = true;
    }
    struct fbuf *b = squeeze(z, &s->z, opcode, payload, len);
    if (!b) {
        /* The context may hold part of this message: nobody got it, so
         * the stream must start afresh before anyone gets another. */
        free_stream(z, s);
        *restarted = false;
        return NULL;
    }
    s->age++;
    s->last_ms = now;
    list_unlink(&z->streams, &s->link);
    list_push_tail(&z->streams, &s->link);
    return b;
}

bool compressor_restart_due(const struct room_stream *s, uint32_t waiting,
                            uint32_t stream_members)
{
    if (waiting == 0 || !s)
        return false; /* no stream: the next one starts afresh anyway */
    return s->age >= COMPRESSOR_RESTART_AFTER || waiting * 2 >= stream_members;
}

void compressor_forget(struct compressor *z, struct room_stream **home)
{
    if (*home)
        free_stream(z, *home);
}

void compressor_sweep(struct compressor *z, uint64_t now)
{
    while (z->streams.head) {
        struct room_stream *s = list_entry(z->streams.head, struct room_stream, link);
        if (s->last_ms + COMPRESSOR_IDLE_MS > now)
            break;
        free_stream(z, s);
    }
    if (z->in_cap > KEEP) {
        free(z->in);
        z->in = NULL;
        z->in_cap = 0;
    }
}

struct fbuf *compressor_alone(struct compressor *z, uint8_t opcode, const uint8_t *payload,
                              size_t len)
{
    if (!z->alone) {
        z_stream *s = calloc(1, sizeof(*s));
        if (!s || deflateInit2(s, LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(s);
            return NULL;
        }
        z->alone = s;
    } else {
        deflateReset(z->alone);
    }
    return squeeze(z, z->alone, opcode, payload, len);
}

/* Grows the inflate buffer towards max + 1 bytes (one past the limit is
 * how the limit is seen to be passed). */
static bool in_reserve(struct compressor *z, size_t max)
{
    size_t cap = z->in_cap ? z->in_cap * 2 : 4096;
    if (cap > max + 1)
        cap = max + 1;
    return cap > z->in_cap && resize(&z->in, &z->in_cap, cap);
}

int compressor_inflate(struct compressor *z, const uint8_t *in, size_t len, size_t max,
                       const uint8_t **out, size_t *out_len)
{
    if (!z->inflater) {
        z_stream *s = calloc(1, sizeof(*s));
        if (!s || inflateInit2(s, -15) != Z_OK) {
            free(s);
            return WS_ERR_NOMEM;
        }
        z->inflater = s;
    } else {
        inflateReset(z->inflater); /* we asked for client_no_context_takeover */
    }
    z_stream *s = z->inflater;
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    const uint8_t *part[2] = {in, tail};
    size_t part_len[2] = {len, sizeof(tail)}, done = 0;
    for (int k = 0; k < 2; k++) {
        s->next_in = (Bytef *)(uintptr_t)part[k];
        s->avail_in = (uInt)part_len[k];
        while (s->avail_in > 0 || done == z->in_cap) {
            if (done == z->in_cap && !in_reserve(z, max))
                return done > max ? WS_ERR_TOO_BIG : WS_ERR_NOMEM;
            s->next_out = z->in + done;
            s->avail_out = (uInt)(z->in_cap - done);
            int rc = inflate(s, Z_SYNC_FLUSH);
            done = z->in_cap - s->avail_out;
            if (done > max)
                return WS_ERR_TOO_BIG;
            if (rc == Z_STREAM_END)
                goto whole; /* a final block: what follows it is not the message's */
            if (rc == Z_MEM_ERROR)
                return WS_ERR_NOMEM;
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return WS_ERR_DEFLATE;
            if (rc == Z_BUF_ERROR && s->avail_out > 0)
                break; /* nothing more to take: all of this part is in */
        }
    }
whole:
    *out = z->in;
    *out_len = done;
    return 0;
}
