/* test_fanout.c: admission by credit, per lane and per room bucket. */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "dest.h"
#include "fanout.h"
#include "fbuf.h"
#include "room/room.h"
#include "suites.h"

static struct fbuf *to_room(const char *room, size_t len)
{
    static char text[1 << 16];
    memset(text, 'x', sizeof(text));
    struct dest d;
    dest_of_room(&d, room);
    return dest_frame(text, len, &d);
}

/* Posts b to the bucket its routing record names. */
static int post(struct fanout *f, struct fbuf *b, enum fanout_source src)
{
    return fanout_post(f, b, dest_of_frame(b)->bucket, src);
}

/* Posts copies of one message until a lane refuses; returns how many went in. */
static unsigned fill(struct fanout *f, const char *room, size_t len, enum fanout_source src)
{
    struct fbuf *b = to_room(room, len);
    unsigned n = 0;
    while (post(f, b, src) == 0)
        n++;
    fbuf_unref(b);
    return n;
}

/* Delivers (takes and gives back the credit of) everything in lane. */
static size_t deliver_all(struct fanout *f, unsigned lane)
{
    struct inbox_item *items;
    size_t n = inbox_take(fanout_inbox(f, lane), &items);
    for (size_t i = 0; i < n; i++) {
        fanout_delivered(f, lane, &items[i]);
        fbuf_unref(items[i].ptr);
    }
    fanout_batch_done(f, lane);
    return n;
}

static unsigned bucket_of(const char *room)
{
    return fanout_room_bucket(room_hash(room, strlen(room)));
}

START_TEST(cost_grows_with_recipients)
{
    struct fanout *f = fanout_create(1);
    /* Alone in its bucket, a room may hold half the budget. */
    unsigned none = fill(f, "big", 936, FANOUT_FROM_CLIENT);
    /* 936 bytes framed with a 4-byte header, plus the per-item overhead. */
    ck_assert_uint_eq(none, FANOUT_BUDGET_MIN / 2 / (940 + FANOUT_ITEM_OVERHEAD));
    deliver_all(f, 0);
    ck_assert_uint_eq(fanout_lane_work(f, 0), 0);
    for (int i = 0; i < 99; i++)
        fanout_member(f, 0, bucket_of("big"), 1);
    unsigned hundred = fill(f, "big", 936, FANOUT_FROM_CLIENT);
    /* 100 recipients (99 members and the item itself): a hundredth as many. */
    ck_assert_uint_eq(hundred, none / 100);
    deliver_all(f, 0);
    fanout_destroy(f);
}
END_TEST

START_TEST(one_room_never_fills_a_lane)
{
    struct fanout *f = fanout_create(2);
    ck_assert_ptr_nonnull(f);
    unsigned big = fill(f, "big", 1000, FANOUT_FROM_CLIENT);
    ck_assert_uint_gt(big, 0);
    ck_assert_uint_le(fanout_lane_work(f, 0), FANOUT_BUDGET_MIN / 2);
    /* Another room (in another bucket) still gets in, on every lane. */
    ck_assert_uint_ne(bucket_of("big"), bucket_of("quiet"));
    struct fbuf *q = to_room("quiet", 10);
    ck_assert_int_eq(post(f, q, FANOUT_FROM_CLIENT), 0);
    /* So do global messages: a bucket of their own. */
    struct fbuf *g = to_room(NULL, 1);
    ck_assert_int_eq(post(f, g, FANOUT_FROM_REDIS), 0);
    fbuf_unref(g);
    fbuf_unref(q);
    ck_assert_uint_eq(deliver_all(f, 0), big + 2);
    ck_assert_uint_eq(deliver_all(f, 1), big + 2);
    ck_assert_uint_eq(fanout_lane_work(f, 0) + fanout_lane_work(f, 1), 0);
    fanout_destroy(f);
}
END_TEST

START_TEST(redis_leaves_a_quarter_for_clients)
{
    struct fanout *f = fanout_create(1);
    const char *rooms[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (size_t i = 0; i < 8; i++)
        ck_assert_uint_ne(bucket_of(rooms[i]), bucket_of("i"));
    for (size_t i = 0; i < 8; i++)
        fill(f, rooms[i], 4000, FANOUT_FROM_REDIS);
    uint64_t work = fanout_lane_work(f, 0);
    ck_assert_uint_le(work, FANOUT_BUDGET_MIN / 4 * 3);
    ck_assert_uint_gt(work, FANOUT_BUDGET_MIN / 4 * 3 - 2 * (4000 + 4 + FANOUT_ITEM_OVERHEAD));
    /* A client of this pod still gets in, even to a room the flood uses. */
    struct fbuf *b = to_room("i", 4000);
    ck_assert(!fanout_admits(f, bucket_of("i"), b->len, FANOUT_FROM_REDIS));
    ck_assert(fanout_admits(f, bucket_of("i"), b->len, FANOUT_FROM_CLIENT));
    ck_assert_int_eq(post(f, b, FANOUT_FROM_REDIS), -EAGAIN);
    ck_assert_int_eq(post(f, b, FANOUT_FROM_CLIENT), 0);
    fbuf_unref(b);
    deliver_all(f, 0);
    fanout_destroy(f);
}
END_TEST

START_TEST(big_message_goes_alone)
{
    struct fanout *f = fanout_create(1);
    for (int i = 0; i < 4000; i++)
        fanout_member(f, 0, bucket_of("r"), 1);
    /* 4001 * (64 KiB + overhead) is four times the budget: an empty lane
     * still takes it, but nothing more of that room until it is delivered. */
    struct fbuf *b = to_room("r", 65536);
    ck_assert_int_eq(post(f, b, FANOUT_FROM_CLIENT), 0);
    ck_assert_uint_gt(fanout_lane_work(f, 0), FANOUT_BUDGET_MIN);
    ck_assert_int_eq(post(f, b, FANOUT_FROM_CLIENT), -EAGAIN);
    deliver_all(f, 0);
    ck_assert_int_eq(post(f, b, FANOUT_FROM_CLIENT), 0);
    fbuf_unref(b);
    deliver_all(f, 0);
    fanout_destroy(f);
}
END_TEST

START_TEST(all_or_nothing_across_lanes)
{
    struct fanout *f = fanout_create(2);
    for (int i = 0; i < 50; i++)
        fanout_member(f, 1, bucket_of("r"), 1);
    fill(f, "r", 2000, FANOUT_FROM_CLIENT); /* lane 1 fills first */
    uint64_t w0 = fanout_lane_work(f, 0);
    struct fbuf *b = to_room("r", 2000);
    ck_assert_int_eq(post(f, b, FANOUT_FROM_CLIENT), -EAGAIN);
    ck_assert_uint_eq(fanout_lane_work(f, 0), w0); /* nothing held on lane 0 */
    ck_assert_uint_eq(b->refs, 1);                /* and no reference taken */
    fbuf_unref(b);
    deliver_all(f, 0);
    deliver_all(f, 1);
    fanout_destroy(f);
}
END_TEST

/* A worker's own client's message goes to the other lanes only: its own
 * lane gets no item, holds no credit and is never what refuses it. */
START_TEST(the_senders_own_lane_is_skipped)
{
    struct fanout *f = fanout_create(2);
    for (int i = 0; i < 50; i++)
        fanout_member(f, 0, bucket_of("r"), 1);
    struct fbuf *b = to_room("r", 2000);
    unsigned posted = 0;
    while (posted < 10000 && fanout_post_except(f, b, bucket_of("r"), FANOUT_FROM_CLIENT, 0) == 0)
        posted++;
    ck_assert_uint_eq(fanout_lane_work(f, 0), 0);
    ck_assert_uint_eq(deliver_all(f, 0), 0);
    /* Lane 1 (no members) took them until its own budget said no. */
    ck_assert_uint_gt(posted, 0);
    ck_assert_uint_eq(deliver_all(f, 1), posted);
    ck_assert_uint_eq(b->refs, 1); /* every item's reference given back */
    /* The cost of lane 0's own delivery, for its worker to count. */
    ck_assert_uint_eq(fanout_cost(f, 0, b, bucket_of("r")), 51 * (b->len + FANOUT_ITEM_OVERHEAD));
    fbuf_unref(b);
    fanout_destroy(f);
}
END_TEST

START_TEST(refused_client_is_kicked_when_credit_returns)
{
    struct fanout *f = fanout_create(2);
    fill(f, "r", 3000, FANOUT_FROM_CLIENT); /* the last try marked lanes starved */
    /* Drain the wake-ups the posts themselves caused. */
    struct inbox_item *items;
    size_t n0 = inbox_take(fanout_inbox(f, 0), &items);
    for (size_t i = 0; i < n0; i++) {
        fanout_delivered(f, 0, &items[i]);
        fbuf_unref(items[i].ptr);
    }
    deliver_all(f, 1);
    struct pollfd p = {.fd = fanout_inbox(f, 1)->efd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 0), 0);
    /* Giving back lane 0's credit wakes every worker, so the refused
     * producer (on whichever worker) tries again. */
    fanout_batch_done(f, 0);
    ck_assert_int_eq(poll(&p, 1, 0), 1);
    fanout_destroy(f);
}
END_TEST

/* What the worker writes per FANOUT_PACE_MS window, as the budget would be
 * were it set to that rate at once. */
static void pace_window(struct fanout *f, uint64_t *now, uint64_t budget_rate)
{
    uint64_t work = budget_rate * FANOUT_PACE_MS / FANOUT_BUDGET_MS;
    fanout_lane_pace(f, 0, work / 2, *now += FANOUT_PACE_MS / 2);
    fanout_lane_pace(f, 0, work - work / 2, *now += FANOUT_PACE_MS - FANOUT_PACE_MS / 2);
}

START_TEST(budget_follows_what_the_worker_writes)
{
    struct fanout *f = fanout_create(1);
    uint64_t now = 1000;
    ck_assert_uint_eq(fanout_lane_budget(f, 0), FANOUT_BUDGET_MIN);
    fanout_lane_pace(f, 0, 0, now); /* the first pass starts the window */
    unsigned small = fill(f, "r", 1000, FANOUT_FROM_CLIENT);
    deliver_all(f, 0);
    /* A fast worker: the budget rises halfway per window, up to the cap. */
    const uint64_t fast = FANOUT_BUDGET_MIN * 3 / 2;
    pace_window(f, &now, fast);
    ck_assert_uint_eq(fanout_lane_budget(f, 0), FANOUT_BUDGET_MIN * 5 / 4);
    pace_window(f, &now, fast);
    ck_assert_uint_eq(fanout_lane_budget(f, 0), FANOUT_BUDGET_MIN * 11 / 8);
    for (int i = 0; i < 20; i++)
        pace_window(f, &now, 100 * FANOUT_BUDGET_MIN);
    ck_assert_uint_eq(fanout_lane_budget(f, 0), FANOUT_BUDGET_MAX);
    /* And admits that much more of one room. */
    unsigned big = fill(f, "r", 1000, FANOUT_FROM_CLIENT);
    /* (1000 bytes framed with a 4-byte header, plus the per-item overhead) */
    ck_assert_uint_eq(small, FANOUT_BUDGET_MIN / 2 / (1004 + FANOUT_ITEM_OVERHEAD));
    ck_assert_uint_eq(big, FANOUT_BUDGET_MAX / 2 / (1004 + FANOUT_ITEM_OVERHEAD));
    deliver_all(f, 0);
    /* Half a window changes nothing; */
    fanout_lane_pace(f, 0, 0, now += FANOUT_PACE_MS / 2);
    ck_assert_uint_eq(fanout_lane_budget(f, 0), FANOUT_BUDGET_MAX);
    /* a slow (or idle, or descheduled) window brings it down at once. */
    fanout_lane_pace(f, 0, 0, now += 10 * FANOUT_PACE_MS);
    ck_assert_uint_eq(fanout_lane_budget(f, 0), FANOUT_BUDGET_MIN);
    pace_window(f, &now, fast);
    pace_window(f, &now, FANOUT_BUDGET_MIN * 9 / 8);
    ck_assert_uint_eq(fanout_lane_budget(f, 0), FANOUT_BUDGET_MIN * 9 / 8);
    fanout_destroy(f);
}
END_TEST

SUITE(fanout,
      cost_grows_with_recipients,
      one_room_never_fills_a_lane,
      redis_leaves_a_quarter_for_clients,
      big_message_goes_alone,
      all_or_nothing_across_lanes,
      the_senders_own_lane_is_skipped,
      refused_client_is_kicked_when_credit_returns,
      budget_follows_what_the_worker_writes)
