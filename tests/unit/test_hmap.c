/* test_hmap.c: the keyed hash map: SipHash-2-4's reference values, the
 * map's operations and growth, and names chosen to collide under an
 * unkeyed hash spreading out under the keyed one. */
#include <stdio.h>
#include <string.h>

#include "hmap.h"
#include "collide.h"
#include "suites.h"

struct item {
    struct hmap_node hn;
    char name[32];
};

static bool same_name(const struct hmap_node *n, const void *key)
{
    return strcmp(hmap_entry(n, struct item, hn)->name, key) == 0;
}

static void reference_key(void)
{
    uint8_t key[16];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    hmap_set_key(key);
}

START_TEST(siphash_reference_values)
{
    /* The paper's example: key 00..0f, message 00..0e. */
    reference_key();
    uint8_t msg[15];
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    ck_assert_uint_eq(hmap_siphash(msg, 15), 0xa129ca6149be45e5ull);
    /* The reference implementation's first vector: the empty message. */
    ck_assert_uint_eq(hmap_siphash(msg, 0), 0x726fdb47dd0e0e31ull);
    /* Another key gives another hash. */
    uint8_t other[16] = {1};
    hmap_set_key(other);
    ck_assert_uint_ne(hmap_siphash(msg, 15), 0xa129ca6149be45e5ull);
    reference_key();
}
END_TEST

START_TEST(insert_find_unlink_grow)
{
    static struct item items[1000];
    struct hmap m;
    ck_assert_int_eq(hmap_init(&m, 4), 0);
    ck_assert_uint_eq(m.nbuckets, 8);
    for (int i = 0; i < 1000; i++) {
        snprintf(items[i].name, sizeof(items[i].name), "room-%d", i);
        hmap_insert(&m, &items[i].hn, hmap_hash(items[i].name, strlen(items[i].name)));
    }
    ck_assert_uint_eq(m.n, 1000);
    ck_assert_uint_ge(m.nbuckets, 1000); /* grew by doubling, never fewer buckets than entries */
    for (int i = 0; i < 1000; i++) {
        struct hmap_node **l =
            hmap_find(&m, hmap_hash(items[i].name, strlen(items[i].name)), same_name, items[i].name);
        ck_assert_ptr_nonnull(l);
        ck_assert_ptr_eq(*l, &items[i].hn);
    }
    ck_assert_ptr_null(hmap_find(&m, hmap_hash("nope", 4), same_name, "nope"));
    /* Found by address: the same link hmap_find gives. */
    ck_assert_ptr_eq(hmap_link_of(&m, &items[7].hn),
                     hmap_find(&m, items[7].hn.hash, same_name, items[7].name));
    /* Remove the even ones in a walk, as hmap.h shows. */
    for (size_t i = 0; i < m.nbuckets; i++)
        for (struct hmap_node **l = &m.buckets[i]; *l;) {
            const char *name = hmap_entry(*l, struct item, hn)->name;
            int k;
            sscanf(name, "room-%d", &k);
            if (k % 2 == 0)
                hmap_unlink(&m, l);
            else
                l = &(*l)->next;
        }
    ck_assert_uint_eq(m.n, 500);
    for (int i = 0; i < 1000; i++) {
        struct hmap_node **l =
            hmap_find(&m, hmap_hash(items[i].name, strlen(items[i].name)), same_name, items[i].name);
        ck_assert_msg((l != NULL) == (i % 2 == 1), "room-%d", i);
    }
    ck_assert_uint_eq(m.grow_failures, 0);
    hmap_free(&m);
}
END_TEST

/* Every entry once, whether the walk unlinks some on the way, and from any
 * starting bucket (wrapping round). */
START_TEST(a_walk_sees_every_entry_once_and_may_unlink_as_it_goes)
{
    reference_key();
    enum { N = 300 };
    static struct item items[N];
    struct hmap m;
    struct hmap_iter it;
    ck_assert_int_eq(hmap_init(&m, 4), 0);
    ck_assert_ptr_null(hmap_iter_start(&it, &m, 0)); /* empty */
    for (unsigned i = 0; i < N; i++) {
        snprintf(items[i].name, sizeof(items[i].name), "w%u", i);
        hmap_insert(&m, &items[i].hn, hmap_hash(items[i].name, strlen(items[i].name)));
    }
    unsigned seen[N] = {0};
    size_t from = 5;
    for (struct hmap_node *x = hmap_iter_start(&it, &m, from); x; x = hmap_iter_next(&it))
        seen[hmap_entry(x, struct item, hn) - items]++;
    for (unsigned i = 0; i < N; i++)
        ck_assert_uint_eq(seen[i], 1);
    /* Unlink the even ones while walking: the odd ones are still all seen. */
    unsigned odd = 0;
    hmap_each(x, &it, &m) {
        size_t i = (size_t)(hmap_entry(x, struct item, hn) - items);
        if (i % 2 == 0) {
            hmap_iter_unlink(&it);
            memset(&items[i].hn, 0xa5, sizeof(items[i].hn)); /* as if freed */
        } else {
            odd++;
        }
    }
    ck_assert_uint_eq(odd, N / 2);
    ck_assert_uint_eq(m.n, N / 2);
    for (unsigned i = 0; i < N; i++) {
        bool found = hmap_find(&m, hmap_hash(items[i].name, strlen(items[i].name)), same_name,
                               items[i].name) != NULL;
        ck_assert_int_eq(found, i % 2 == 1);
    }
    hmap_free(&m);
}
END_TEST

START_TEST(names_that_collide_unkeyed_spread_out)
{
    enum { N = 1000 };
    static struct item items[N];
    static char names[N][32];
    collide_names(names, N);
    for (int i = 0; i < N; i++)
        memcpy(items[i].name, names[i], sizeof(names[i]));
    hmap_random_key();
    struct hmap m;
    ck_assert_int_eq(hmap_init(&m, 64), 0);
    for (int i = 0; i < N; i++)
        hmap_insert(&m, &items[i].hn, hmap_hash(items[i].name, strlen(items[i].name)));
    /* Keyed: the longest chain is a handful (about 5 expected for 1,000
     * entries in 1,024 buckets), not 1,000 as it would be unkeyed. */
    ck_assert_uint_le(hmap_longest_chain(&m), 16);
    hmap_free(&m);
    reference_key();
}
END_TEST

Suite *hmap_suite(void)
{
    Suite *s = suite_create("hmap");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, siphash_reference_values);
    tcase_add_test(tc, insert_find_unlink_grow);
    tcase_add_test(tc, a_walk_sees_every_entry_once_and_may_unlink_as_it_goes);
    tcase_add_test(tc, names_that_collide_unkeyed_spread_out);
    suite_add_tcase(s, tc);
    return s;
}
