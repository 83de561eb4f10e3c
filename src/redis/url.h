/* url.h: parsing REDIS_URL, redis://[[user]:password@]host[:port][/db]
 * (rediss:// for TLS). Pure.
 * A Redis Cluster's seed nodes are comma-separated hosts:
 * redis://[[user]:password@]h1:7000,h2:7001 (user and password apply to all). */
#ifndef CHAT_REDIS_URL_H
#define CHAT_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REDIS_URL_SEEDS_MAX 16

struct redis_seed {
    char host[256]; /* a name or an address; IPv6 without its brackets */
    uint16_t port;  /* 6379 when not given */
};

struct redis_url {
    char host[256];     /* the first host: a name or an address; IPv6 without its brackets */
    uint16_t port;      /* its port, 6379 when not given */
    struct redis_seed seeds[REDIS_URL_SEEDS_MAX]; /* every host given, the first one included */
    unsigned nseeds;
    char user[128];     /* empty: none (AUTH with the password alone) */
    char password[256]; /* empty: no AUTH */
    int db;             /* SELECT this when not 0 */
    bool tls;           /* rediss:// */
};

/* Parses s. Returns 0, or -1 with a sentence in err (errlen bytes) saying
 * what is wrong, for a startup error that names REDIS_URL. Any thread. */
int redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen);

#endif
