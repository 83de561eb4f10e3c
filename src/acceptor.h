/* acceptor.h: the thread that owns the listening socket.
 *
 * DESIGN: the acceptor reads request heads without ever blocking (its own
 * epoll, an 8 KiB limit, a 10 s deadline per client), answers plain HTTP
 * itself, checks upgrades, writes the 101 answer and hands the socket to
 * the least-loaded worker's inbox. A slow or hostile client costs it one
 * small buffer and never holds anyone else up. */
#ifndef CHAT_ACCEPTOR_H
#define CHAT_ACCEPTOR_H

struct server;
struct acceptor;

/* Binds and listens on BIND_ADDR:PORT. Returns NULL (after logging why)
 * when the address cannot be used. Main thread. */
struct acceptor *acceptor_create(struct server *srv);

/* Starts the thread. Returns 0 or -errno. */
int acceptor_start(struct acceptor *a);

/* Stops the thread and waits for it; pending clients are dropped. */
void acceptor_stop(struct acceptor *a);

/* Frees the acceptor and closes the listening socket. */
void acceptor_destroy(struct acceptor *a);

#endif
