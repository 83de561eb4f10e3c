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

START_TEST(tails)
{
    const char *msg = "{\"id\":\"x\",\"data\":{\"pod\":\"fake\"},\"pod\":\"chat-1\"}";
    char out[256];
    size_t n = seq_tail_append(msg, strlen(msg), 41, 1764000000123ull, out, sizeof(out));
    ck_assert_uint_gt(n, 0);
    const char *want = "{\"id\":\"x\",\"data\":{\"pod\":\"fake\"},\"pod\":\"chat-1\",\"seq\":41,"
                       "\"epoch\":1764000000123}";
    ck_assert_uint_eq(n, strlen(want));
    ck_assert(memcmp(out, want, n) == 0);
    struct seq_tail t;
    ck_assert(seq_tail_parse(out, n, &t));
    ck_assert_uint_eq(t.seq, 41);
    ck_assert_uint_eq(t.epoch, 1764000000123ull);
    ck_assert_uint_eq(t.pod_len, 6);
    ck_assert(memcmp(t.pod, "chat-1", 6) == 0);
    /* What clients get: the message up to its numbering. */
    ck_assert_uint_eq(t.body_len, strlen(msg) - 1);
    ck_assert(memcmp(out, msg, t.body_len) == 0);
    /* No truncation of it is a tail, and nor are payloads that end otherwise. */
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(!seq_tail_parse(out, k, &t), "cut at %zu", k);
    const char *bad[] = {
        "{\"pod\":\"a\",\"seq\":1}",
        "{\"pod\":\"a\",\"seq\":01,\"epoch\":2}",
        "{\"pod\":\"a\",\"seq\":-1,\"epoch\":2}",
        "{\"pod\":\"a\",\"seq\":1,\"epoch\":99999999999999999999}",
        "{\"xpod\":\"a\",\"seq\":1,\"epoch\":2}",
        "{\"pod\":\"a\\\"\",\"seq\":1,\"epoch\":2}",
        "{\"pod\":\"\",\"seq\":1,\"epoch\":2}",
        "{\"type\":\"notification\",\"seq\":1,\"epoch\":2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!seq_tail_parse(bad[i], strlen(bad[i]), &t), "%s", bad[i]);
    ck_assert(seq_tail_parse("{\"pod\":\"a\",\"seq\":0,\"epoch\":2}", 29, &t));
    /* Appending needs a closing brace and room. */
    ck_assert_uint_eq(seq_tail_append("[1]", 3, 1, 1, out, sizeof(out)), 0);
    ck_assert_uint_eq(seq_tail_append(msg, strlen(msg), 1, 1, out, strlen(msg) + 5), 0);
}
END_TEST

Suite *seq_suite(void)
{
    Suite *s = suite_create("seq");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, verdicts);
    tcase_add_test(tc, tables_forget_quiet_entries);
    tcase_add_test(tc, tails);
    suite_add_tcase(s, tc);
    return s;
}
