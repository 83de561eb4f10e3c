/* stats.c: the counters' tables (stats.h), summed and written as JSON, as
 * Prometheus text and as the docs' Markdown table. */
#include "stats.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"
#include "json.h"
#include "room/registry.h"

enum stat_kind { STAT_COUNTER, STAT_GAUGE, STAT_INFO /* a string, boolean or list */ };
enum stat_source { SRC_WORKER, SRC_ACCEPTOR, SRC_BROKER, SRC_VIEW, SRC_HAND };

struct stat_entry {
    const char *field;
    const char *json;   /* dotted path in the JSON; NULL: not there */
    const char *metric; /* name after chat_, labels included; NULL: not exported */
    enum stat_kind kind;
    enum stat_source src;
    size_t offset; /* of the value in its source's struct */
    const char *help;
};

/* A view's figures that are not kept anywhere: worked out per request. */
struct view_figures {
    VIEW_FIGURES(STATS_U64_FIELD)
};

#define ENTRY(src, type, f, j, m, k, h) {#f, j, m, STAT_##k, src, offsetof(type, f), h},
#define WORKER_ENTRY(...) ENTRY(SRC_WORKER, struct worker_counters, __VA_ARGS__)
#define ACCEPTOR_ENTRY(...) ENTRY(SRC_ACCEPTOR, struct acceptor_counters, __VA_ARGS__)
#define BROKER_ENTRY(...) ENTRY(SRC_BROKER, struct broker_status, __VA_ARGS__)
#define VIEW_ENTRY(...) ENTRY(SRC_VIEW, struct view_figures, __VA_ARGS__)
#define HAND_ENTRY(f, j, m, k, h) {#f, j, m, STAT_##k, SRC_HAND, 0, h},

static const struct stat_entry entries[] = {
    HAND_FIGURES(HAND_ENTRY) WORKER_COUNTERS(WORKER_ENTRY) ACCEPTOR_COUNTERS(ACCEPTOR_ENTRY)
        VIEW_FIGURES(VIEW_ENTRY) BROKER_COUNTERS(BROKER_ENTRY)};
#define N_ENTRIES (sizeof(entries) / sizeof(entries[0]))

static uint64_t load(const atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* What a request shows, the workers' counters summed once. */
struct snapshot {
    uint64_t worker_sum[N_ENTRIES]; /* by entry; SRC_WORKER entries only */
    const struct acceptor_counters *acceptor;
    const struct broker_status *broker;
    struct view_figures view;
};

static void take(const struct stats_view *v, struct snapshot *s)
{
    memset(s, 0, sizeof(*s));
    for (unsigned i = 0; i < v->nworkers; i++)
        for (size_t e = 0; e < N_ENTRIES; e++)
            if (entries[e].src == SRC_WORKER)
                s->worker_sum[e] += load(
                    (const atomic_uint_fast64_t *)((const char *)&v->workers[i] + entries[e].offset));
    s->acceptor = v->acceptor;
    s->broker = &v->broker;
    s->view.rooms = registry_rooms(v->rooms);
    for (unsigned i = 0; v->fanout && i < v->nworkers; i++) {
        s->view.inbox_work += fanout_lane_work(v->fanout, i);
        s->view.inbox_budget += fanout_lane_budget(v->fanout, i);
    }
    s->view.connected = v->broker.connected ? 1 : 0;
    s->view.keys = v->keys;
    s->view.key_reloads = v->key_reloads;
    s->view.key_reload_failures = v->key_reload_failures;
}

static uint64_t value(const struct snapshot *s, const struct stat_entry *e)
{
    switch (e->src) {
    case SRC_WORKER: return s->worker_sum[e - entries];
    case SRC_ACCEPTOR:
        return load((const atomic_uint_fast64_t *)((const char *)s->acceptor + e->offset));
    case SRC_BROKER: return *(const uint64_t *)((const char *)s->broker + e->offset);
    case SRC_VIEW: return *(const uint64_t *)((const char *)&s->view + e->offset);
    case SRC_HAND: break;
    }
    return 0;
}

/* The object a dotted path's last part goes in, made on first use; *leaf is
 * the last part. */
static cJSON *parent_of(cJSON *root, const char *path, char *leaf, size_t cap)
{
    cJSON *at = root;
    const char *p = path, *dot;
    while ((dot = strchr(p, '.'))) {
        char part[64];
        snprintf(part, sizeof(part), "%.*s", (int)(dot - p), p);
        cJSON *next = cJSON_GetObjectItemCaseSensitive(at, part);
        at = next ? next : cJSON_AddObjectToObject(at, part);
        p = dot + 1;
    }
    snprintf(leaf, cap, "%s", p);
    return at;
}

static void put(cJSON *root, const char *path, cJSON *item)
{
    char leaf[64];
    cJSON_AddItemToObject(parent_of(root, path, leaf, sizeof(leaf)), leaf, item);
}

static cJSON *object_at(cJSON *root, const char *path)
{
    cJSON *o = cJSON_CreateObject();
    put(root, path, o);
    return o;
}

char *stats_json(const struct stats_view *v)
{
    struct snapshot s;
    take(v, &s);
    const struct registry_top *top = v->rooms_top;
    cJSON *o = cJSON_CreateObject();
    put(o, "pod_id", cJSON_CreateString(v->pod_id));
    put(o, "uptime_seconds", cJSON_CreateNumber((double)(long)(v->uptime_seconds * 10) / 10));
    /* The groups in the order people read them. */
    static const char *const groups[] = {"connections", "rooms", "messages", "backpressure",
                                         "broker", "auth", "http"};
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
        cJSON_AddObjectToObject(o, groups[i]);
    put(o, "broker.mode", cJSON_CreateString(v->broker.mode));
    put(o, "broker.cluster", cJSON_CreateBool(v->broker.cluster));
    put(o, "broker.connected", cJSON_CreateBool(v->broker.connected));
    for (size_t e = 0; e < N_ENTRIES; e++)
        if (entries[e].json && entries[e].src != SRC_HAND)
            put(o, entries[e].json, cJSON_CreateNumber((double)value(&s, &entries[e])));

    /* Room names tell strangers what is being talked about: with auth on,
     * only a request with a valid token sees them. */
    put(o, "rooms.count", cJSON_CreateNumber((double)top->rooms));
    cJSON *members = object_at(o, "rooms.members");
    for (size_t i = 0; v->room_names && i < top->n; i++)
        cJSON_AddNumberToObject(members, top->top[i].name, (double)top->top[i].members);
    if (!v->room_names)
        put(o, "rooms.names_hidden", cJSON_CreateTrue());
    cJSON *by = object_at(o, "broker.lost_by_origin");
    for (unsigned i = 0; i < v->broker.n_origins; i++)
        cJSON_AddNumberToObject(by, v->broker.origins[i].pod,
                                (double)load(&v->broker.origins[i].lost));
    cJSON *ws = cJSON_AddArrayToObject(o, "workers");
    for (unsigned i = 0; i < v->nworkers; i++) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddNumberToObject(w, "id", i);
        cJSON_AddNumberToObject(w, "connections", (double)load(&v->workers[i].connections));
        if (v->fanout) {
            cJSON_AddNumberToObject(w, "inbox_work", (double)fanout_lane_work(v->fanout, i));
            cJSON_AddNumberToObject(w, "inbox_budget", (double)fanout_lane_budget(v->fanout, i));
        }
        cJSON_AddItemToArray(ws, w);
    }
    put(o, "shutting_down", cJSON_CreateBool(v->shutting_down));
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* HELP and TYPE once per metric family (a name before its labels). */
static void family(struct json_out *o, const char *metric, const char *kind, const char *help,
                   const char **last)
{
    size_t n = strcspn(metric, "{");
    if (*last && strcspn(*last, "{") == n && !strncmp(*last, metric, n))
        return;
    char line[512];
    snprintf(line, sizeof(line), "# HELP chat_%.*s %s\n# TYPE chat_%.*s %s\n", (int)n, metric,
             help, (int)n, metric, kind);
    json_out_lit(o, line);
    *last = metric;
}

static const char *kind_name(enum stat_kind k)
{
    return k == STAT_COUNTER ? "counter" : k == STAT_GAUGE ? "gauge" : "info";
}

char *stats_metrics(const struct stats_view *v)
{
    struct snapshot s;
    take(v, &s);
    struct json_out o = {0};
    const char *last = NULL;
    char line[256];
    for (size_t e = 0; e < N_ENTRIES; e++) {
        const struct stat_entry *en = &entries[e];
        if (!en->metric || en->src == SRC_HAND)
            continue;
        family(&o, en->metric, kind_name(en->kind), en->help, &last);
        snprintf(line, sizeof(line), "chat_%s %llu\n", en->metric,
                 (unsigned long long)value(&s, en));
        json_out_lit(&o, line);
    }
    family(&o, "uptime_seconds", "gauge", "Seconds since the server started.", &last);
    snprintf(line, sizeof(line), "chat_uptime_seconds %.3f\n", v->uptime_seconds);
    json_out_lit(&o, line);
    if (v->broker.n_origins)
        family(&o, "broker_lost_by_origin_total", "counter",
               "Cross-pod messages known to be missing, by the pod that published them.", &last);
    for (unsigned i = 0; i < v->broker.n_origins; i++) {
        /* Pod ids are A-Z a-z 0-9 - _ . : (config.c): nothing to escape. */
        snprintf(line, sizeof(line), "chat_broker_lost_by_origin_total{origin=\"%s\"} %llu\n",
                 v->broker.origins[i].pod, (unsigned long long)load(&v->broker.origins[i].lost));
        json_out_lit(&o, line);
    }
    json_out_raw(&o, "", 1); /* NUL-terminate */
    if (o.oom) {
        json_out_free(&o);
        return NULL;
    }
    return o.p;
}

void stats_print_table(FILE *out)
{
    fputs("| JSON field (`/ws/stats`) | metric (`/metrics`) | kind | meaning |\n"
          "|---|---|---|---|\n",
          out);
    for (size_t e = 0; e < N_ENTRIES; e++) {
        const struct stat_entry *en = &entries[e];
        char json[96] = "-", metric[128] = "-";
        if (!en->json && !en->metric)
            continue; /* internal: read by another thread, shown nowhere */
        if (en->json)
            snprintf(json, sizeof(json), "`%s`", en->json);
        if (en->metric)
            snprintf(metric, sizeof(metric), "`chat_%s`", en->metric);
        fprintf(out, "| %s | %s | %s | %s |\n", json, metric, kind_name(en->kind), en->help);
    }
}
