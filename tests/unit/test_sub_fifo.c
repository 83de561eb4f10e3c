/* test_sub_fifo.c: a subscriber link's command FIFO: confirmations count
 * channels in argument order and end their command, a confirmation that
 * matches nothing is the node's own, pongs answer pings only, an error
 * takes the oldest command with the channels still unanswered, and the
 * ring keeps its order while it grows across the wrap. */
#include <stdio.h>
#include <string.h>

#include "redis/sub_fifo.h"
#include "suites.h"

static bool confirm(struct sub_fifo *f, bool sub, const char *ch)
{
    return sub_fifo_confirm(f, sub, ch, strlen(ch));
}

START_TEST(confirmations_end_their_command_in_order)
{
    struct sub_fifo f = {0};
    char *a[] = {"chat:room:a", "chat:room:b"};
    ck_assert(sub_fifo_push(&f, SUB_CMD_SUB, a, 2));
    ck_assert(sub_fifo_push(&f, SUB_CMD_PING, NULL, 0));
    ck_assert(!confirm(&f, true, "chat:room:b")); /* out of order: not ours */
    ck_assert(!confirm(&f, false, "chat:room:a")); /* an unsubscribe: the node's own */
    ck_assert(confirm(&f, true, "chat:room:a"));
    ck_assert_uint_eq(f.n, 2);
    ck_assert(confirm(&f, true, "chat:room:b"));
    ck_assert_uint_eq(f.n, 1); /* the subscribe is done */
    ck_assert_int_eq(sub_fifo_head(&f)->kind, SUB_CMD_PING);
    sub_fifo_pong(&f);
    ck_assert_uint_eq(f.n, 0);
    sub_fifo_pong(&f); /* nothing to answer: nothing happens */
    sub_fifo_free(&f);
}
END_TEST

START_TEST(a_pong_answers_only_a_ping)
{
    struct sub_fifo f = {0};
    char *a[] = {"g"};
    ck_assert(sub_fifo_push(&f, SUB_CMD_GLOBAL, a, 1));
    sub_fifo_pong(&f);
    ck_assert_uint_eq(f.n, 1);
    ck_assert(confirm(&f, true, "g"));
    ck_assert_uint_eq(f.n, 0);
    sub_fifo_free(&f);
}
END_TEST

START_TEST(an_error_takes_the_oldest_with_what_is_unanswered)
{
    struct sub_fifo f = {0};
    char *a[] = {"x", "y", "z"};
    ck_assert(sub_fifo_push(&f, SUB_CMD_SUB, a, 3));
    ck_assert(sub_fifo_push(&f, SUB_CMD_UNSUB, a, 1));
    ck_assert(confirm(&f, true, "x"));
    struct sub_cmd c;
    ck_assert(sub_fifo_take(&f, &c));
    ck_assert_int_eq(c.kind, SUB_CMD_SUB);
    ck_assert_uint_eq(c.n, 3);
    ck_assert_uint_eq(c.next, 1); /* y and z were not confirmed */
    ck_assert_str_eq(c.ch[c.next], "y");
    sub_cmd_free(&c);
    ck_assert_int_eq(sub_fifo_head(&f)->kind, SUB_CMD_UNSUB);
    ck_assert(confirm(&f, false, "x"));
    ck_assert(!sub_fifo_take(&f, &c));
    sub_fifo_free(&f);
}
END_TEST

START_TEST(order_holds_across_growth_and_the_wrap)
{
    struct sub_fifo f = {0};
    char name[16], *ch[1] = {name};
    unsigned next = 0, expect = 0;
    for (unsigned round = 0; round < 40; round++) {
        for (unsigned k = 0; k < 3 + round % 5; k++) {
            snprintf(name, sizeof(name), "c%u", next++);
            ck_assert(sub_fifo_push(&f, SUB_CMD_SUB, ch, 1));
        }
        for (unsigned k = 0; k < 2 + round % 4 && f.n; k++) {
            snprintf(name, sizeof(name), "c%u", expect++);
            ck_assert(confirm(&f, true, name));
        }
    }
    while (f.n) {
        snprintf(name, sizeof(name), "c%u", expect++);
        ck_assert(confirm(&f, true, name));
    }
    ck_assert_uint_eq(expect, next);
    sub_fifo_push(&f, SUB_CMD_SUB, ch, 1);
    sub_fifo_clear(&f);
    ck_assert_uint_eq(f.n, 0);
    sub_fifo_free(&f);
}
END_TEST

SUITE(sub_fifo,
      confirmations_end_their_command_in_order,
      a_pong_answers_only_a_ping,
      an_error_takes_the_oldest_with_what_is_unanswered,
      order_holds_across_growth_and_the_wrap)
