/* suites.h: one Check suite per module; run_unit.c runs them all. */
#ifndef CHAT_TEST_SUITES_H
#define CHAT_TEST_SUITES_H

#include <check.h>
#include <stddef.h>

/* A suite of one test case, "core", with tests in order: the usual shape,
 * written once (run_unit.c). */
Suite *suite_of(const char *name, const TTest *const *tests, size_t n);

/* Defines name_suite() as suite_of(name, the tests given). */
#define SUITE(name, ...)                                                                           \
    Suite *name##_suite(void)                                                                      \
    {                                                                                              \
        const TTest *const tests_[] = {__VA_ARGS__};                                               \
        return suite_of(#name, tests_, sizeof(tests_) / sizeof(tests_[0]));                        \
    }

Suite *utf8_suite(void);
Suite *frame_suite(void);
Suite *http_suite(void);
Suite *handshake_suite(void);
Suite *pmd_suite(void);
Suite *compressor_suite(void);
Suite *deliver_suite(void);
Suite *auth_suite(void);
Suite *json_suite(void);
Suite *envelope_suite(void);
Suite *config_suite(void);
Suite *redis_url_suite(void);
Suite *fbuf_suite(void);
Suite *outbox_suite(void);
Suite *pub_queue_suite(void);
Suite *redis_message_suite(void);
Suite *fanout_suite(void);
Suite *seq_suite(void);
Suite *ipaddr_suite(void);
Suite *keys_suite(void);
Suite *cluster_suite(void);
Suite *registry_suite(void);
Suite *hmap_suite(void);
Suite *list_suite(void);
Suite *room_suite(void);
Suite *inbox_suite(void);
Suite *stats_suite(void);
Suite *send_ring_suite(void);
Suite *wheel_suite(void);
Suite *send_batch_suite(void);
Suite *conn_suite(void);
Suite *sub_fifo_suite(void);
Suite *dest_suite(void);
Suite *ring_suite(void);

#endif
