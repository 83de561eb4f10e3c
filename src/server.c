/* server.c: startup, the standalone broker, and the graceful shutdown.
 *
 * DESIGN: SIGTERM and SIGINT are blocked in every thread (the mask is set
 * before any thread starts) and taken by the main thread with sigwait, so no
 * handler ever runs inside a worker. Shutdown order: mark shutting down
 * (/readyz answers 503 and upgrades 503 from then on) and kick every worker,
 * which closes its connections with 1001 after what is queued; wait for the
 * workers (each ends when its clients are gone or SHUTDOWN_TIMEOUT passed:
 * a worker's pass is bounded work, so nothing queued can hold it longer),
 * give the broker what is left of the deadline to flush, then free
 * everything. From the first signal on, a second one ends the process at
 * once, from a handler that only writes a line and calls _exit. */
#include "server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acceptor.h"
#include "clock.h"
#include "fanout.h"
#include "log.h"
#include "redis/broker.h"
#include "worker.h"
#include "ws/keys.h"

/* Standalone mode: the workers already delivered the message to every local
 * client through their inboxes; there is nowhere else to send it. */
static void standalone_publish(struct broker *b, struct fbuf *msg)
{
    (void)b;
    (void)msg;
}

static void standalone_status(struct broker *b, struct broker_status *out)
{
    (void)b;
    *out = (struct broker_status){.mode = "standalone", .connected = 1};
}

static void standalone_stop(struct broker *b, uint64_t deadline_ms)
{
    (void)b;
    (void)deadline_ms;
}

void server_stats_view(struct server *srv, struct stats_view *v)
{
    *v = (struct stats_view){
        .pod_id = srv->cfg.pod_id,
        .uptime_seconds = (double)(clock_now_ms() - srv->started_ms) / 1000.0,
        .workers = srv->counters,
        .nworkers = srv->nworkers,
        .acceptor = &srv->acceptor_counters,
        .rooms = &srv->rooms,
        .fanout = srv->fanout,
        .key_reloads = atomic_load(&srv->key_reloads),
        .key_reload_failures = atomic_load(&srv->key_reload_failures),
        .shutting_down = atomic_load(&srv->shutting_down),
    };
    srv->broker.status(&srv->broker, &v->broker);
    pthread_mutex_lock(&srv->keys_lock);
    v->keys = ws_keys_count(srv->keys);
    pthread_mutex_unlock(&srv->keys_lock);
}

/* server_stats_view as the acceptor calls it (acceptor.h). */
static void stats_view_of(void *arg, struct stats_view *v)
{
    server_stats_view(arg, v);
}

static void log_config(const struct config *c)
{
    log_info("chat-api starting: pod=%s listen=%s:%u workers=%u broker=%s auth=%s echo=%s",
             c->pod_id, c->bind_addr, c->port, c->workers,
             c->redis_cluster ? "redis-cluster" : c->redis_enabled ? "redis" : "standalone", c->auth_enabled ? "on" : "off",
             c->echo_endpoint ? "on" : "off");
    log_info("limits: max_message=%zu send_buffer=%u max_connections=%u ping=%ums pong=%ums "
             "shutdown=%ums origins=%zu",
             c->max_message, c->send_buffer, c->max_connections, c->ping_interval_ms,
             c->pong_timeout_ms, c->shutdown_timeout_ms, c->n_allowed_origins);
}

/* Order matters: the acceptor and the Redis subscriber push into worker
 * inboxes, so both stop before any worker is freed; the workers end first so
 * that the publisher's last batch holds everything they accepted. */
static void teardown(struct server *srv, uint64_t deadline_ms)
{
    if (srv->acceptor)
        acceptor_stop(srv->acceptor);
    for (unsigned i = 0; srv->workers && i < srv->nworkers; i++)
        if (srv->workers[i])
            worker_join(srv->workers[i]);
    if (srv->broker.stop)
        srv->broker.stop(&srv->broker, deadline_ms);
    for (unsigned i = 0; srv->workers && i < srv->nworkers; i++)
        worker_destroy(srv->workers[i]);
    fanout_destroy(srv->fanout);
    acceptor_destroy(srv->acceptor);
    free(srv->workers);
    free(srv->counters);
    registry_free(&srv->rooms);
    ip_counts_free(&srv->ip_counts);
    ws_keys_free(srv->keys);
    pthread_mutex_destroy(&srv->keys_lock);
}

/* SIGHUP: JWT_PUBLIC_KEYS_FILE is read again; a file that does not load
 * leaves the keys in use as they are, and the log says why. */
static void reload_keys(struct server *srv)
{
    if (!srv->cfg.jwt_keys_file) {
        log_info("SIGHUP: no JWT_PUBLIC_KEYS_FILE to read again");
        return;
    }
    char err[512];
    struct ws_keyset *set = ws_keys_load(srv->cfg.jwt_keys_file, err, sizeof(err));
    if (!set) {
        log_warn("SIGHUP: keeping the keys in use: JWT_PUBLIC_KEYS_FILE: %s", err);
        atomic_fetch_add(&srv->key_reload_failures, 1);
        return;
    }
    pthread_mutex_lock(&srv->keys_lock);
    struct ws_keyset *old = srv->keys;
    srv->keys = set;
    pthread_mutex_unlock(&srv->keys_lock);
    ws_keys_free(old);
    atomic_fetch_add(&srv->key_reloads, 1);
    log_info("SIGHUP: %zu public keys read again from JWT_PUBLIC_KEYS_FILE", ws_keys_count(set));
}

/* The second SIGTERM or SIGINT: the operator wants out now. Only
 * async-signal-safe calls here. Exit status 128 + signal, as a shell reports
 * a process ended by that signal. */
static void on_second_signal(int sig)
{
    static const char msg[] = "second signal during shutdown: exiting at once\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)w;
    _exit(128 + sig);
}

/* Tells the workers to shut down and waits until they have ended (each one
 * ends by its drain deadline on its own). */
static void stop_workers(struct server *srv)
{
    atomic_store(&srv->shutting_down, 1);
    fanout_kick_all(srv->fanout);
    while (atomic_load(&srv->workers_ended) < srv->nworkers) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Loads the keys and starts the acceptor, the broker and the workers.
 * Returns 0, or the exit status (said in the log already). */
static int start_threads(struct server *srv)
{
    const struct config *cfg = &srv->cfg;
    int status = 0;
    if (cfg->jwt_keys_file) {
        char err[512];
        srv->keys = ws_keys_load(cfg->jwt_keys_file, err, sizeof(err));
        if (!srv->keys) {
            log_error("JWT_PUBLIC_KEYS_FILE: %s", err);
            status = 2;
        } else {
            log_info("%zu public keys from JWT_PUBLIC_KEYS_FILE", ws_keys_count(srv->keys));
        }
    }
    struct acceptor_env aenv = {.cfg = &srv->cfg,
                                .counters = &srv->acceptor_counters,
                                .workers = srv->counters,
                                .nworkers = srv->nworkers,
                                .fanout = srv->fanout,
                                .ip_counts = &srv->ip_counts,
                                .rooms = &srv->rooms,
                                .broker = &srv->broker,
                                .shutting_down = &srv->shutting_down,
                                .keys_lock = &srv->keys_lock,
                                .keys = &srv->keys,
                                .stats_view = stats_view_of,
                                .stats_arg = srv};
    srv->acceptor = status ? NULL : acceptor_create(&aenv);
    if (!srv->acceptor && status == 0)
        status = 1;
    /* Redis being unreachable is not fatal: the broker keeps trying and
     * /readyz says 503 until it is connected. */
    if (status == 0 && cfg->redis_enabled) {
        int rc = redis_broker_start(&srv->cfg, &srv->rooms, srv->fanout, &srv->broker);
        if (rc == -2) {
            status = 2; /* a TLS file that cannot be used: said already */
        } else if (rc < 0) {
            log_error("cannot start the Redis broker");
            status = 1;
        }
    }
    struct worker_env wenv = {.cfg = &srv->cfg,
                              .broker = &srv->broker,
                              .fanout = srv->fanout,
                              .rooms = &srv->rooms,
                              .ip_counts = &srv->ip_counts,
                              .counters = srv->counters,
                              .shutting_down = &srv->shutting_down,
                              .workers_ended = &srv->workers_ended};
    for (unsigned i = 0; status == 0 && i < srv->nworkers; i++) {
        srv->workers[i] = worker_create(&wenv, i);
        if (!srv->workers[i] || worker_start(srv->workers[i]) < 0) {
            log_error("cannot start worker %u", i);
            status = 1;
        }
    }
    if (status == 0 && acceptor_start(srv->acceptor) < 0) {
        log_error("cannot start the acceptor thread");
        status = 1;
    }
    return status;
}

/* Waits for SIGTERM or SIGINT (reloading the keys on SIGHUP), then shuts
 * down within SHUTDOWN_TIMEOUT; a second signal exits at once. */
static void serve_until_signalled(struct server *srv, sigset_t *set)
{
    const struct config *cfg = &srv->cfg;
    int sig = 0;
    while (sigwait(set, &sig) == 0 && sig == SIGHUP)
        reload_keys(srv);
    uint64_t deadline = clock_now_ms() + cfg->shutdown_timeout_ms;
    log_info("received %s: closing connections (up to %ums); send it again to exit at once",
             sig == SIGINT ? "SIGINT" : "SIGTERM", cfg->shutdown_timeout_ms);
    /* Only this thread unblocks them, so the handler runs here. SIGHUP
     * stays blocked: nothing is reloaded during a shutdown. */
    sigdelset(set, SIGHUP);
    struct sigaction sa = {.sa_handler = on_second_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_sigmask(SIG_UNBLOCK, set, NULL);

    stop_workers(srv);
    /* The broker gets what is left of SHUTDOWN_TIMEOUT, and at least a
     * moment, to publish what this pod's clients sent last. */
    uint64_t now = clock_now_ms();
    teardown(srv, deadline > now + 200 ? deadline : now + 200);
}

int server_run(const struct config *cfg)
{
    struct server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return 1;
    srv->cfg = *cfg;
    srv->started_ms = clock_now_ms();
    srv->nworkers = cfg->workers;
    srv->broker = (struct broker){.mode = "standalone",
                                  .publish = standalone_publish,
                                  .status = standalone_status,
                                  .stop = standalone_stop};
    log_config(cfg);

    /* Threads inherit this mask: only sigwait sees these signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    srv->counters = aligned_alloc(64, srv->nworkers * sizeof(*srv->counters));
    srv->fanout = fanout_create(srv->nworkers);
    if (!srv->workers || !srv->counters || !srv->fanout || registry_init(&srv->rooms) < 0 ||
        ip_counts_init(&srv->ip_counts) < 0 || pthread_mutex_init(&srv->keys_lock, NULL) != 0) {
        log_error("out of memory at startup");
        fanout_destroy(srv->fanout);
        free(srv->workers);
        free(srv->counters);
        free(srv);
        return 1;
    }
    memset(srv->counters, 0, srv->nworkers * sizeof(*srv->counters));

    int status = start_threads(srv);
    if (status != 0) {
        /* Workers that did start end once told to shut down. */
        atomic_store(&srv->shutting_down, 1);
        fanout_kick_all(srv->fanout);
        teardown(srv, clock_now_ms());
        free(srv);
        return status;
    }
    const char *host = strcmp(cfg->bind_addr, "0.0.0.0") == 0 || strcmp(cfg->bind_addr, "::") == 0
                           ? "localhost"
                           : cfg->bind_addr;
    log_info("listening; demo page: http://%s:%u/  websocket: ws://%s:%u/api/chat-api/ws/lobby",
             host, cfg->port, host, cfg->port);
    serve_until_signalled(srv, &set);
    free(srv);
    log_info("stopped");
    return 0;
}
