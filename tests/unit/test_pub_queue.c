/* test_pub_queue.c: a Redis node's queues in the publisher: the in-flight
 * queue never drops (answers pair with the oldest), what is not sent keeps
 * its order, a failed link puts what was in flight back in front. */
#include <stdio.h>

#include "fbuf.h"
#include "redis/pub_queue.h"
#include "suites.h"
#include "ws/frame.h"

static struct outbox_item item(int i)
{
    char s[16];
    int n = snprintf(s, sizeof(s), "m%d", i);
    return (struct outbox_item){fbuf_new_frame(WS_OP_TEXT, s, (size_t)n), 0};
}

static int id(const struct fbuf *b)
{
    int v = 0;
    for (uint32_t i = b->hdr_len + 1; i < b->len; i++)
        v = v * 10 + (b->data[i] - '0');
    return v;
}

/* The ids in o, oldest first; returns how many. */
static uint32_t ids(const struct outbox *o, int *out)
{
    for (uint32_t i = 0; i < o->n; i++)
        out[i] = id(o->items[(o->head + i) % o->size].msg);
    return o->n;
}

/* A send callback: sends every item, or keeps odd ids (a held slot), or
 * fails at a given id. */
struct sender {
    int keep_odd;
    int fail_at; /* -1: never */
    int sent[64];
    int nsent;
};

static enum pub_queue_verdict send_cb(void *ctx, struct outbox_item *it)
{
    struct sender *s = ctx;
    int v = id(it->msg);
    if (s->keep_odd && (v & 1))
        return PUB_QUEUE_KEEP;
    s->sent[s->nsent++] = v;
    return v == s->fail_at ? PUB_QUEUE_FAIL : PUB_QUEUE_SENT;
}

START_TEST(inflight_bound_parks_instead_of_dropping)
{
    /* Issue 25: at the bound the old queue dropped an entry already written,
     * and every later answer paired with the wrong message. */
    struct pub_queue q;
    ck_assert_int_eq(pub_queue_init(&q, 4, 0), 0);
    for (int i = 0; i < 10; i++) {
        struct outbox_item it = item(i);
        if (pub_queue_may_send(&q))
            pub_queue_sent(&q, &it, 100);
        else
            pub_queue_park(&q, &it);
    }
    ck_assert(pub_queue_full(&q));
    ck_assert_uint_eq(q.inflight.n, 4);
    ck_assert_uint_eq(q.inflight.dropped, 0);
    /* Parked holds 4 as well: 4..9 came, the two oldest (4, 5) dropped. */
    ck_assert_uint_eq(q.parked.n, 4);
    ck_assert_uint_eq(q.parked.dropped, 2);
    /* Each answer belongs to the oldest sent, in order. */
    for (int want = 0; want < 4; want++) {
        struct outbox_item it;
        ck_assert(pub_queue_answered(&q, &it, 200));
        ck_assert_int_eq(id(it.msg), want);
        fbuf_unref(it.msg);
    }
    struct outbox_item none;
    ck_assert(!pub_queue_answered(&q, &none, 200)); /* an answer to nothing sent */
    pub_queue_free(&q);
}
END_TEST

START_TEST(drain_stops_at_the_bound_and_keeps_order)
{
    struct pub_queue q;
    pub_queue_init(&q, 3, 0);
    for (int i = 0; i < 3; i++) {
        struct outbox_item it = item(i);
        pub_queue_park(&q, &it);
    }
    struct outbox_item first = item(100);
    pub_queue_sent(&q, &first, 5); /* one already in flight */
    struct sender s = {.fail_at = -1};
    ck_assert(pub_queue_drain(&q, send_cb, &s, 10));
    ck_assert_int_eq(s.nsent, 2); /* the bound (3) admits two more */
    ck_assert_int_eq(s.sent[0], 0);
    ck_assert_int_eq(s.sent[1], 1);
    int got[8];
    ck_assert_uint_eq(ids(&q.parked, got), 1);
    ck_assert_int_eq(got[0], 2);
    ck_assert(!pub_queue_may_send(&q));
    /* An answer makes room; the next drain sends the rest. */
    struct outbox_item it;
    ck_assert(pub_queue_answered(&q, &it, 20));
    ck_assert_int_eq(id(it.msg), 100);
    fbuf_unref(it.msg);
    ck_assert(pub_queue_drain(&q, send_cb, &s, 20));
    ck_assert_int_eq(s.nsent, 3);
    ck_assert_int_eq(s.sent[2], 2);
    ck_assert_uint_eq(q.parked.n, 0);
    ck_assert_uint_eq(ids(&q.inflight, got), 3);
    ck_assert_int_eq(got[0], 0);
    ck_assert_int_eq(got[2], 2);
    pub_queue_free(&q);
}
END_TEST

START_TEST(held_items_keep_their_order_when_the_bound_stops_a_drain)
{
    /* Odd ids are held; the bound stops sending after two even ones. What
     * stays parked must still be oldest first. */
    struct pub_queue q;
    pub_queue_init(&q, 16, 0);
    for (int i = 0; i < 8; i++) {
        struct outbox_item it = item(i);
        pub_queue_park(&q, &it);
    }
    for (int k = 0; k < 14; k++) { /* fill in flight to 14 of 16 */
        struct outbox_item f = item(200 + k);
        pub_queue_sent(&q, &f, 1);
    }
    struct sender s = {.keep_odd = 1, .fail_at = -1};
    ck_assert(pub_queue_drain(&q, send_cb, &s, 2));
    ck_assert_int_eq(s.nsent, 2); /* 0 and 2 */
    int got[16];
    uint32_t n = ids(&q.parked, got);
    int want[] = {1, 3, 4, 5, 6, 7};
    ck_assert_uint_eq(n, 6);
    for (uint32_t i = 0; i < n; i++)
        ck_assert_int_eq(got[i], want[i]);
    pub_queue_free(&q);
}
END_TEST

START_TEST(a_failed_link_puts_inflight_back_in_front)
{
    struct pub_queue q;
    pub_queue_init(&q, 4, 0);
    for (int i = 0; i < 6; i++) {
        struct outbox_item it = item(i);
        it.seq = (uint64_t)i + 1;
        if (pub_queue_may_send(&q))
            pub_queue_sent(&q, &it, 1);
        else
            pub_queue_park(&q, &it);
    }
    /* In flight 0..3, parked 4, 5. The link fails: 0..5 in order, but only
     * 4 fit: the two oldest (0, 1) are dropped and counted. */
    pub_queue_failed(&q);
    ck_assert_uint_eq(q.inflight.n, 0);
    int got[8];
    ck_assert_uint_eq(ids(&q.parked, got), 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(got[i], i + 2);
    ck_assert_uint_eq(q.parked.dropped, 2);
    /* A resend keeps its number. */
    ck_assert_uint_eq(q.parked.items[q.parked.head].seq, 3);
    pub_queue_free(&q);
}
END_TEST

START_TEST(a_failing_send_stops_the_drain_in_order)
{
    struct pub_queue q;
    pub_queue_init(&q, 8, 0);
    for (int i = 0; i < 5; i++) {
        struct outbox_item it = item(i);
        pub_queue_park(&q, &it);
    }
    struct sender s = {.fail_at = 1};
    ck_assert(!pub_queue_drain(&q, send_cb, &s, 1));
    ck_assert_int_eq(s.nsent, 2); /* 0, then 1 failed the link */
    int got[8];
    ck_assert_uint_eq(ids(&q.inflight, got), 2);
    ck_assert_uint_eq(ids(&q.parked, got), 3);
    ck_assert_int_eq(got[0], 2);
    pub_queue_failed(&q);
    ck_assert_uint_eq(ids(&q.parked, got), 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(got[i], i);
    pub_queue_free(&q);
}
END_TEST

START_TEST(unanswer_goes_back_first)
{
    struct pub_queue q;
    pub_queue_init(&q, 4, 0);
    for (int i = 0; i < 3; i++) {
        struct outbox_item it = item(i);
        pub_queue_sent(&q, &it, 1);
    }
    struct outbox_item it;
    ck_assert(pub_queue_answered(&q, &it, 2));
    pub_queue_unanswer(&q, &it); /* LOADING: not now */
    pub_queue_failed(&q);
    int got[8];
    ck_assert_uint_eq(ids(&q.parked, got), 3);
    ck_assert_int_eq(got[0], 0);
    ck_assert_int_eq(got[2], 2);
    pub_queue_free(&q);
}
END_TEST

START_TEST(inflight_is_bounded_in_bytes_too)
{
    /* Issue 25: a frozen node held REDIS_OUTBOX messages in flight whatever
     * their size. Frames of "mN" are 4 bytes: a bound of 10 bytes admits
     * three (the third starts below the bound), then parks. */
    struct pub_queue q;
    pub_queue_init(&q, 100, 10);
    int sent = 0;
    for (int i = 0; i < 6; i++) {
        struct outbox_item it = item(i);
        if (pub_queue_may_send(&q)) {
            pub_queue_sent(&q, &it, 1);
            sent++;
        } else {
            pub_queue_park(&q, &it);
        }
    }
    ck_assert_int_eq(sent, 3);
    ck_assert(pub_queue_full(&q));
    ck_assert_uint_eq(q.parked.n, 3);
    struct outbox_item it;
    ck_assert(pub_queue_answered(&q, &it, 2)); /* room again */
    fbuf_unref(it.msg);
    ck_assert(!pub_queue_full(&q));
    pub_queue_free(&q);
}
END_TEST

SUITE(pub_queue,
      inflight_bound_parks_instead_of_dropping,
      drain_stops_at_the_bound_and_keeps_order,
      held_items_keep_their_order_when_the_bound_stops_a_drain,
      a_failed_link_puts_inflight_back_in_front,
      a_failing_send_stops_the_drain_in_order,
      unanswer_goes_back_first,
      inflight_is_bounded_in_bytes_too)
