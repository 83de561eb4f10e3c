/* thread.h: starting and joining the server's threads, one way for all
 * (the acceptor, each worker, the Redis publisher and subscriber). The
 * struct belongs to the thread that starts and joins it (the main thread). */
#ifndef CHAT_THREAD_H
#define CHAT_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct thread {
    pthread_t id;
    bool started;
};

/* Returns 0 or -errno (nothing started). */
static inline int thread_start(struct thread *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(&t->id, NULL, fn, arg);
    if (rc != 0)
        return -rc;
    t->started = true;
    return 0;
}

/* Waits for a started thread to end; does nothing for one never started.
 * A join that fails means the program's own bookkeeping is wrong: abort. */
static inline void thread_join(struct thread *t)
{
    if (t->started && pthread_join(t->id, NULL) != 0)
        abort();
    t->started = false;
}

#endif
