/* slow_resolver.c: an LD_PRELOAD shim over getaddrinfo for the tests of
 * name resolution (tests/e2e/test_resolve.py). A lookup of the name in
 * SLOW_RESOLVER_NAME takes SLOW_RESOLVER_MS milliseconds and answers
 * 127.0.0.1; every other lookup goes to the real getaddrinfo. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    const char *name = getenv("SLOW_RESOLVER_NAME");
    if (node && name && strcmp(node, name) == 0) {
        const char *ms_s = getenv("SLOW_RESOLVER_MS");
        long ms = ms_s ? atol(ms_s) : 0;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
        node = "127.0.0.1";
    }
    return real(node, service, hints, res);
}
