/* test_registry.c: room membership and the subscription state machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "room/registry.h"
#include "collide.h"
#include "hmap.h"
#include "suites.h"

/* Collects what the registry emits. */
struct names {
    char list[64][32];
    int n;
};

static void collect(void *arg, const char *room)
{
    struct names *ns = arg;
    if (ns->n < 64)
        strcpy(ns->list[ns->n++], room);
}

static bool has(const struct names *ns, const char *room)
{
    for (int i = 0; i < ns->n; i++)
        if (strcmp(ns->list[i], room) == 0)
            return true;
    return false;
}

static int wakes;
static void count_wake(void *arg)
{
    (void)arg;
    wakes++;
}

static void tracked(struct room_registry *reg)
{
    ck_assert_int_eq(registry_init(reg), 0);
    reg->tracking = true;
    reg->wake = count_wake;
    wakes = 0;
}

START_TEST(standalone_never_waits_and_forgets_empty_rooms)
{
    struct room_registry reg;
    uint64_t gen = 0;
    ck_assert_int_eq(registry_init(&reg), 0);
    ck_assert_int_eq(registry_join(&reg, "a", &gen), 1);
    ck_assert_int_eq(registry_join(&reg, "a", &gen), 1);
    ck_assert_int_eq(registry_join(&reg, "b", &gen), 1);
    ck_assert_uint_eq(registry_rooms(&reg), 2);
    static struct registry_top top;
    registry_top(&reg, &top);
    ck_assert_uint_eq(top.rooms, 2);
    ck_assert_uint_eq(top.n, 2);
    ck_assert_str_eq(top.top[0].name, "a");
    ck_assert_uint_eq(top.top[0].members, 2);
    registry_leave(&reg, "a", 1);
    registry_leave(&reg, "a", 1);
    registry_leave(&reg, "b", 1);
    ck_assert_uint_eq(registry_rooms(&reg), 0);
    ck_assert_uint_eq(reg.map.n, 0);
    registry_free(&reg);
}
END_TEST

START_TEST(joins_wait_only_while_live_and_unconfirmed)
{
    struct room_registry reg;
    uint64_t gen = 0;
    tracked(&reg);
    /* Not live (Redis away): at once, nothing queued. */
    ck_assert_int_eq(registry_join(&reg, "early", &gen), 1);
    ck_assert_int_eq(wakes, 0);
    struct names sent = {0};
    registry_sub_live(&reg, collect, &sent);
    ck_assert_int_eq(sent.n, 1);
    ck_assert(has(&sent, "early"));
    /* Live: a new room waits and wakes the subscriber once for a batch. */
    ck_assert_int_eq(registry_join(&reg, "x", &gen), 0);
    ck_assert_uint_eq(gen, 1); /* waits on the first connection */
    ck_assert_int_eq(registry_join(&reg, "y", &gen), 0);
    ck_assert_int_eq(registry_join(&reg, "x", &gen), 0);
    ck_assert_int_eq(wakes, 1);
    struct names q = {0};
    registry_sub_take_queued(&reg, collect, &q);
    ck_assert_int_eq(q.n, 2);
    ck_assert(has(&q, "x") && has(&q, "y"));
    /* Confirmation releases the waiters once; later joins go at once. */
    ck_assert(registry_sub_confirmed(&reg, "x"));
    ck_assert(!registry_sub_confirmed(&reg, "x"));
    ck_assert_int_eq(registry_join(&reg, "x", &gen), 1);
    ck_assert(!registry_sub_confirmed(&reg, "early")); /* nobody waited for it */
    ck_assert_uint_eq(registry_confirmed(&reg), 2);
    registry_free(&reg);
}
END_TEST

START_TEST(refused_rooms_are_retried_in_turn_and_told_once)
{
    /* Issue 25: past 1,024 refused rooms every retry told their members
     * again and logged again, and every retry sent all of them. */
    struct room_registry reg;
    uint64_t gen = 0;
    tracked(&reg);
    struct names none = {0};
    registry_sub_live(&reg, collect, &none);
    char name[16];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        ck_assert_int_eq(registry_join(&reg, name, &gen), 0);
    }
    struct names sent = {0};
    registry_sub_take_queued(&reg, collect, &sent);
    ck_assert_int_eq(sent.n, 40);
    for (int i = 0; i < 40; i++) {
        bool waited;
        ck_assert(registry_sub_refuse_room(&reg, sent.list[i], &waited));
        ck_assert(registry_sub_told(&reg, sent.list[i]));
        ck_assert(!registry_sub_told(&reg, sent.list[i])); /* once */
    }
    ck_assert_uint_eq(registry_sub_refused_rooms(&reg), 40);
    /* Retries take at most 16 (give or take a bucket) and go round. */
    int seen[40] = {0}, rounds = 0, total = 0;
    while (total < 40 && rounds < 10) {
        struct names got = {0};
        size_t left = registry_sub_take_refused(&reg, 16, collect, &got);
        ck_assert_int_le(got.n, 16 + 8);
        ck_assert_int_eq((int)left + got.n + total, 40);
        for (int k = 0; k < got.n; k++) {
            int i = atoi(got.list[k] + 1);
            ck_assert_int_eq(seen[i], 0); /* nobody twice before everyone once */
            seen[i] = 1;
            total++;
        }
        rounds++;
    }
    ck_assert_int_eq(total, 40);
    ck_assert_int_ge(rounds, 3);
    /* Refused again: not told again. Allowed: the mark goes, and a later
     * refusal is told once more. */
    bool waited;
    ck_assert(registry_sub_refuse_room(&reg, "r3", &waited));
    ck_assert(!registry_sub_told(&reg, "r3"));
    ck_assert(registry_sub_confirmed(&reg, "r4") == false);
    ck_assert(registry_sub_allowed(&reg, "r4"));
    ck_assert(!registry_sub_allowed(&reg, "r4"));
    ck_assert_uint_eq(registry_sub_refused_rooms(&reg), 39);
    /* A told room that loses its last member is forgotten, and its mark. */
    registry_leave(&reg, "r5", 0);
    struct names gone = {0};
    registry_sub_take_expired(&reg, 1, collect, &gone);
    ck_assert_int_eq(gone.n, 1);
    ck_assert_uint_eq(registry_sub_refused_rooms(&reg), 38);
    registry_free(&reg);
}
END_TEST

START_TEST(linger_then_unsubscribe)
{
    struct room_registry reg;
    uint64_t gen = 0;
    tracked(&reg);
    struct names none = {0};
    registry_sub_live(&reg, collect, &none);
    ck_assert_int_eq(registry_join(&reg, "r", &gen), 0);
    registry_sub_take_queued(&reg, collect, &none);
    registry_sub_confirmed(&reg, "r");
    registry_leave(&reg, "r", 1000);
    ck_assert_uint_eq(registry_rooms(&reg), 0);
    struct names gone = {0};
    registry_sub_take_expired(&reg, 1000, collect, &gone);
    ck_assert_int_eq(gone.n, 0); /* still lingering */
    /* Back within the linger: ready at once, nothing sent again. */
    ck_assert_int_eq(registry_join(&reg, "r", &gen), 1);
    registry_leave(&reg, "r", 2000);
    registry_sub_take_expired(&reg, 1500, collect, &gone);
    ck_assert_int_eq(gone.n, 0);
    registry_sub_take_expired(&reg, 2001, collect, &gone);
    ck_assert_int_eq(gone.n, 1);
    ck_assert(has(&gone, "r"));
    ck_assert_uint_eq(reg.map.n, 0);
    ck_assert_uint_eq(registry_confirmed(&reg), 0);
    /* Joined again after: a fresh subscription; the old room's late
     * confirmation cannot count for it before it is sent. */
    ck_assert_int_eq(registry_join(&reg, "r", &gen), 0);
    ck_assert(!registry_sub_confirmed(&reg, "r"));
    struct names q = {0};
    registry_sub_take_queued(&reg, collect, &q);
    ck_assert(has(&q, "r"));
    ck_assert(registry_sub_confirmed(&reg, "r"));
    registry_free(&reg);
}
END_TEST

START_TEST(a_room_emptied_before_it_was_sent_is_dropped)
{
    struct room_registry reg;
    uint64_t gen = 0;
    tracked(&reg);
    struct names none = {0};
    registry_sub_live(&reg, collect, &none);
    ck_assert_int_eq(registry_join(&reg, "a", &gen), 0);
    ck_assert_int_eq(registry_join(&reg, "b", &gen), 0);
    registry_leave(&reg, "a", 5);
    struct names q = {0};
    registry_sub_take_queued(&reg, collect, &q);
    ck_assert_int_eq(q.n, 1);
    ck_assert(has(&q, "b"));
    ck_assert_uint_eq(reg.map.n, 1);
    registry_free(&reg);
}
END_TEST

START_TEST(gone_then_live_subscribes_exactly_the_hosted_rooms)
{
    struct room_registry reg;
    uint64_t gen = 0;
    tracked(&reg);
    struct names none = {0};
    registry_sub_live(&reg, collect, &none);
    registry_join(&reg, "kept", &gen);
    registry_join(&reg, "left", &gen);
    registry_sub_take_queued(&reg, collect, &none);
    registry_sub_confirmed(&reg, "kept");
    registry_sub_confirmed(&reg, "left");
    registry_leave(&reg, "left", 10); /* lingering */
    registry_join(&reg, "pending", &gen);   /* queued, never sent */
    ck_assert_uint_eq(registry_sub_gone(&reg), 1); /* the connection that ended */
    ck_assert_uint_eq(registry_confirmed(&reg), 0);
    ck_assert_int_eq(registry_join(&reg, "away", &gen), 1); /* not live: no wait */
    struct names again = {0};
    registry_sub_live(&reg, collect, &again);
    ck_assert_int_eq(again.n, 3);
    ck_assert(has(&again, "kept") && has(&again, "pending") && has(&again, "away"));
    ck_assert(!has(&again, "left"));
    ck_assert_int_eq(registry_join(&reg, "new", &gen), 0);
    ck_assert_uint_eq(gen, 2); /* a release for connection 1 does not free it */
    registry_free(&reg);
}
END_TEST

START_TEST(many_rooms_grow_the_table)
{
    struct room_registry reg;
    uint64_t gen = 0;
    tracked(&reg);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "room-%d", i);
        ck_assert_int_eq(registry_join(&reg, name, &gen), 1);
    }
    ck_assert_uint_eq(registry_rooms(&reg), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "room-%d", i);
        registry_leave(&reg, name, 1);
    }
    ck_assert_uint_eq(reg.map.n, 0);
    registry_free(&reg);
}
END_TEST

START_TEST(top_rooms_are_the_largest_then_by_name)
{
    struct room_registry reg;
    uint64_t gen = 0;
    ck_assert_int_eq(registry_init(&reg), 0);
    /* 300 rooms: room i has i % 150 + 1 members, so every count but the
     * largest is shared by two rooms and the order among them is by name. */
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "r%03d", i);
        for (int k = 0; k <= i % 150; k++)
            ck_assert_int_eq(registry_join(&reg, name, &gen), 1);
    }
    static struct registry_top top;
    registry_top(&reg, &top);
    ck_assert_uint_eq(top.rooms, 300);
    ck_assert_uint_eq(top.n, REGISTRY_TOP_MAX);
    for (size_t j = 0; j < top.n; j++) {
        /* Ranks 0,1: 150 members (r149, r299); 2,3: 149 (r148, r298)... */
        int i = 149 - (int)(j / 2) + (j % 2 ? 150 : 0);
        snprintf(name, sizeof(name), "r%03d", i);
        ck_assert_str_eq(top.top[j].name, name);
        ck_assert_uint_eq(top.top[j].members, (uint64_t)(i % 150 + 1));
    }
    registry_free(&reg);
}
END_TEST

START_TEST(colliding_names_do_not_share_a_chain)
{
    /* Joins walk the chain of their room's name under the registry's lock:
     * 1,000 names that would share one chain unkeyed get short ones. */
    enum { N = 1000 };
    static char names[N][32];
    collide_names(names, N);
    hmap_random_key();
    struct room_registry reg;
    ck_assert_int_eq(registry_init(&reg), 0);
    uint64_t gen;
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(registry_join(&reg, names[i], &gen), 1);
    ck_assert_uint_eq(registry_rooms(&reg), N);
    ck_assert_uint_le(hmap_longest_chain(&reg.map), 16);
    registry_free(&reg);
}
END_TEST

SUITE(registry,
      top_rooms_are_the_largest_then_by_name,
      standalone_never_waits_and_forgets_empty_rooms,
      joins_wait_only_while_live_and_unconfirmed,
      linger_then_unsubscribe,
      refused_rooms_are_retried_in_turn_and_told_once,
      a_room_emptied_before_it_was_sent_is_dropped,
      gone_then_live_subscribes_exactly_the_hosted_rooms,
      many_rooms_grow_the_table,
      colliding_names_do_not_share_a_chain)
