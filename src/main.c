/* main.c: configuration from the environment, then the server's lifecycle. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "hmap.h"
#include "log.h"
#include "server.h"
#include "stats.h"

/* For *_FILE variables: the whole file, or -errno. */
static long read_whole_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    return (long)n;
}

static const char *env_lookup(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

/* `chat-api --settings` and `chat-api --counters` print the tables the docs
 * are checked against (tests/e2e/test_docs.py); anything else is refused. */
static int print_table(const char *what)
{
    if (!strcmp(what, "--settings"))
        config_print_table(stdout);
    else if (!strcmp(what, "--counters"))
        stats_print_table(stdout);
    else {
        fprintf(stderr, "usage: chat-api [--settings | --counters]\n"
                        "  (configuration is read from the environment: docs/configuration.md)\n");
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return print_table(argv[1]);
    struct config_defaults d = {.read_file = read_whole_file};
    char host[256] = "";
    struct rlimit rl;
    if (gethostname(host, sizeof(host) - 1) == 0)
        d.hostname = host;
    if (getrandom(&d.random, sizeof(d.random), 0) != sizeof(d.random))
        d.random = (uint32_t)getpid();
    /* The tables' hash key, before any thread: names chosen by clients
     * cannot be made to collide without it (hmap.h). */
    if (hmap_random_key() < 0)
        fprintf(stderr, "chat-api: no randomness for the tables' hash key; using a fixed one\n");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    d.cpus = cpus > 0 ? (unsigned)cpus : 1;
    /* A server of many connections takes every descriptor it is allowed:
     * the soft limit goes up to the hard one (as nginx and Go do). */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    d.nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 1024;

    struct config cfg;
    char err[256];
    if (config_load(&cfg, env_lookup, NULL, &d, err, sizeof(err)) < 0) {
        fprintf(stderr, "chat-api: configuration error: %s\n", err);
        return 2;
    }
    log_set_level(cfg.log_level);
    int status = server_run(&cfg);
    config_free(&cfg);
    return status;
}
