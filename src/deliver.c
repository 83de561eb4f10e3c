/* deliver.c: a broadcast's frames for each member (deliver.h). */
#include "deliver.h"

#include "common.h"
#include "compressor.h"
#include "stats.h"

static void bump(atomic_uint_fast64_t *c, uint64_t by)
{
    atomic_fetch_add_explicit(c, by, memory_order_relaxed);
}

/* One message's frames for one delivery: the plain one and, made when a
 * member first needs them, the room stream's and the one compressed alone.
 * Each holds prepaid references for every member from the one that made it
 * on; those not used are given back at the end. */
struct frames {
    struct fbuf *f[3];
    uint32_t paid[3], used[3];
    bool tried_stream, tried_alone;
    bool restarted; /* the stream's frame starts it afresh: every stream member is in step */
};

enum { PLAIN, STREAM, ALONE };

/* Files frame k, prepaid for the members_left still to be served: b's
 * references are the caller's plus these (adopt: the caller's own reference,
 * to a frame just made, is one of them). */
static void make_frame(struct frames *v, int k, struct fbuf *b, uint32_t members_left, bool adopt)
{
    v->f[k] = b;
    if (b) {
        fbuf_ref_n(b, members_left - adopt);
        v->paid[k] = members_left;
    }
}

/* The stream's frame for r, compressed once per delivery; NULL when r gets no
 * stream frame (none could be kept: it then goes as for no-context members). */
static struct fbuf *stream_frame(struct conn_set *s, struct room *r, struct frames *v,
                                 uint32_t left)
{
    if (!v->tried_stream) {
        v->tried_stream = true;
        bool restart = compressor_restart_due(r->stream, r->stream_waiting, r->stream_members);
        const struct fbuf *b = v->f[PLAIN];
        struct fbuf *z = compressor_stream(&s->z, &r->stream, b->data[0] & 0x0f,
                                           fbuf_payload(b), b->len - b->hdr_len, restart,
                                           s->loop.now, &v->restarted);
        make_frame(v, STREAM, z, left, true);
        if (v->restarted) {
            bump(&s->counters->deflate_resets, restart);
            bump(&s->counters->deflate_synced, r->stream_waiting);
            r->stream_waiting = 0;
        }
    }
    return v->f[STREAM];
}

/* The frame compressed alone, made once per delivery; NULL: send plain (no
 * memory, or compressing did not make it smaller). */
static struct fbuf *alone_frame(struct conn_set *s, struct frames *v, uint32_t left)
{
    if (!v->tried_alone) {
        v->tried_alone = true;
        const struct fbuf *b = v->f[PLAIN];
        struct fbuf *z = compressor_alone(&s->z, b->data[0] & 0x0f, fbuf_payload(b),
                                          b->len - b->hdr_len);
        if (z && z->len >= b->len) {
            fbuf_unref(z);
            z = NULL;
        }
        make_frame(v, ALONE, z, left, true);
    }
    return v->f[ALONE];
}

/* Which of the message's frames c gets. A stream member gets the stream's
 * frames only while in step, and nothing else compressed: a frame from
 * elsewhere would enter its inflater's window and the stream's next frame
 * would be read against a history the compressor never had. Global
 * messages are no room's stream: plain for stream members. */
static int frame_for(struct conn_set *s, struct room *r, bool global, struct conn *c,
                     struct frames *v, uint32_t left)
{
    if ((c->pmd & CONN_PMD_STREAM) && !global) {
        if (stream_frame(s, r, v, left)) {
            if (v->restarted)
                c->in_step = 1;
            return c->in_step ? STREAM : PLAIN;
        }
        /* No stream: its next one starts afresh, so a frame compressed
         * alone cannot put anyone out of step with it. */
    } else if (c->pmd & CONN_PMD_STREAM) {
        return PLAIN;
    }
    if ((c->pmd & CONN_PMD_ALONE) && alone_frame(s, v, left))
        return ALONE;
    return PLAIN;
}

uint32_t deliver_frames(struct conn_set *s, struct room *r, bool global, struct fbuf *b)
{
    if (r->n == 0)
        return 0;
    uint32_t n = r->n;
    struct frames v = {0};
    make_frame(&v, PLAIN, b, n, false);
    for (uint32_t i = 0; i < n; i++) {
        struct conn *c = global ? container_of(r->members[i], struct conn, chat_m)
                                : container_of(r->members[i], struct conn, room_m);
        int k = c->pmd ? frame_for(s, r, global, c, &v, n - i) : PLAIN;
        v.used[k] += conn_send(s, c, v.f[k], true);
    }
    int64_t saved = 0;
    for (int k = 0; k < 3; k++) {
        if (v.f[k]) {
            saved += (int64_t)v.used[k] * ((int64_t)b->len - (int64_t)v.f[k]->len);
            fbuf_unref_n(v.f[k], v.paid[k] - v.used[k]);
        }
    }
    if (saved > 0)
        bump(&s->counters->deflate_saved, (uint64_t)saved);
    return v.used[PLAIN] + v.used[STREAM] + v.used[ALONE];
}

void deliver_join(struct room *r, struct conn *c)
{
    if (!(c->pmd & CONN_PMD_STREAM))
        return;
    c->in_step = 0;
    r->stream_members++;
    r->stream_waiting++;
}

void deliver_leave(struct conn_set *s, struct room *r, struct conn *c)
{
    if (!(c->pmd & CONN_PMD_STREAM))
        return;
    r->stream_members--;
    if (!c->in_step)
        r->stream_waiting--;
    if (r->stream_members == 0)
        compressor_forget(&s->z, &r->stream);
}
