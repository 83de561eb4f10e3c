/* inbox.c: mutex-and-swap batches with one eventfd write per batch. */
#include "inbox.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Slots an inbox array keeps when it shrinks after a burst. */
#define INBOX_KEEP 256

int inbox_init(struct inbox *ib)
{
    *ib = (struct inbox){0};
    ib->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ib->efd < 0)
        return -errno;
    int rc = pthread_mutex_init(&ib->lock, NULL);
    if (rc != 0) {
        close(ib->efd);
        return -rc;
    }
    return 0;
}

void inbox_destroy(struct inbox *ib)
{
    pthread_mutex_destroy(&ib->lock);
    close(ib->efd);
    free(ib->items);
    free(ib->batch);
    ib->items = ib->batch = NULL;
}

int inbox_push(struct inbox *ib, struct inbox_item item)
{
    bool wake = false;
    if (pthread_mutex_lock(&ib->lock) != 0)
        abort();
    if (ib->len == ib->cap) {
        size_t cap = ib->cap ? ib->cap * 2 : 64;
        struct inbox_item *grown = realloc(ib->items, cap * sizeof(*grown));
        if (!grown) {
            pthread_mutex_unlock(&ib->lock);
            return -ENOMEM;
        }
        ib->items = grown;
        ib->cap = cap;
    }
    ib->items[ib->len++] = item;
    if (!ib->signalled) {
        ib->signalled = true;
        wake = true;
    }
    pthread_mutex_unlock(&ib->lock);
    if (wake)
        inbox_wake(ib);
    return 0;
}

void inbox_wake(struct inbox *ib)
{
    uint64_t one = 1;
    /* Cannot fail short of a counter overflow: the consumer reads the
     * counter back to zero on every take. */
    ssize_t w = write(ib->efd, &one, sizeof(one));
    (void)w;
}

size_t inbox_take(struct inbox *ib, struct inbox_item **items)
{
    uint64_t count;
    ssize_t r = read(ib->efd, &count, sizeof(count));
    (void)r;
    if (pthread_mutex_lock(&ib->lock) != 0)
        abort();
    struct inbox_item *full = ib->items;
    size_t n = ib->len, cap = ib->cap;
    ib->items = ib->batch;
    ib->cap = ib->batch_cap;
    ib->len = 0;
    ib->signalled = false;
    pthread_mutex_unlock(&ib->lock);
    /* An array that grew under a burst is given back once the burst has
     * passed, so a flood leaves no lasting footprint. */
    if (cap > INBOX_KEEP && n < cap / 8) {
        struct inbox_item *smaller = realloc(full, (n > INBOX_KEEP ? n : INBOX_KEEP) * sizeof(*full));
        if (smaller) {
            full = smaller;
            cap = n > INBOX_KEEP ? n : INBOX_KEEP;
        }
    }
    ib->batch = full;
    ib->batch_cap = cap;
    *items = full;
    return n;
}
