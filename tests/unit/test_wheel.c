/* test_wheel.c: the timer wheel: a timer fires in the tick of its deadline
 * and not before, deadlines past a turn come round early (and are scheduled
 * again), cancelled timers never fire, and a timer scheduled again while its
 * spoke is being expired goes to a later tick. */
#include <stdlib.h>

#include "suites.h"
#include "wheel.h"

struct item {
    struct wheel_timer t;
    uint64_t at;
    int fired;
};

/* Expires up to now; counts what fired. */
static int expire(struct wheel *wh, uint64_t now)
{
    int n = 0;
    struct wheel_timer *t;
    while ((t = wheel_expire(wh, now))) {
        list_entry(t, struct item, t)->fired++;
        n++;
    }
    return n;
}

START_TEST(fires_in_its_tick_not_before)
{
    struct wheel wh;
    wheel_init(&wh, 10, 1000);
    struct item it[50] = {0};
    for (int i = 0; i < 50; i++) {
        it[i].at = 1000 + 10 + (uint64_t)i * 37;
        wheel_schedule(&wh, &it[i].t, it[i].at);
    }
    for (uint64_t now = 1000; now <= 1000 + 50 * 37 + 20; now += 3) {
        expire(&wh, now);
        for (int i = 0; i < 50; i++) {
            /* Fired once its tick began, never earlier, exactly once. */
            if (now / 10 >= it[i].at / 10)
                ck_assert_int_eq(it[i].fired, 1);
            else
                ck_assert_int_eq(it[i].fired, 0);
        }
    }
}
END_TEST

START_TEST(far_deadlines_come_round_early)
{
    struct wheel wh;
    wheel_init(&wh, 10, 0);
    struct item far = {.at = 10 * WHEEL_SPOKES * 3};
    wheel_schedule(&wh, &far.t, far.at);
    uint64_t now = 0, looks = 0;
    while (!far.fired || now < far.at) {
        now += 10;
        if (expire(&wh, now)) {
            looks++;
            if (now < far.at) { /* early: the owner looks and schedules again */
                far.fired = 0;
                wheel_schedule(&wh, &far.t, far.at);
            }
        }
        ck_assert_uint_le(now, far.at + 10);
    }
    ck_assert_uint_ge(looks, 3);
    ck_assert_uint_le(looks, 4);
}
END_TEST

START_TEST(cancelled_never_fire)
{
    struct wheel wh;
    wheel_init(&wh, 5, 0);
    struct item a = {0}, b = {0}, c = {0}, never = {0};
    wheel_cancel(&wh, &never.t); /* never scheduled: nothing happens */
    wheel_schedule(&wh, &a.t, 20);
    wheel_schedule(&wh, &b.t, 20);
    wheel_schedule(&wh, &c.t, 20);
    wheel_cancel(&wh, &b.t);
    wheel_cancel(&wh, &b.t); /* twice is harmless */
    ck_assert_int_eq(expire(&wh, 100), 2);
    ck_assert_int_eq(a.fired + c.fired, 2);
    ck_assert_int_eq(b.fired, 0);
}
END_TEST

START_TEST(rescheduled_while_expiring_goes_later)
{
    struct wheel wh;
    wheel_init(&wh, 10, 0);
    struct item it[10] = {0};
    for (int i = 0; i < 10; i++)
        wheel_schedule(&wh, &it[i].t, 50);
    int fired = 0;
    struct wheel_timer *t;
    /* Each one, as it fires, asks for a deadline already past: it must go
     * to the next tick, not come back in this pass. */
    while ((t = wheel_expire(&wh, 50))) {
        wheel_schedule(&wh, t, 0);
        ck_assert_int_lt(++fired, 11);
    }
    ck_assert_int_eq(fired, 10);
    ck_assert_int_eq(expire(&wh, 59), 0);
    ck_assert_int_eq(expire(&wh, 60), 10);
}
END_TEST

SUITE(wheel,
      fires_in_its_tick_not_before,
      far_deadlines_come_round_early,
      cancelled_never_fire,
      rescheduled_while_expiring_goes_later)
