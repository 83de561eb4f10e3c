/* test_inbox.c: a worker's inbox: items come out in the order pushed, a
 * burst wakes the worker once (its eventfd readable), inbox_wake wakes it
 * with nothing queued, and pushes from several threads all arrive. */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>

#include "inbox.h"
#include "suites.h"

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

START_TEST(order_and_one_wake)
{
    struct inbox ib;
    ck_assert_int_eq(inbox_init(&ib), 0);
    ck_assert(!readable(ib.efd));
    for (uintptr_t i = 1; i <= 1000; i++)
        ck_assert_int_eq(inbox_push(&ib, (struct inbox_item){.kind = INBOX_FRAME,
                                                             .ptr = (void *)i}),
                         0);
    ck_assert(readable(ib.efd));
    struct inbox_item *items;
    size_t n = inbox_take(&ib, &items);
    ck_assert_uint_eq(n, 1000);
    for (size_t i = 0; i < n; i++)
        ck_assert_ptr_eq(items[i].ptr, (void *)(uintptr_t)(i + 1));
    ck_assert(!readable(ib.efd)); /* the take read the wake-up back */
    ck_assert_uint_eq(inbox_take(&ib, &items), 0);
    inbox_wake(&ib);
    ck_assert(readable(ib.efd));
    ck_assert_uint_eq(inbox_take(&ib, &items), 0);
    ck_assert(!readable(ib.efd));
    inbox_destroy(&ib);
}
END_TEST

struct producer {
    struct inbox *ib;
    uintptr_t base;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (uintptr_t i = 0; i < 10000; i++)
        if (inbox_push(p->ib, (struct inbox_item){.kind = INBOX_FRAME, .ptr = (void *)(p->base + i)}) < 0)
            return (void *)1;
    return NULL;
}

START_TEST(many_producers)
{
    struct inbox ib;
    ck_assert_int_eq(inbox_init(&ib), 0);
    pthread_t t[4];
    struct producer p[4];
    for (int k = 0; k < 4; k++) {
        p[k] = (struct producer){&ib, (uintptr_t)(k + 1) << 20};
        ck_assert_int_eq(pthread_create(&t[k], NULL, produce, &p[k]), 0);
    }
    /* Take while they push: each producer's items arrive in its order. */
    uintptr_t next[4] = {0};
    size_t total = 0;
    bool done = false;
    while (!done) {
        struct inbox_item *items;
        size_t n = inbox_take(&ib, &items);
        for (size_t i = 0; i < n; i++) {
            uintptr_t v = (uintptr_t)items[i].ptr;
            int k = (int)(v >> 20) - 1;
            ck_assert_uint_eq(v & 0xfffff, next[k]);
            next[k]++;
        }
        total += n;
        done = total == 40000;
        if (!done) {
            struct pollfd pf = {.fd = ib.efd, .events = POLLIN};
            poll(&pf, 1, 100);
        }
    }
    for (int k = 0; k < 4; k++) {
        void *rc;
        pthread_join(t[k], &rc);
        ck_assert_ptr_null(rc);
    }
    inbox_destroy(&ib);
}
END_TEST

SUITE(inbox,
      order_and_one_wake,
      many_producers)
