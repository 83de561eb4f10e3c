/* test_outbox.c: the Redis outbox keeps order and drops the oldest. */
#include <stdio.h>
#include <string.h>

#include "fbuf.h"
#include "redis/outbox.h"
#include "suites.h"
#include "ws/frame.h"

static struct fbuf *msg(int i)
{
    char s[16];
    int n = snprintf(s, sizeof(s), "m%d", i);
    return fbuf_new_frame(WS_OP_TEXT, s, (size_t)n);
}

static int id(struct fbuf *b)
{
    int v = 0;
    for (uint32_t i = b->hdr_len + 1; i < b->len; i++)
        v = v * 10 + (b->data[i] - '0');
    return v;
}

START_TEST(order_and_drop_oldest)
{
    struct outbox o;
    ck_assert_int_eq(outbox_init(&o, 3), 0);
    for (int i = 0; i < 5; i++) {
        struct fbuf *b = msg(i);
        outbox_push(&o, b);
        fbuf_unref(b); /* the outbox holds its own reference */
    }
    ck_assert_uint_eq(o.n, 3);
    ck_assert_uint_eq(o.dropped, 2);
    struct outbox_item out[8];
    ck_assert_uint_eq(outbox_take(&o, out, 8), 3);
    ck_assert_int_eq(id(out[0].msg), 2);
    ck_assert_int_eq(id(out[1].msg), 3);
    ck_assert_int_eq(id(out[2].msg), 4);
    for (int i = 0; i < 3; i++)
        fbuf_unref(out[i].msg);
    ck_assert_uint_eq(outbox_take(&o, out, 8), 0);
    outbox_free(&o);
}
END_TEST

START_TEST(requeue_goes_back_in_front)
{
    struct outbox o;
    outbox_init(&o, 4);
    for (int i = 0; i < 4; i++) {
        struct fbuf *b = msg(i);
        outbox_push(&o, b);
        fbuf_unref(b);
    }
    struct outbox_item batch[4];
    ck_assert_uint_eq(outbox_take(&o, batch, 2), 2); /* 0, 1 in flight */
    batch[0].seq = 7; /* numbered when first published */
    batch[1].seq = 8;
    struct fbuf *b = msg(4);
    outbox_push(&o, b); /* 2, 3, 4 */
    fbuf_unref(b);
    outbox_requeue(&o, batch, 2); /* room for one: 0 is the oldest, dropped */
    ck_assert_uint_eq(o.n, 4);
    ck_assert_uint_eq(o.dropped, 1);
    struct outbox_item out[8];
    ck_assert_uint_eq(outbox_take(&o, out, 8), 4);
    int want[] = {1, 2, 3, 4};
    uint64_t seqs[] = {8, 0, 0, 0}; /* a resend keeps its number */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(id(out[i].msg), want[i]);
        ck_assert_uint_eq(out[i].seq, seqs[i]);
        fbuf_unref(out[i].msg);
    }
    outbox_free(&o);
}
END_TEST

START_TEST(free_releases_references)
{
    /* Under make asan a missed unref shows as a leak. */
    struct outbox o;
    outbox_init(&o, 8);
    for (int i = 0; i < 20; i++) {
        struct fbuf *b = msg(i);
        outbox_push(&o, b);
        fbuf_unref(b);
    }
    ck_assert_uint_eq(o.dropped, 12);
    outbox_free(&o);
}
END_TEST

START_TEST(an_emptied_ring_gives_its_memory_back)
{
    /* Issue 25: what a long outage parked used to keep its memory. */
    struct outbox o;
    outbox_init(&o, 100000);
    for (int i = 0; i < 5000; i++) {
        struct fbuf *b = msg(i);
        outbox_push(&o, b);
        fbuf_unref(b);
    }
    ck_assert_uint_ge(o.size, 5000);
    struct outbox_item out[64];
    uint32_t k;
    int next = 0;
    while ((k = outbox_take(&o, out, 64)) > 0)
        for (uint32_t i = 0; i < k; i++) {
            ck_assert_int_eq(id(out[i].msg), next++);
            fbuf_unref(out[i].msg);
        }
    ck_assert_int_eq(next, 5000);
    ck_assert_uint_le(o.size, 256);
    struct fbuf *b = msg(7); /* and it still works */
    outbox_push(&o, b);
    fbuf_unref(b);
    ck_assert_uint_eq(outbox_take(&o, out, 64), 1);
    ck_assert_int_eq(id(out[0].msg), 7);
    fbuf_unref(out[0].msg);
    outbox_free(&o);
}
END_TEST

START_TEST(queues_sharing_a_budget_keep_its_count)
{
    /* The publisher's queues share REDIS_OUTBOX_BYTES: every way in and out
     * keeps the shared count equal to what they hold. */
    struct outbox_budget budget = {0, 1000};
    struct outbox a, b;
    outbox_init(&a, 4);
    outbox_init(&b, 4);
    outbox_share_budget(&a, &budget);
    outbox_share_budget(&b, &budget);
    for (int i = 0; i < 6; i++) { /* 4 fit in a: two dropped by count */
        struct fbuf *m = msg(i);
        outbox_push(&a, m);
        fbuf_unref(m);
    }
    ck_assert_uint_eq(budget.used, a.bytes);
    struct outbox_item it[4];
    ck_assert_uint_eq(outbox_take(&a, it, 2), 2);
    outbox_append(&b, &it[0]);
    outbox_requeue(&b, &it[1], 1);
    ck_assert_uint_eq(budget.used, a.bytes + b.bytes);
    struct outbox_item last;
    ck_assert(outbox_take_newest(&b, &last));
    fbuf_unref(last.msg);
    outbox_drop_oldest(&a);
    ck_assert_uint_eq(a.dropped, 3);
    ck_assert_uint_eq(budget.used, a.bytes + b.bytes);
    outbox_free(&a);
    outbox_free(&b);
    ck_assert_uint_eq(budget.used, 0);
}
END_TEST

SUITE(outbox,
      order_and_drop_oldest,
      requeue_goes_back_in_front,
      free_releases_references,
      an_emptied_ring_gives_its_memory_back,
      queues_sharing_a_budget_keep_its_count)
