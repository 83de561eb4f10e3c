/* test_stats.c: /ws/stats and /metrics from the counters' tables: workers'
 * counters are summed, every figure reaches both outputs under its name,
 * labelled families get one HELP and TYPE, room names are hidden when asked,
 * and the docs' table lists every field the JSON has. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "room/registry.h"
#include "stats.h"
#include "suites.h"

struct fixture {
    struct worker_counters workers[2];
    struct acceptor_counters acceptor;
    struct room_registry rooms;
    struct registry_top top;
    struct broker_origin_lost origins[1];
    struct stats_view v;
};

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    ck_assert_int_eq(registry_init(&f->rooms), 0);
    uint64_t gen;
    ck_assert_int_ge(registry_join(&f->rooms, "lobby", &gen), 0);
    ck_assert_int_ge(registry_join(&f->rooms, "lobby", &gen), 0);
    ck_assert_int_ge(registry_join(&f->rooms, "kitchen", &gen), 0);
    registry_top(&f->rooms, &f->top);
    atomic_store(&f->workers[0].received, 3);
    atomic_store(&f->workers[1].received, 4);
    atomic_store(&f->workers[0].connections, 10);
    atomic_store(&f->workers[1].connections, 5);
    atomic_store(&f->acceptor.rejected_per_ip, 2);
    snprintf(f->origins[0].pod, sizeof(f->origins[0].pod), "pod-b");
    atomic_store(&f->origins[0].lost, 9);
    f->v = (struct stats_view){
        .pod_id = "pod-a",
        .uptime_seconds = 12.5,
        .workers = f->workers,
        .nworkers = 2,
        .acceptor = &f->acceptor,
        .rooms = &f->rooms,
        .rooms_top = &f->top,
        .room_names = true,
        .broker = {.mode = "redis", .connected = 1, .lost = 9, .outbox = 17,
                   .origins = f->origins, .n_origins = 1},
        .keys = 2,
    };
}

static double number_at(cJSON *root, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    cJSON *at = root;
    for (char *part = strtok(buf, "."); part; part = strtok(NULL, "."))
        at = cJSON_GetObjectItemCaseSensitive(at, part);
    ck_assert_msg(cJSON_IsNumber(at), "%s is not a number", path);
    return at->valuedouble;
}

/* The value of one metric line ("chat_x{...} 7"), or -1 when absent. */
static double metric(const char *text, const char *name)
{
    char key[160];
    snprintf(key, sizeof(key), "\nchat_%s ", name);
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

START_TEST(sums_and_names)
{
    struct fixture f;
    setup(&f);
    char *json = stats_json(&f.v);
    cJSON *o = cJSON_Parse(json);
    ck_assert_ptr_nonnull(o);
    ck_assert_double_eq(number_at(o, "messages.received"), 7);
    ck_assert_double_eq(number_at(o, "connections.current"), 15);
    ck_assert_double_eq(number_at(o, "connections.rejected_by_reason.per_ip"), 2);
    ck_assert_double_eq(number_at(o, "rooms.count"), 2);
    ck_assert_double_eq(number_at(o, "rooms.members.lobby"), 2);
    ck_assert_double_eq(number_at(o, "broker.lost"), 9);
    ck_assert_double_eq(number_at(o, "broker.outbox"), 17);
    ck_assert_double_eq(number_at(o, "broker.lost_by_origin.pod-b"), 9);
    ck_assert_double_eq(number_at(o, "auth.public_keys"), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "pod_id")->valuestring, "pod-a");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "broker"), "connected")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "workers")), 2);
    cJSON_Delete(o);
    free(json);

    char *text = stats_metrics(&f.v);
    ck_assert_double_eq(metric(text, "messages_received_total"), 7);
    ck_assert_double_eq(metric(text, "connections_current"), 15);
    ck_assert_double_eq(metric(text, "connections_rejected_by_reason_total{reason=\"per_ip\"}"), 2);
    ck_assert_double_eq(metric(text, "connections_rejected_by_reason_total{reason=\"max_connections\"}"), 0);
    ck_assert_double_eq(metric(text, "rooms"), 2);
    ck_assert_double_eq(metric(text, "broker_lost_total"), 9);
    ck_assert_double_eq(metric(text, "broker_lost_by_origin_total{origin=\"pod-b\"}"), 9);
    ck_assert_double_eq(metric(text, "broker_connected"), 1);
    ck_assert_double_eq(metric(text, "uptime_seconds"), 12.5);
    free(text);
    registry_free(&f.rooms);
}
END_TEST

/* Prometheus refuses a family announced twice. */
START_TEST(one_help_per_family)
{
    struct fixture f;
    setup(&f);
    char *text = stats_metrics(&f.v);
    size_t families = 0;
    for (const char *p = text; (p = strstr(p, "# TYPE ")); p++) {
        char name[128];
        ck_assert_int_eq(sscanf(p, "# TYPE %127s", name), 1);
        char again[160];
        snprintf(again, sizeof(again), "# TYPE %s ", name);
        ck_assert_msg(strstr(p + 1, again) == NULL, "%s announced twice", name);
        families++;
    }
    ck_assert_uint_gt(families, 40);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE chat_connections_rejected_by_reason_total counter"));
    free(text);
    registry_free(&f.rooms);
}
END_TEST

START_TEST(names_hidden)
{
    struct fixture f;
    setup(&f);
    f.v.room_names = false;
    char *json = stats_json(&f.v);
    cJSON *o = cJSON_Parse(json);
    cJSON *rooms = cJSON_GetObjectItem(o, "rooms");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(rooms, "names_hidden")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(rooms, "members")), 0);
    ck_assert_double_eq(number_at(o, "rooms.count"), 2);
    ck_assert_ptr_null(strstr(json, "lobby"));
    cJSON_Delete(o);
    free(json);
    registry_free(&f.rooms);
}
END_TEST

/* Every leaf the JSON has is a row of the docs' table (per-room, per-pod and
 * per-worker entries under their parent's row). */
static void leaves_listed(cJSON *node, const char *path, const char *table)
{
    if (cJSON_IsObject(node) && strcmp(path, "rooms.members") &&
        strcmp(path, "broker.lost_by_origin")) {
        for (cJSON *c = node->child; c; c = c->next) {
            char sub[160];
            snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", c->string);
            leaves_listed(c, sub, table);
        }
        return;
    }
    char row[200];
    snprintf(row, sizeof(row), "| `%s` |", path);
    ck_assert_msg(strstr(table, row) != NULL, "%s is not in the table", path);
}

START_TEST(table_lists_every_field)
{
    struct fixture f;
    setup(&f);
    f.v.room_names = false;
    char *table = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&table, &len);
    stats_print_table(out);
    fclose(out);
    char *json = stats_json(&f.v);
    cJSON *o = cJSON_Parse(json);
    leaves_listed(o, "", table);
    cJSON_Delete(o);
    free(json);
    char *text = stats_metrics(&f.v);
    for (const char *p = text; (p = strstr(p, "# TYPE chat_")); p++) {
        char name[128], row[160];
        ck_assert_int_eq(sscanf(p, "# TYPE chat_%127s", name), 1);
        snprintf(row, sizeof(row), "`chat_%s", name);
        ck_assert_msg(strstr(table, row) != NULL, "metric %s is not in the table", name);
    }
    free(text);
    free(table);
    registry_free(&f.rooms);
}
END_TEST

SUITE(stats,
      sums_and_names,
      one_help_per_family,
      names_hidden,
      table_lists_every_field)
