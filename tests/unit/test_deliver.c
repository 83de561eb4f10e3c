/* test_deliver.c: what each member of a room reads when some compress.
 * Members over socketpairs, each read as its client would (our frame
 * parser, and a zlib inflater that keeps its window, as a browser's does):
 * stream members in step read the stream's frames; a joiner reads plain
 * frames until the stream restarts, then compressed ones; a member without
 * context reads frames compressed alone; a plain member reads plain ones;
 * global messages are plain for stream members; and every member reads
 * every message exactly as it was sent. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "config.h"
#include "deliver.h"
#include "stats.h"
#include "suites.h"

enum { M_STREAM, M_PLAIN, M_ALONE };

/* One member and its client's end. */
struct member {
    struct conn *c;
    int peer;
    struct ws_frame_parser parser;
    z_stream z;
    unsigned plain, compressed; /* frames read of each kind */
    unsigned read;              /* messages read */
    char last[256];
};

struct rig {
    struct conn_set s;
    struct config cfg;
    struct worker_counters ctr;
    struct room room;  /* one room's members (room_m) */
    struct room chats; /* every member, for global messages (chat_m) */
    struct member m[10];
    unsigned n;
    unsigned sent;
};

static void on_message(void *o, struct conn *c, const struct ws_event *ev)
{
    (void)o, (void)c, (void)ev;
}

static bool on_retry(void *o, struct conn *c, struct fbuf *b)
{
    (void)o, (void)c, (void)b;
    return true;
}

static void on_gone(void *o, struct conn *c)
{
    (void)o, (void)c;
}

static const struct conn_calls CALLS = {on_message, on_retry, on_gone};

static struct rig *rig_new(void)
{
    struct rig *r = calloc(1, sizeof(*r));
    r->cfg.ping_interval_ms = 60000;
    r->cfg.pong_timeout_ms = 120000;
    r->cfg.max_message = 65536;
    r->cfg.send_buffer = 256;
    r->cfg.compression_streams = 4;
    char why[64];
    ck_assert_int_eq(conn_set_init(&r->s, 0, &r->cfg, &r->ctr, &CALLS, r, why, sizeof(why)), 0);
    return r;
}

/* A member of the room whose upgrade agreed what kind says. */
static struct member *join(struct rig *r, int kind)
{
    struct member *m = &r->m[r->n++];
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    int big = 4 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    struct conn_handoff h = {.fd = sv[0], .kind = CONN_CHAT};
    snprintf(h.client_id, sizeof(h.client_id), "m%u", r->n);
    if (kind != M_PLAIN)
        h.pmd = (struct ws_pmd){.on = true, .server_no_context = kind == M_ALONE,
                                .server_bits = 15};
    m->c = conn_new(&r->s, &h);
    ck_assert_ptr_nonnull(m->c);
    m->peer = sv[1];
    ws_frame_parser_init(&m->parser, WS_ROLE_CLIENT, 1 << 20);
    m->parser.deflate = 1;
    ck_assert_int_eq(inflateInit2(&m->z, -15), Z_OK);
    ck_assert_int_eq(room_add(&r->room, &m->c->room_m), 0);
    ck_assert_int_eq(room_add(&r->chats, &m->c->chat_m), 0);
    deliver_join(&r->room, m->c);
    return m;
}

/* Reads what the server wrote to m, as its client would. */
static void client_read(struct member *m)
{
    uint8_t buf[1 << 16];
    ssize_t n;
    while ((n = read(m->peer, buf, sizeof(buf))) > 0) {
        size_t off = 0;
        while (off < (size_t)n) {
            struct ws_event ev;
            off += ws_frame_parse(&m->parser, buf + off, (size_t)n - off, &ev);
            if (ev.type == WS_EV_NONE)
                break;
            ck_assert_int_eq(ev.type, WS_EV_MESSAGE);
            size_t len = ev.len;
            if (ev.deflated) {
                uint8_t in[4096];
                memcpy(in, ev.data, ev.len);
                memcpy(in + ev.len, "\x00\x00\xff\xff", 4);
                m->z.next_in = in;
                m->z.avail_in = (uInt)(ev.len + 4);
                m->z.next_out = (Bytef *)m->last;
                m->z.avail_out = sizeof(m->last) - 1;
                ck_assert_int_eq(inflate(&m->z, Z_SYNC_FLUSH), Z_OK);
                len = sizeof(m->last) - 1 - m->z.avail_out;
                m->compressed++;
            } else {
                memcpy(m->last, ev.data, len);
                m->plain++;
            }
            m->last[len] = '\0';
            m->read++;
        }
    }
}

/* Sends one message to the room (or to everyone) and has every member read
 * it: each must read exactly the text sent. */
static void say(struct rig *r, bool global)
{
    char text[200];
    snprintf(text, sizeof(text),
             "{\"type\":\"chat\",\"from\":\"abc\",\"data\":{\"text\":\"message %u says hello "
             "to the room again\",\"n\":%u}}",
             r->sent, r->sent * 7);
    r->sent++;
    struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, text, strlen(text));
    uint32_t took = deliver_frames(&r->s, global ? &r->chats : &r->room, global, b);
    fbuf_unref(b);
    ck_assert_uint_eq(took, r->n);
    conn_flush_dirty(&r->s);
    for (unsigned i = 0; i < r->n; i++) {
        unsigned before = r->m[i].read;
        client_read(&r->m[i]);
        ck_assert_uint_eq(r->m[i].read, before + 1);
        ck_assert_str_eq(r->m[i].last, text);
    }
}

static void rig_free(struct rig *r)
{
    for (unsigned i = 0; i < r->n; i++) {
        deliver_leave(&r->s, &r->room, r->m[i].c);
        room_remove(&r->room, &r->m[i].c->room_m);
        inflateEnd(&r->m[i].z);
        ws_frame_parser_free(&r->m[i].parser);
        close(r->m[i].peer);
    }
    ck_assert_ptr_null(r->room.stream); /* no stream members left: no stream */
    free(r->room.members);
    free(r->chats.members);
    conn_set_free(&r->s);
    free(r);
}

START_TEST(each_member_reads_the_frames_its_agreement_allows)
{
    struct rig *r = rig_new();
    struct member *a = join(r, M_STREAM), *b = join(r, M_STREAM), *p = join(r, M_PLAIN);
    struct member *alone = join(r, M_ALONE);
    for (int i = 0; i < 5; i++)
        say(r, false);
    /* The stream starts at the first message: both stream members in step. */
    ck_assert(a->compressed == 5 && b->compressed == 5 && p->plain == 5);
    ck_assert_uint_eq(alone->compressed, 5);
    ck_assert_uint_eq(r->ctr.deflate_streams, 1);
    ck_assert_uint_eq(r->ctr.deflate_synced, 2);
    ck_assert_uint_eq(r->ctr.deflate_messages, 10); /* once for the stream, once alone */
    ck_assert_uint_gt(r->ctr.deflate_saved, 0);
    /* Global messages: plain for stream members, alone for the other. */
    say(r, true);
    ck_assert(a->plain == 1 && b->plain == 1 && alone->compressed == 6);
    rig_free(r);
}
END_TEST

START_TEST(a_joiner_reads_plain_until_the_stream_restarts)
{
    struct rig *r = rig_new();
    struct member *a = join(r, M_STREAM), *b = join(r, M_STREAM), *c = join(r, M_STREAM);
    for (int i = 0; i < 3; i++)
        say(r, false);
    /* One joiner among four stream members, the stream young: it waits. */
    struct member *j = join(r, M_STREAM);
    unsigned waited = 0;
    while (j->compressed == 0) {
        say(r, false);
        waited++;
        ck_assert_uint_le(waited, COMPRESSOR_RESTART_AFTER);
    }
    ck_assert_uint_eq(j->plain, waited - 1);
    ck_assert_uint_eq(waited - 1 + 3, COMPRESSOR_RESTART_AFTER); /* the stream's age */
    ck_assert_uint_eq(r->ctr.deflate_resets, 1);
    ck_assert_uint_eq(r->ctr.deflate_synced, 3 + 1);
    ck_assert_uint_eq(r->room.stream_waiting, 0);
    /* In step from there, like everyone else. */
    for (int i = 0; i < 5; i++)
        say(r, false);
    ck_assert_uint_eq(j->compressed, 6);
    ck_assert(a->plain == 0 && b->plain == 0 && c->plain == 0);
    /* Four joiners to four members in step: half of them wait, so the next
     * message restarts the stream at once. */
    struct member *k = join(r, M_STREAM);
    for (int i = 0; i < 3; i++)
        join(r, M_STREAM);
    say(r, false);
    ck_assert(k->compressed == 1 && k->plain == 0 && r->m[r->n - 1].compressed == 1);
    ck_assert_uint_eq(r->ctr.deflate_resets, 2);
    rig_free(r);
}
END_TEST

START_TEST(past_the_cap_and_after_idle_members_still_read_everything)
{
    struct rig *r = rig_new();
    r->cfg.compression_streams = 0;
    r->s.z.cap = 0;
    struct member *a = join(r, M_STREAM), *alone = join(r, M_ALONE);
    for (int i = 0; i < 3; i++)
        say(r, false);
    /* No stream may be made: compressed alone for both. */
    ck_assert(a->compressed == 3 && alone->compressed == 3);
    ck_assert_uint_eq(r->ctr.deflate_stream_refused, 3);
    /* Room for one now: the new stream starts afresh, so the member whose
     * inflater read frames compressed alone is in step with it. */
    r->s.z.cap = 1;
    say(r, false);
    ck_assert_uint_eq(r->ctr.deflate_streams, 1);
    /* Idle: the stream goes; the next message starts a new one. */
    compressor_sweep(&r->s.z, r->s.loop.now + COMPRESSOR_IDLE_MS);
    ck_assert_ptr_null(r->room.stream);
    say(r, false);
    ck_assert_ptr_nonnull(r->room.stream);
    ck_assert_uint_eq(a->compressed, 5);
    rig_free(r);
}
END_TEST

SUITE(deliver, each_member_reads_the_frames_its_agreement_allows,
      a_joiner_reads_plain_until_the_stream_restarts,
      past_the_cap_and_after_idle_members_still_read_everything)
