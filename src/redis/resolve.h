/* resolve.h: a Redis node's host name, resolved off the broker threads.
 *
 * DESIGN: getaddrinfo may wait on DNS for seconds, and a link's owner (the
 * publisher or the subscriber thread) carries every node's traffic: it must
 * never wait. A name is looked up on a short-lived thread of its own; the
 * owner watches the lookup's eventfd in its epoll and takes the addresses
 * when it becomes readable. The lookup is shared by the two, reference
 * counted: whichever lets go last frees it and closes the eventfd, so an
 * owner that gives up (a deadline, a shutdown) never waits for the lookup,
 * and a lookup never writes to a descriptor that was closed and reused.
 * A numeric address is parsed at once, with no thread. What a lookup found
 * is kept REDIS_RESOLVE_KEEP_MS for every link of the process (a sentinel
 * polled every second is not looked up every second), and forgotten at
 * once when none of its addresses answers.
 *
 * Owner: a lookup's result is the lookup thread's until `done` is set, then
 * the owner thread's; the rest is the owner's. */
#ifndef CHAT_REDIS_RESOLVE_H
#define CHAT_REDIS_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A name's addresses are used this long before it is looked up again. */
#define REDIS_RESOLVE_KEEP_MS 30000
/* At most this many addresses of one name are tried. */
#define REDIS_RESOLVE_ADDRS 8

/* A name's addresses, in the order getaddrinfo gave them. */
struct redis_addrs {
    struct sockaddr_storage addr[REDIS_RESOLVE_ADDRS];
    socklen_t len[REDIS_RESOLVE_ADDRS];
    unsigned n;
};

struct redis_lookup;

/* Fills *out with what a lookup of host found less than
 * REDIS_RESOLVE_KEEP_MS ago. Any thread. */
bool redis_resolve_kept(const char *host, uint16_t port, uint64_t now, struct redis_addrs *out);

/* Forgets what was kept for host: none of its addresses answered. */
void redis_resolve_forget(const char *host, uint16_t port);

/* Fills *out when host is a numeric IPv4 or IPv6 address. */
bool redis_resolve_numeric(const char *host, uint16_t port, struct redis_addrs *out);

/* Starts looking host up. Returns NULL when no thread or descriptor could
 * be had. Any thread. */
struct redis_lookup *redis_lookup_start(const char *host, uint16_t port);

/* Whether the lookup is of host and port. */
bool redis_lookup_is(const struct redis_lookup *lk, const char *host, uint16_t port);

/* The eventfd that becomes readable when the lookup is done. */
int redis_lookup_fd(const struct redis_lookup *lk);

/* 1: done, the addresses in *out; 0: still running; -1: done and failed
 * (why in err). */
int redis_lookup_result(const struct redis_lookup *lk, struct redis_addrs *out, char *err,
                        size_t errlen);

/* Lets go of the lookup (running or done). */
void redis_lookup_drop(struct redis_lookup *lk);

#endif
