/* test_seq.c: sequence tables, verdicts and payload tails. */
#include <stdio.h>
#include <string.h>

#include "redis/seq.h"
#include "suites.h"

START_TEST(verdicts)
{
    struct seq_table *t = seq_table_new(0);
    bool fresh;
    struct seq_entry *e = seq_table_get(t, "a 1 ch", 6, &fresh);
    ck_assert(fresh);
    uint64_t lost;
    /* A first sight is a start, whatever its number. */
    ck_assert_int_eq(seq_accept(e, true, 41, &lost), SEQ_NEXT);
    ck_assert_int_eq(seq_accept(e, false, 42, &lost), SEQ_NEXT);
    ck_assert_uint_eq(lost, 0);
    ck_assert_int_eq(seq_accept(e, false, 42, &lost), SEQ_DUPLICATE);
    ck_assert_int_eq(seq_accept(e, false, 40, &lost), SEQ_DUPLICATE);
    ck_assert_int_eq(seq_accept(e, false, 50, &lost), SEQ_GAP);
    ck_assert_uint_eq(lost, 7);
    ck_assert_int_eq(seq_accept(e, false, 51, &lost), SEQ_NEXT);
    /* A gap of up to SEQ_JUMP_MAX is a loss; a repeat up to as far back is a
     * duplicate. */
    ck_assert_int_eq(seq_accept(e, false, 51 + SEQ_JUMP_MAX, &lost), SEQ_GAP);
    ck_assert_uint_eq(lost, SEQ_JUMP_MAX - 1);
    ck_assert_int_eq(seq_accept(e, false, 52, &lost), SEQ_DUPLICATE);
    /* Further either way is a new stream: nothing lost, and the real
     * numbers that follow a made-up one are delivered, not dropped. */
    uint64_t at = 51 + SEQ_JUMP_MAX;
    ck_assert_int_eq(seq_accept(e, false, 1000000000000ull, &lost), SEQ_RESTART);
    ck_assert_uint_eq(lost, 0);
    ck_assert_int_eq(seq_accept(e, false, at + 1, &lost), SEQ_RESTART);
    ck_assert_uint_eq(lost, 0);
    ck_assert_int_eq(seq_accept(e, false, at + 2, &lost), SEQ_NEXT);
    ck_assert_int_eq(seq_accept(e, false, at + 2, &lost), SEQ_DUPLICATE);
    ck_assert_int_eq(seq_accept(e, false, at + 3 + SEQ_JUMP_MAX, &lost), SEQ_RESTART);
    /* The same key finds the same entry; another key another. */
    ck_assert_ptr_eq(seq_table_get(t, "a 1 ch", 6, &fresh), e);
    ck_assert(!fresh);
    ck_assert_ptr_ne(seq_table_get(t, "a 2 ch", 6, &fresh), e);
    ck_assert(fresh);
    seq_table_free(t);
}
END_TEST

START_TEST(tables_forget_quiet_entries)
{
    struct seq_table *t = seq_table_new(0);
    char key[32];
    bool fresh;
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "pod %d", i);
        struct seq_entry *e = seq_table_get(t, key, (size_t)n, &fresh);
        ck_assert(fresh);
        e->stamp_ms = (uint64_t)i;
    }
    ck_assert_uint_eq(seq_table_count(t), 1000);
    ck_assert_uint_eq(seq_table_sweep(t, 600), 600);
    ck_assert_uint_eq(seq_table_count(t), 400);
    ck_assert(!(seq_table_get(t, "pod 700", 7, &fresh) == NULL) && !fresh);
    ck_assert(seq_table_get(t, "pod 7", 5, &fresh) != NULL && fresh);
    char big[SEQ_KEY_MAX + 1];
    memset(big, 'k', sizeof(big));
    ck_assert_ptr_null(seq_table_get(t, big, sizeof(big), &fresh));
    /* A bounded table takes no new key once full; known keys still work. */
    struct seq_table *small = seq_table_new(2);
    ck_assert_ptr_nonnull(seq_table_get(small, "a", 1, &fresh));
    ck_assert_ptr_nonnull(seq_table_get(small, "b", 1, &fresh));
    ck_assert_ptr_null(seq_table_get(small, "c", 1, &fresh));
    ck_assert_ptr_nonnull(seq_table_get(small, "a", 1, &fresh));
    ck_assert(!fresh);
    ck_assert_uint_eq(seq_table_sweep(small, UINT64_MAX), 2);
    ck_assert_ptr_nonnull(seq_table_get(small, "c", 1, &fresh));
    seq_table_free(small);
    /* The receiver forgets before the publisher does (seq.h). */
    ck_assert_int_lt(SEQ_FORGET_RX_MS, SEQ_FORGET_TX_MS);
    seq_table_free(t);
}
END_TEST

SUITE(seq,
      verdicts,
      tables_forget_quiet_entries)
