/* test_room.c: a worker's room index: members kept in arrays with their
 * own index (leaving is a swap with the last), rooms made on the first join
 * and freed with the last member, the waiting list and admission. */
#include <stdio.h>
#include <string.h>

#include "room/room.h"
#include "suites.h"

/* Every member's index names its own place in the room's array. */
static void assert_consistent(const struct room *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        ck_assert_uint_eq(r->members[i]->index, i);
}

START_TEST(join_leave_keeps_indexes)
{
    struct room_index ix = {0};
    struct room_member m[6];
    struct room *r = NULL;
    for (int i = 0; i < 6; i++) {
        r = room_join(&ix, "lobby", &m[i]);
        ck_assert_ptr_nonnull(r);
    }
    ck_assert_uint_eq(r->n, 6);
    ck_assert_ptr_eq(room_find(&ix, "lobby", room_hash("lobby", 5)), r);
    room_leave(&ix, r, &m[2]); /* the middle: the last takes its place */
    room_leave(&ix, r, &m[0]); /* the first */
    room_leave(&ix, r, &m[5]); /* whoever is last now, or not */
    ck_assert_uint_eq(r->n, 3);
    assert_consistent(r);
    for (uint32_t i = 0; i < r->n; i++)
        ck_assert(r->members[i] == &m[1] || r->members[i] == &m[3] || r->members[i] == &m[4]);
    room_leave(&ix, r, &m[1]);
    room_leave(&ix, r, &m[3]);
    room_leave(&ix, r, &m[4]); /* the last member: the room is freed */
    ck_assert_ptr_null(room_find(&ix, "lobby", room_hash("lobby", 5)));
    ck_assert_uint_eq(ix.map.n, 0);
    room_index_free(&ix);
}
END_TEST

START_TEST(waiting_then_admitted)
{
    struct room_index ix = {0};
    struct room_member a, b;
    struct room *r = room_join(&ix, "ops", &a);
    ck_assert_ptr_eq(room_join_waiting(&ix, "ops", &b), r);
    ck_assert_uint_eq(r->n, 1); /* a fan-out reaches a only */
    ck_assert_ptr_nonnull(r->waiting);
    ck_assert_uint_eq(r->waiting->n, 1);
    ck_assert_int_eq(room_admit(r, &b), 0);
    ck_assert_uint_eq(r->n, 2);
    ck_assert_ptr_null(r->waiting); /* freed once nobody waits */
    assert_consistent(r);
    /* A room with only a waiting member lives until that member goes. */
    struct room_member c;
    struct room *q = room_join_waiting(&ix, "quiet", &c);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(q->n, 0);
    room_leave_waiting(&ix, q, &c);
    ck_assert_ptr_null(room_find(&ix, "quiet", room_hash("quiet", 5)));
    room_leave(&ix, r, &a);
    room_leave(&ix, r, &b);
    ck_assert_uint_eq(ix.map.n, 0);
    room_index_free(&ix);
}
END_TEST

START_TEST(many_rooms)
{
    enum { N = 3000 };
    static struct room_member m[N];
    struct room_index ix = {0};
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "room-%d", i);
        ck_assert_ptr_nonnull(room_join(&ix, name, &m[i]));
    }
    ck_assert_uint_eq(ix.map.n, N);
    for (int i = 0; i < N; i += 97) {
        int len = snprintf(name, sizeof(name), "room-%d", i);
        struct room *r = room_find(&ix, name, room_hash(name, (size_t)len));
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->name, name);
        ck_assert_ptr_eq(r->members[0], &m[i]);
    }
    room_index_free(&ix); /* frees the rooms left */
}
END_TEST

SUITE(room,
      join_leave_keeps_indexes,
      waiting_then_admitted,
      many_rooms)
