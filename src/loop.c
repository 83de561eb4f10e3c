/* loop.c: the one event loop (loop.h). */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"

#define LOOP_WAIT_MAX_MS 10000

int loop_init(struct loop *l)
{
    l->now = clock_now_ms();
    l->ready = 0;
    l->evs = malloc(LOOP_EVENTS * sizeof(*l->evs));
    l->epfd = l->evs ? epoll_create1(EPOLL_CLOEXEC) : -1;
    return l->epfd < 0 ? -1 : 0;
}

void loop_free(struct loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    l->epfd = -1;
    free(l->evs);
    l->evs = NULL;
}

int loop_add(struct loop *l, int fd, struct loop_handler *h, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = h};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int loop_mod(struct loop *l, int fd, struct loop_handler *h, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = h};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void loop_del(struct loop *l, int fd)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int loop_wait(struct loop *l, uint64_t deadline_ms)
{
    uint64_t now = clock_now_ms();
    uint64_t wait = deadline_ms > now ? deadline_ms - now : 0;
    if (wait > LOOP_WAIT_MAX_MS)
        wait = LOOP_WAIT_MAX_MS;
    int n = epoll_wait(l->epfd, l->evs, LOOP_EVENTS, (int)wait);
    l->now = clock_now_ms();
    l->ready = n > 0 ? n : 0;
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    return n;
}

void loop_dispatch(struct loop *l)
{
    int n = l->ready;
    l->ready = 0;
    for (int i = 0; i < n; i++) {
        struct loop_handler *h = l->evs[i].data.ptr;
        h->fn(l, h, l->evs[i].events);
    }
}

void loop_eventfd_clear(int fd)
{
    uint64_t v;
    ssize_t rd = read(fd, &v, sizeof(v));
    (void)rd;
}

int loop_run_once(struct loop *l, uint64_t deadline_ms)
{
    int n = loop_wait(l, deadline_ms);
    loop_dispatch(l);
    return n;
}
