/* test_config.c: environment variables, defaults and startup errors. */
#include <string.h>

#include "config.h"
#include "suites.h"

/* A fake environment: NULL-terminated pairs. */
static const char *lookup(void *ctx, const char *name)
{
    const char *const *env = ctx;
    for (size_t i = 0; env[i]; i += 2)
        if (strcmp(env[i], name) == 0)
            return env[i + 1];
    return NULL;
}

static const struct config_defaults DEF = {
    .hostname = "box.local", .random = 0x3fa9c2, .cpus = 2, .nofile = 20000};

START_TEST(defaults)
{
    const char *env[] = {NULL};
    struct config c;
    char err[256];
    ck_assert_int_eq(config_load(&c, lookup, env, &DEF, err, sizeof(err)), 0);
    ck_assert_uint_eq(c.port, 8080);
    ck_assert_str_eq(c.bind_addr, "0.0.0.0");
    ck_assert(!c.redis_enabled);
    ck_assert_str_eq(c.pod_id, "box.local-3fa9c2");
    ck_assert_uint_eq(c.workers, 2);
    ck_assert(!c.auth_enabled);
    ck_assert_uint_eq(c.n_allowed_origins, 0);
    ck_assert_uint_eq(c.ping_interval_ms, 54000);
    ck_assert_uint_eq(c.pong_timeout_ms, 60000);
    ck_assert_uint_eq(c.max_message, 65536);
    ck_assert_uint_eq(c.send_buffer, 256);
    ck_assert_uint_eq(c.shutdown_timeout_ms, 10000);
    ck_assert_uint_eq(c.max_connections, 20000 - 64 - 1024);
    ck_assert_int_eq(c.log_level, LOG_INFO);
    ck_assert(!c.echo_endpoint);
    ck_assert_uint_eq(c.redis_outbox, 10000);
    ck_assert_uint_eq(c.per_ip_v6_prefix, 64);
    config_free(&c);
}
END_TEST

START_TEST(every_variable_set)
{
    const char *env[] = {"PORT",
                         "9000",
                         "BIND_ADDR",
                         "::1",
                         "REDIS_URL",
                         "redis://:pw@r:6380/2",
                         "POD_ID",
                         "chat-1",
                         "WORKERS",
                         "3",
                         "AUTH_ENABLED",
                         "true",
                         "JWT_SECRET",
                         "k",
                         "ALLOWED_ORIGINS",
                         " https://a.example , http://b:8080",
                         "PING_INTERVAL",
                         "1500ms",
                         "PONG_TIMEOUT",
                         "2m",
                         "MAX_MESSAGE_SIZE",
                         "1024",
                         "SEND_BUFFER",
                         "16",
                         "SHUTDOWN_TIMEOUT",
                         "0",
                         "MAX_CONNECTIONS",
                         "100",
                         "LOG_LEVEL",
                         "DEBUG",
                         "ECHO_ENDPOINT",
                         "1",
                         "REDIS_OUTBOX",
                         "5",
                         "UNRELATED",
                         "x",
                         NULL};
    struct config c;
    char err[256];
    ck_assert_int_eq(config_load(&c, lookup, env, &DEF, err, sizeof(err)), 0);
    ck_assert_uint_eq(c.port, 9000);
    ck_assert_str_eq(c.bind_addr, "::1");
    ck_assert(c.redis_enabled);
    ck_assert_str_eq(c.redis.host, "r");
    ck_assert_uint_eq(c.redis.port, 6380);
    ck_assert_str_eq(c.redis.password, "pw");
    ck_assert_int_eq(c.redis.db, 2);
    ck_assert_str_eq(c.pod_id, "chat-1");
    ck_assert_uint_eq(c.workers, 3);
    ck_assert(c.auth_enabled);
    ck_assert_str_eq(c.jwt_secret, "k");
    ck_assert_uint_eq(c.n_allowed_origins, 2);
    ck_assert_str_eq(c.allowed_origins[0], "https://a.example");
    ck_assert_str_eq(c.allowed_origins[1], "http://b:8080");
    ck_assert_uint_eq(c.ping_interval_ms, 1500);
    ck_assert_uint_eq(c.pong_timeout_ms, 120000);
    ck_assert_uint_eq(c.max_message, 1024);
    ck_assert_uint_eq(c.send_buffer, 16);
    ck_assert_uint_eq(c.shutdown_timeout_ms, 0);
    ck_assert_uint_eq(c.max_connections, 100);
    ck_assert_int_eq(c.log_level, LOG_DEBUG);
    ck_assert(c.echo_endpoint);
    ck_assert_uint_eq(c.redis_outbox, 5);
    config_free(&c);
}
END_TEST

START_TEST(empty_means_unset)
{
    const char *env[] = {"REDIS_URL", "", "PORT", "", NULL};
    struct config c;
    char err[256];
    ck_assert_int_eq(config_load(&c, lookup, env, &DEF, err, sizeof(err)), 0);
    ck_assert(!c.redis_enabled);
    ck_assert_uint_eq(c.port, 8080);
    config_free(&c);
}
END_TEST

START_TEST(errors_name_the_variable)
{
    static const char *const bad[][3] = {
        {"PORT", "0", "PORT:"},
        {"PORT", "65536", "PORT:"},
        {"PORT", "-1", "PORT:"},
        {"PORT", "80a", "PORT:"},
        {"BIND_ADDR", "localhost", "BIND_ADDR:"},
        {"REDIS_URL", "http://x", "REDIS_URL:"},
        {"REDIS_URL", "redis://:pw@", "REDIS_URL:"},
        {"POD_ID", "has space", "POD_ID:"},
        {"WORKERS", "0", "WORKERS:"},
        {"WORKERS", "257", "WORKERS:"},
        {"AUTH_ENABLED", "maybe", "AUTH_ENABLED:"},
        {"AUTH_ENABLED", "true", "JWT_SECRET:"},
        {"ALLOWED_ORIGINS", "a,,b", "ALLOWED_ORIGINS:"},
        {"PING_INTERVAL", "5h", "PING_INTERVAL:"},
        {"PING_INTERVAL", "0", "PING_INTERVAL:"},
        {"PING_INTERVAL", "1.5s", "PING_INTERVAL:"},
        {"PING_INTERVAL", "90s", "PONG_TIMEOUT:"},
        {"PONG_TIMEOUT", "-3s", "PONG_TIMEOUT:"},
        {"MAX_MESSAGE_SIZE", "-1", "MAX_MESSAGE_SIZE:"},
        {"MAX_MESSAGE_SIZE", "0", "MAX_MESSAGE_SIZE:"},
        {"SEND_BUFFER", "-5", "SEND_BUFFER:"},
        {"SEND_BUFFER", "lots", "SEND_BUFFER:"},
        {"SHUTDOWN_TIMEOUT", "soon", "SHUTDOWN_TIMEOUT:"},
        {"MAX_CONNECTIONS", "0", "MAX_CONNECTIONS:"},
        {"LOG_LEVEL", "loud", "LOG_LEVEL:"},
        {"ECHO_ENDPOINT", "on?", "ECHO_ENDPOINT:"},
        {"REDIS_OUTBOX", "0", "REDIS_OUTBOX:"},
        {"PER_IP_IPV6_PREFIX", "0", "PER_IP_IPV6_PREFIX:"},
        {"PER_IP_IPV6_PREFIX", "129", "PER_IP_IPV6_PREFIX:"},
        {"PER_IP_IPV6_PREFIX", "/64", "PER_IP_IPV6_PREFIX:"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *env[] = {bad[i][0], bad[i][1], NULL};
        struct config c;
        char err[256] = "";
        ck_assert_msg(config_load(&c, lookup, env, &DEF, err, sizeof(err)) == -1, "%s=%s accepted",
                      bad[i][0], bad[i][1]);
        ck_assert_msg(strncmp(err, bad[i][2], strlen(bad[i][2])) == 0, "%s=%s: '%s'", bad[i][0],
                      bad[i][1], err);
    }
}
END_TEST

/* Each row (two variables and the start of the error) is refused with an
 * error that starts so. */
static void refused_all(const char *const (*bad)[5], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *env[] = {bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL};
        struct config c;
        char err[256] = "";
        ck_assert_msg(config_load(&c, lookup, env, &DEF, err, sizeof(err)) == -1, "case %zu", i);
        ck_assert_msg(strncmp(err, bad[i][4], strlen(bad[i][4])) == 0, "case %zu: '%s'", i, err);
    }
}

START_TEST(redis_sentinel_and_tls)
{
    static const char *const bad[][5] = {
        {"REDIS_SENTINEL", "mymaster", NULL, NULL, "REDIS_SENTINEL:"},
        {"REDIS_URL", "redis://a,b", "REDIS_SENTINEL", "my master", "REDIS_SENTINEL:"},
        {"REDIS_URL", "redis://a", "REDIS_TLS_CA_FILE", "/ca.pem", "REDIS_TLS_CA_FILE:"},
        {"REDIS_URL", "redis://a", "REDIS_TLS_VERIFY", "false", "REDIS_TLS_VERIFY:"},
        {"REDIS_URL", "rediss://a", "REDIS_TLS_CERT_FILE", "/c.pem", "REDIS_TLS_KEY_FILE:"},
        {"REDIS_URL", "rediss://a", "REDIS_TLS_KEY_FILE", "/k.pem", "REDIS_TLS_CERT_FILE:"},
        {"REDIS_URL", "rediss://a", "REDIS_TLS_VERIFY", "maybe", "REDIS_TLS_VERIFY:"},
    };
    refused_all(bad, sizeof(bad) / sizeof(bad[0]));
    const char *env[] = {"REDIS_URL", "rediss://s1:26379,s2:26379", "REDIS_SENTINEL", "mymaster",
                         "REDIS_TLS_CA_FILE", "/etc/ca.pem", "REDIS_TLS_VERIFY", "false", NULL};
    struct config c;
    char err[256];
    ck_assert_int_eq(config_load(&c, lookup, env, &DEF, err, sizeof(err)), 0);
    ck_assert_str_eq(c.redis_sentinel, "mymaster");
    ck_assert(c.redis.tls);
    ck_assert(!c.redis_tls_verify);
    ck_assert_str_eq(c.redis_tls_ca, "/etc/ca.pem");
    ck_assert_uint_eq(c.redis.nseeds, 2);
    config_free(&c);
    const char *plain[] = {"REDIS_URL", "rediss://a", NULL};
    ck_assert_int_eq(config_load(&c, lookup, plain, &DEF, err, sizeof(err)), 0);
    ck_assert(c.redis_tls_verify); /* checked unless said otherwise */
    config_free(&c);
}
END_TEST

START_TEST(redis_cluster_needs_its_url)
{
    static const char *const bad[][5] = {
        {"REDIS_CLUSTER", "true", NULL, NULL, "REDIS_CLUSTER:"},
        {"REDIS_URL", "redis://a:7000,b:7001", NULL, NULL, "REDIS_URL:"},
        {"REDIS_URL", "redis://a:7000/2", "REDIS_CLUSTER", "true", "REDIS_URL:"},
        {"REDIS_URL", "redis://a", "REDIS_CLUSTER", "yes please", "REDIS_CLUSTER:"},
        {"ROOM_LINGER", "forever", NULL, NULL, "ROOM_LINGER:"},
    };
    refused_all(bad, sizeof(bad) / sizeof(bad[0]));
    const char *env[] = {"REDIS_URL", "redis://a:7000,b:7001", "REDIS_CLUSTER", "true",
                         "ROOM_LINGER", "0", NULL};
    struct config c;
    char err[256];
    ck_assert_int_eq(config_load(&c, lookup, env, &DEF, err, sizeof(err)), 0);
    ck_assert(c.redis_cluster);
    ck_assert_uint_eq(c.redis.nseeds, 2);
    ck_assert_uint_eq(c.room_linger_ms, 0);
    config_free(&c);
}
END_TEST

START_TEST(durations)
{
    uint32_t ms;
    ck_assert_int_eq(config_parse_duration("60", &ms), 0);
    ck_assert_uint_eq(ms, 60000);
    ck_assert_int_eq(config_parse_duration("60s", &ms), 0);
    ck_assert_uint_eq(ms, 60000);
    ck_assert_int_eq(config_parse_duration("1500ms", &ms), 0);
    ck_assert_uint_eq(ms, 1500);
    ck_assert_int_eq(config_parse_duration("2m", &ms), 0);
    ck_assert_uint_eq(ms, 120000);
    ck_assert_int_eq(config_parse_duration("", &ms), -1);
    ck_assert_int_eq(config_parse_duration("s", &ms), -1);
    ck_assert_int_eq(config_parse_duration("10 s", &ms), -1);
    ck_assert_int_eq(config_parse_duration("99999999m", &ms), -1); /* overflows */
}
END_TEST

SUITE(config,
      defaults,
      every_variable_set,
      empty_means_unset,
      errors_name_the_variable,
      durations,
      redis_cluster_needs_its_url,
      redis_sentinel_and_tls)
