/* test_fbuf.c: refcounted frame buffers. Leaks and double frees show under
 * `make asan`, which runs this suite too. */
#include <string.h>

#include "fbuf.h"
#include "suites.h"
#include "ws/frame.h"

START_TEST(frames_once_and_counts_references)
{
    struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, "Hello", 5);
    ck_assert_ptr_nonnull(b);
    const uint8_t expect[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    ck_assert_uint_eq(b->len, 7);
    ck_assert_mem_eq(b->data, expect, 7);
    fbuf_ref(b);
    fbuf_ref(b);
    ck_assert_uint_eq(atomic_load(&b->refs), 3);
    fbuf_unref(b);
    fbuf_unref(b);
    ck_assert_uint_eq(atomic_load(&b->refs), 1);
    fbuf_unref(b);
}
END_TEST

START_TEST(large_payload_header)
{
    static uint8_t payload[70000];
    struct fbuf *b = fbuf_new_frame(WS_OP_TEXT, payload, sizeof(payload));
    ck_assert_uint_eq(b->len, 10 + sizeof(payload));
    ck_assert_uint_eq(b->data[1], 127);
    fbuf_unref(b);
}
END_TEST

SUITE(fbuf,
      frames_once_and_counts_references,
      large_payload_header)
