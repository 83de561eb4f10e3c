/* test_ring.c: the one ring rule: growth doubles from the first size to the
 * bound and keeps the order across the wrap; at the bound each policy does
 * what it says (refuse; have the owner drop its oldest; grow past it). */
#include <stdint.h>
#include <stdlib.h>

#include "ring.h"
#include "suites.h"

struct ints {
    int *v;
    uint32_t head, n, cap;
};

static enum ring_room push(struct ints *r, int x, uint32_t max, enum ring_policy p)
{
    enum ring_room room = ring_make_room(&r->v, sizeof(*r->v), &r->head, r->n, &r->cap, 2, max, p);
    if (room == RING_DROP) { /* the owner's part: its oldest goes */
        r->head = (r->head + 1) % r->cap;
        r->n--;
        room = RING_ROOM;
    }
    if (room == RING_ROOM)
        r->v[(r->head + r->n++) % r->cap] = x;
    return room;
}

static int at(const struct ints *r, uint32_t i)
{
    return r->v[(r->head + i) % r->cap];
}

START_TEST(growth_keeps_the_order_across_the_wrap)
{
    struct ints r = {0};
    int next = 0, first = 0;
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 3; k++)
            ck_assert_int_eq(push(&r, next++, 64, RING_REFUSE), RING_ROOM);
        r.head = (r.head + 2) % r.cap; /* take two */
        r.n -= 2;
        first += 2;
        for (uint32_t i = 0; i < r.n; i++)
            ck_assert_int_eq(at(&r, i), first + (int)i);
    }
    ck_assert_uint_le(r.cap, 64);
    free(r.v);
}
END_TEST

START_TEST(each_policy_at_the_bound)
{
    struct ints r = {0};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(push(&r, i, 5, RING_REFUSE), RING_ROOM);
    ck_assert_uint_eq(r.cap, 5); /* 2, 4, then the bound, not 8 */
    ck_assert_int_eq(push(&r, 5, 5, RING_REFUSE), RING_FULL);
    ck_assert_uint_eq(r.n, 5);
    ck_assert_int_eq(push(&r, 5, 5, RING_DROP_OLDEST), RING_ROOM);
    ck_assert_uint_eq(r.n, 5);
    ck_assert_int_eq(at(&r, 0), 1); /* 0 made way */
    ck_assert_int_eq(at(&r, 4), 5);
    for (int i = 6; i < 40; i++)
        ck_assert_int_eq(push(&r, i, 5, RING_GROW), RING_ROOM);
    ck_assert_uint_eq(r.n, 39);
    for (uint32_t i = 0; i < r.n; i++)
        ck_assert_int_eq(at(&r, i), (int)i + 1);
    free(r.v);
}
END_TEST

SUITE(ring,
      growth_keeps_the_order_across_the_wrap,
      each_policy_at_the_bound)
