/* run_unit.c: runs every unit suite; exit status 0 only when all pass. */
#include <stdlib.h>

#include "suites.h"

Suite *suite_of(const char *name, const TTest *const *tests, size_t n)
{
    Suite *s = suite_create(name);
    TCase *tc = tcase_create("core");
    for (size_t i = 0; i < n; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    srunner_add_suite(sr, frame_suite());
    srunner_add_suite(sr, http_suite());
    srunner_add_suite(sr, handshake_suite());
    srunner_add_suite(sr, pmd_suite());
    srunner_add_suite(sr, compressor_suite());
    srunner_add_suite(sr, deliver_suite());
    srunner_add_suite(sr, auth_suite());
    srunner_add_suite(sr, json_suite());
    srunner_add_suite(sr, envelope_suite());
    srunner_add_suite(sr, config_suite());
    srunner_add_suite(sr, redis_url_suite());
    srunner_add_suite(sr, fbuf_suite());
    srunner_add_suite(sr, outbox_suite());
    srunner_add_suite(sr, pub_queue_suite());
    srunner_add_suite(sr, redis_message_suite());
    srunner_add_suite(sr, fanout_suite());
    srunner_add_suite(sr, seq_suite());
    srunner_add_suite(sr, ipaddr_suite());
    srunner_add_suite(sr, keys_suite());
    srunner_add_suite(sr, cluster_suite());
    srunner_add_suite(sr, registry_suite());
    srunner_add_suite(sr, hmap_suite());
    srunner_add_suite(sr, list_suite());
    srunner_add_suite(sr, room_suite());
    srunner_add_suite(sr, inbox_suite());
    srunner_add_suite(sr, stats_suite());
    srunner_add_suite(sr, send_ring_suite());
    srunner_add_suite(sr, conn_suite());
    srunner_add_suite(sr, sub_fifo_suite());
    srunner_add_suite(sr, dest_suite());
    srunner_add_suite(sr, ring_suite());
    srunner_add_suite(sr, wheel_suite());
    srunner_add_suite(sr, send_batch_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
