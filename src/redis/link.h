/* link.h: one non-blocking connection to one Redis node.
 *
 * DESIGN: a link is a state machine driven by its owner thread's epoll:
 * the host name looked up off the thread when it is not an address
 * (resolve.h), connect (non-blocking, each address in turn, starting from
 * the one that answered last), TLS handshake when the URL is rediss://, then the
 * hello (AUTH with REDIS_URL's user and password, SELECT, PING) pipelined
 * and checked, then ready. hiredis is only the codec: commands are
 * formatted with redisFormatCommandArgv into the link's output buffer and
 * what arrives is fed to a redisReader; the socket, TLS and all timing are
 * ours, so nothing ever blocks on a node: a node that hangs is noticed by
 * its owner through the link's deadlines and costs only its own link.
 * Each link has its own backoff: a node that keeps failing is tried ever
 * more slowly (100 ms to 5 s, jittered), and one that hung is marked sick
 * for a while so that slot-map fetches skip it.
 *
 * Owner: exactly one thread (the publisher or the subscriber) uses a link;
 * nothing here locks. */
#ifndef CHAT_REDIS_LINK_H
#define CHAT_REDIS_LINK_H

#include <hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "redis/backoff.h"
#include "redis/resolve.h"

struct ssl_ctx_st;
struct ssl_st;

/* A node's connection has this long to be ready (connect, TLS, hello),
 * counted from the connect; each of a name's addresses gets as long. */
#define REDIS_LINK_CONNECT_MS 1000
/* A host name's lookup has this long (off the owner thread: resolve.h). */
#define REDIS_LINK_RESOLVE_MS 5000
/* A command without an answer for this long means the node hangs. */
#define REDIS_LINK_COMMAND_MS 3000
/* A node that hung is skipped by slot-map fetches for this long. */
#define REDIS_LINK_SICK_MS 10000

struct redis_link_env; /* what every link of a broker shares (link_internal.h) */
struct redis_link; /* its fields: link_internal.h (link.c, route.c and nodes.c only) */

/* Sets up a link that is down. Returns 0 or -1 (out of memory). */
int redis_link_init(struct redis_link *l, const char *host, uint16_t port,
                    const struct redis_link_env *env, loop_fn *on_io);
void redis_link_free(struct redis_link *l);

/* Starts connecting. Returns false (why in l->err, link down, retry set)
 * when it cannot even start. */
bool redis_link_open(struct redis_link *l, uint64_t now);

/* Handles epoll events, reading at most one chunk (16 KiB). Returns false
 * when the link failed (why in l->err): the caller takes back what it had
 * in flight and calls redis_link_close. Sets *became_ready when the hello
 * just completed. While l->more, the caller takes the replies and calls it
 * again with EPOLLIN (the publisher's and subscriber's read loops do both). */
bool redis_link_io(struct redis_link *l, uint32_t events, uint64_t now, bool *became_ready);

/* The next reply, once ready: 1 with *r (the caller frees it), 0 when none
 * is complete, -1 when the stream is broken. */
int redis_link_reply(struct redis_link *l, redisReply **r);

/* Whether to read again (with EPOLLIN) after reads chunks for one event. */
bool redis_link_again(const struct redis_link *l, unsigned reads);

/* Queues a command; it is written by redis_link_flush (or at once when
 * much is queued already). Returns false when the link failed (why in
 * l->err). */
bool redis_link_send(struct redis_link *l, int argc, const char **argv, const size_t *argvlen);

/* Writes what the socket takes of the queued commands (the rest when epoll
 * says it can). Returns false when the link failed. */
bool redis_link_flush(struct redis_link *l);

/* Closes the socket; the link may be opened again at retry_at_ms (its
 * backoff's next step). hung: it failed by not answering; it is marked
 * sick. */
void redis_link_close(struct redis_link *l, uint64_t now, bool hung);

/* A deadline passed while connecting, nothing answered for
 * REDIS_LINK_COMMAND_MS since owed_since (the time from which its owner
 * awaits an answer; 0: none), or a reply has been unfinished that long (true,
 * why in the link's err): a node that trickles a reply for ever hangs as
 * surely as one that is silent. */
bool redis_link_late(struct redis_link *l, uint64_t owed_since, uint64_t now);

/* Redis did real work on it: its backoff starts over. */
void redis_link_worked(struct redis_link *l);

/* Whether it is marked as hanging at now. */
bool redis_link_sick(const struct redis_link *l, uint64_t now);

#endif
