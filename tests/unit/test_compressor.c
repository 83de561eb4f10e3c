/* test_compressor.c: room streams (in step, restart points, the cap, idle
 * freeing), messages compressed alone, and bounded inflating, each read
 * back with an independent zlib inflater as a client would. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "compressor.h"
#include "stats.h"
#include "suites.h"
#include "ws/frame.h"

static struct worker_counters ctr;

/* A client's inflater: keeps its window across messages (context takeover). */
struct client {
    z_stream z;
};

static void client_init(struct client *c)
{
    memset(c, 0, sizeof(*c));
    ck_assert_int_eq(inflateInit2(&c->z, -15), Z_OK);
}

/* Inflates one frame as RFC 7692 7.2.2 says; returns the length or -1. */
static long client_read(struct client *c, const struct fbuf *f, char *out, size_t cap)
{
    ck_assert_int_eq(f->data[0] & 0x40, 0x40); /* RSV1 */
    size_t n = f->len - f->hdr_len;
    unsigned char *in = malloc(n + 4);
    memcpy(in, fbuf_payload(f), n);
    memcpy(in + n, "\x00\x00\xff\xff", 4);
    c->z.next_in = in;
    c->z.avail_in = (uInt)(n + 4);
    c->z.next_out = (Bytef *)out;
    c->z.avail_out = (uInt)cap;
    int rc = inflate(&c->z, Z_SYNC_FLUSH);
    free(in);
    if (rc != Z_OK && rc != Z_BUF_ERROR)
        return -1;
    return (long)(cap - c->z.avail_out);
}

static void message(char *buf, size_t cap, int i)
{
    snprintf(buf, cap,
             "{\"id\":\"%08x-aaaa\",\"type\":\"chat\",\"room\":\"lobby\",\"from\":\"user%d\","
             "\"data\":{\"text\":\"message number %d of the test\"},\"timestamp\":"
             "\"2026-12-08T00:00:%02d.000Z\"}",
             i * 7919, i % 5, i, i % 60);
}

static struct fbuf *stream_msg(struct compressor *z, struct room_stream **home, int i,
                               bool restart, uint64_t now, bool *restarted)
{
    char m[512];
    message(m, sizeof(m), i);
    return compressor_stream(z, home, WS_OP_TEXT, (const uint8_t *)m, strlen(m), restart, now,
                             restarted);
}

static void expect(struct client *c, struct fbuf *f, int i)
{
    char want[512], got[1024];
    message(want, sizeof(want), i);
    long n = client_read(c, f, got, sizeof(got));
    ck_assert_int_eq(n, (long)strlen(want));
    ck_assert(memcmp(got, want, strlen(want)) == 0);
}

START_TEST(members_in_step_read_every_frame_and_the_ratio_shows_the_context)
{
    struct compressor z;
    compressor_init(&z, 4, &ctr);
    struct room_stream *home = NULL;
    struct client a, b;
    client_init(&a);
    client_init(&b);
    size_t packed = 0, plain = 0;
    for (int i = 0; i < 100; i++) {
        bool restarted;
        struct fbuf *f = stream_msg(&z, &home, i, false, 1000, &restarted);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(restarted, i == 0); /* made at the first message only */
        expect(&a, f, i);
        expect(&b, f, i);
        packed += (size_t)(f->len - f->hdr_len);
        char m[512];
        message(m, sizeof(m), i);
        plain += strlen(m);
        fbuf_unref(f);
    }
    /* With the window of earlier messages, chat JSON shrinks well below half. */
    ck_assert_uint_lt(packed * 100, plain * 35);
    ck_assert_ptr_nonnull(home);
    compressor_free(&z);
    ck_assert_ptr_null(home); /* the room's pointer is cleared */
    inflateEnd(&a.z);
    inflateEnd(&b.z);
}
END_TEST

START_TEST(a_joiner_reads_from_the_restart_on)
{
    struct compressor z;
    compressor_init(&z, 4, &ctr);
    struct room_stream *home = NULL;
    struct client old, joiner;
    client_init(&old);
    bool restarted;
    for (int i = 0; i < 10; i++) {
        struct fbuf *f = stream_msg(&z, &home, i, false, 1000, &restarted);
        expect(&old, f, i);
        fbuf_unref(f);
    }
    /* Mid-stream, a fresh inflater cannot read the stream's frame: the
     * frame refers to messages it never saw (why joiners get plain frames). */
    struct fbuf *f = stream_msg(&z, &home, 3, false, 1000, &restarted);
    client_init(&joiner);
    char got[1024];
    long n = client_read(&joiner, f, got, sizeof(got));
    char want[512];
    message(want, sizeof(want), 3);
    ck_assert(n != (long)strlen(want) || memcmp(got, want, (size_t)n) != 0);
    expect(&old, f, 3);
    fbuf_unref(f);
    inflateEnd(&joiner.z);
    /* After a restart both read everything, the joiner from a fresh start
     * (its inflater saw other data before: a restart refers to none of it). */
    client_init(&joiner);
    f = stream_msg(&z, &home, 42, false, 1000, &restarted);
    expect(&old, f, 42); /* the joiner got this one plain */
    fbuf_unref(f);
    for (int i = 50; i < 60; i++) {
        f = stream_msg(&z, &home, i, i == 50, 1000, &restarted);
        ck_assert_int_eq(restarted, i == 50);
        expect(&old, f, i);
        expect(&joiner, f, i);
        fbuf_unref(f);
    }
    compressor_free(&z);
    inflateEnd(&old.z);
    inflateEnd(&joiner.z);
}
END_TEST

START_TEST(restarts_wait_for_age_or_many_joiners)
{
    struct compressor z;
    compressor_init(&z, 4, &ctr);
    struct room_stream *home = NULL;
    ck_assert(!compressor_restart_due(NULL, 5, 5)); /* a new stream starts afresh anyway */
    bool restarted;
    struct fbuf *f = stream_msg(&z, &home, 0, false, 1000, &restarted);
    fbuf_unref(f);
    ck_assert(!compressor_restart_due(home, 0, 10)); /* nobody waits */
    ck_assert(!compressor_restart_due(home, 1, 10)); /* one of ten, a young stream */
    ck_assert(compressor_restart_due(home, 5, 10));  /* half of them */
    for (int i = 1; i < COMPRESSOR_RESTART_AFTER; i++) {
        ck_assert(!compressor_restart_due(home, 1, 10));
        fbuf_unref(stream_msg(&z, &home, i, false, 1000, &restarted));
    }
    ck_assert(compressor_restart_due(home, 1, 10)); /* old enough */
    fbuf_unref(stream_msg(&z, &home, 99, true, 1000, &restarted));
    ck_assert(restarted && !compressor_restart_due(home, 1, 10));
    compressor_free(&z);
}
END_TEST

START_TEST(the_cap_and_idle_rooms)
{
    struct compressor z;
    memset(&ctr, 0, sizeof(ctr));
    compressor_init(&z, 2, &ctr);
    struct room_stream *room[3] = {NULL, NULL, NULL};
    bool restarted;
    fbuf_unref(stream_msg(&z, &room[0], 0, false, 1000, &restarted));
    fbuf_unref(stream_msg(&z, &room[1], 0, false, 5000, &restarted));
    /* Past the cap the third room has no stream, and that is counted. */
    ck_assert_ptr_null(stream_msg(&z, &room[2], 0, false, 5000, &restarted));
    ck_assert_ptr_null(room[2]);
    ck_assert_uint_eq(ctr.deflate_stream_refused, 1);
    ck_assert_uint_eq(ctr.deflate_streams, 2);
    /* Idle: the first room's stream goes, the second (used later) stays. */
    compressor_sweep(&z, 1000 + COMPRESSOR_IDLE_MS);
    ck_assert_ptr_null(room[0]);
    ck_assert_ptr_nonnull(room[1]);
    ck_assert_uint_eq(ctr.deflate_streams, 1);
    /* Its next message makes a fresh one, which every member can read. */
    struct fbuf *f = stream_msg(&z, &room[0], 7, false, 20000, &restarted);
    ck_assert(restarted);
    struct client c;
    client_init(&c);
    expect(&c, f, 7);
    fbuf_unref(f);
    /* A room whose stream members all left forgets its stream. */
    compressor_forget(&z, &room[1]);
    ck_assert_ptr_null(room[1]);
    ck_assert_uint_eq(ctr.deflate_streams, 1);
    compressor_free(&z);
    ck_assert_uint_eq(ctr.deflate_streams, 0);
    inflateEnd(&c.z);
}
END_TEST

START_TEST(alone_frames_need_no_history)
{
    struct compressor z;
    compressor_init(&z, 0, &ctr);
    for (int i = 0; i < 3; i++) {
        struct fbuf *f = compressor_alone(&z, WS_OP_TEXT, (const uint8_t *)"hello hello hello", 17);
        ck_assert_ptr_nonnull(f);
        struct client c; /* a new reader each time reads it */
        client_init(&c);
        char got[64];
        ck_assert_int_eq(client_read(&c, f, got, sizeof(got)), 17);
        ck_assert(memcmp(got, "hello hello hello", 17) == 0);
        inflateEnd(&c.z);
        fbuf_unref(f);
    }
    compressor_free(&z);
}
END_TEST

/* Raw DEFLATE of data, ending on a sync flush with its marker cut, as a
 * client sends it. */
static size_t client_deflate(const void *data, size_t n, unsigned char *out, size_t cap)
{
    z_stream s = {0};
    ck_assert_int_eq(deflateInit2(&s, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    s.next_in = (Bytef *)(uintptr_t)data;
    s.avail_in = (uInt)n;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&s, Z_SYNC_FLUSH), Z_OK);
    size_t len = cap - s.avail_out;
    deflateEnd(&s);
    ck_assert(len >= 4 && memcmp(out + len - 4, "\x00\x00\xff\xff", 4) == 0);
    return len - 4;
}

START_TEST(inflating_is_bounded_and_checked)
{
    struct compressor z;
    compressor_init(&z, 0, &ctr);
    static unsigned char bomb_src[8 << 20], packed[64 << 10];
    memset(bomb_src, 'a', sizeof(bomb_src));
    size_t n = client_deflate("hello", 5, packed, sizeof(packed));
    const uint8_t *out;
    size_t len;
    ck_assert_int_eq(compressor_inflate(&z, packed, n, 100, &out, &len), 0);
    ck_assert(len == 5 && memcmp(out, "hello", 5) == 0);
    /* Exactly at the limit is fine; one past it is too big. */
    ck_assert_int_eq(compressor_inflate(&z, packed, n, 5, &out, &len), 0);
    ck_assert_int_eq(compressor_inflate(&z, packed, n, 4, &out, &len), WS_ERR_TOO_BIG);
    /* 8 MiB of one letter packs into a few KB; inflating stops at the limit
     * and never holds more than it. */
    n = client_deflate(bomb_src, sizeof(bomb_src), packed, sizeof(packed));
    ck_assert_uint_lt(n, 16 << 10);
    ck_assert_int_eq(compressor_inflate(&z, packed, n, 65536, &out, &len), WS_ERR_TOO_BIG);
    ck_assert_uint_le(z.in_cap, 65537);
    /* Not DEFLATE at all. */
    ck_assert_int_eq(compressor_inflate(&z, (const uint8_t *)"\xff\xff\xff\xff", 4, 100, &out,
                                        &len),
                     WS_ERR_DEFLATE);
    /* And the inflater is fine for the next message. */
    n = client_deflate("again", 5, packed, sizeof(packed));
    ck_assert_int_eq(compressor_inflate(&z, packed, n, 100, &out, &len), 0);
    ck_assert(len == 5 && memcmp(out, "again", 5) == 0);
    compressor_free(&z);
}
END_TEST

SUITE(compressor, members_in_step_read_every_frame_and_the_ratio_shows_the_context,
      a_joiner_reads_from_the_restart_on, restarts_wait_for_age_or_many_joiners,
      the_cap_and_idle_rooms, alone_frames_need_no_history, inflating_is_bounded_and_checked)
