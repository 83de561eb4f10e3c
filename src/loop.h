/* loop.h: the one event loop, in the manner of Redis' own (its "ae" library).
 *
 * DESIGN: a thread's descriptors are registered with a typed handler
 * embedded in what the descriptor belongs to (a connection, a Redis link,
 * an inbox); epoll hands the handler back and loop_run_once calls it with
 * the events, so no loop compares pointers or searches a list to find whose
 * event it is. One timer source: the loop's clock (now, monotonic ms,
 * read once per wake) and the deadline the owner gives each wait, its
 * earliest timer (a wheel tick, a link's deadline, a pending head's).
 *
 * Handlers may mark what they own as dead but must not free anything that
 * a later event of the same batch may name: owners free between batches
 * (nginx's stale-event rule).
 *
 * Owner: one thread per loop; nothing here locks. */
#ifndef CHAT_LOOP_H
#define CHAT_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct loop_handler;

typedef void loop_fn(struct loop *l, struct loop_handler *h, uint32_t events);

/* Embedded in what a descriptor belongs to; the handler finds its owner
 * with container_of (common.h), and the loop's owner from l the same way. */
struct loop_handler {
    loop_fn *fn;
};

#define LOOP_EVENTS 256

struct loop {
    int epfd;
    uint64_t now; /* monotonic ms, read when the last wait returned */
    int ready;    /* events the last wait returned, not yet dispatched */
    struct epoll_event *evs; /* LOOP_EVENTS of them */
};

/* Returns 0, or -1 with errno. */
int loop_init(struct loop *l);
void loop_free(struct loop *l);

/* Watches fd for events (EPOLLIN, EPOLLOUT...), calling h. Returns 0 or -1. */
int loop_add(struct loop *l, int fd, struct loop_handler *h, uint32_t events);
/* Changes what fd is watched for (0: nothing but errors and hangups). */
int loop_mod(struct loop *l, int fd, struct loop_handler *h, uint32_t events);
/* Stops watching fd (closing it does too). */
void loop_del(struct loop *l, int fd);

/* Waits until a descriptor is ready or the deadline (monotonic ms; at most
 * 10 s ahead is waited, 0 or a past one: no wait) and sets now. Returns how
 * many are ready, or -1 (errno) when the wait itself failed (EINTR is 0). */
int loop_wait(struct loop *l, uint64_t deadline_ms);
/* Calls the handler of each descriptor the last wait found ready. */
void loop_dispatch(struct loop *l);
/* Empties an eventfd that woke the loop. */
void loop_eventfd_clear(int fd);

/* Both: a wait, then its handlers. */
int loop_run_once(struct loop *l, uint64_t deadline_ms);

#endif
