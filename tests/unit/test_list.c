/* test_list.c: the intrusive list keeps order through appends, unlinks
 * from any position and pops. */
#include "list.h"
#include "suites.h"

struct item {
    int id;
    struct list_node link;
};

static int ids(const struct list *l, int *out, int cap)
{
    int n = 0;
    for (const struct list_node *x = l->head; x && n < cap; x = x->next)
        out[n++] = list_entry(x, struct item, link)->id;
    return n;
}

START_TEST(order_unlink_pop)
{
    struct item it[5];
    struct list l = {0};
    for (int i = 0; i < 5; i++) {
        it[i].id = i;
        list_push_tail(&l, &it[i].link);
    }
    int got[8];
    ck_assert_int_eq(ids(&l, got, 8), 5);
    list_unlink(&l, &it[0].link); /* the head */
    list_unlink(&l, &it[2].link); /* the middle */
    list_unlink(&l, &it[4].link); /* the tail */
    ck_assert_int_eq(ids(&l, got, 8), 2);
    ck_assert_int_eq(got[0], 1);
    ck_assert_int_eq(got[1], 3);
    ck_assert_ptr_eq(l.tail, &it[3].link);
    list_push_head(&l, &it[0].link);
    list_push_tail(&l, list_pop_head(&l)); /* rotate: 1 3 0 */
    ck_assert_int_eq(ids(&l, got, 8), 3);
    ck_assert_int_eq(got[0], 1);
    ck_assert_int_eq(got[2], 0);
    while (list_pop_head(&l))
        ;
    ck_assert_ptr_null(l.head);
    ck_assert_ptr_null(l.tail);
    ck_assert_ptr_null(list_pop_head(&l));
}
END_TEST

SUITE(list,
      order_unlink_pop)
