/* broker.h: the Redis broker, which carries messages between pods.
 *
 * DESIGN: two threads, each with its own epoll and its own link to every
 * Redis node it needs (link.h), its own slot map (route.h), one loop for
 * single Redis, Sentinel and Redis Cluster:
 * - the publisher (publisher.c) takes messages from the outbox (filled by
 *   workers through broker->publish, which never waits on Redis) and
 *   publishes each on the node serving its channel, pipelined and in order;
 *   what a node did not confirm waits for that node alone;
 * - the subscriber (subscriber.c) subscribes realtime:global and the
 *   channel of each room this pod hosts (the room registry keeps the states
 *   and holds a joining client's welcome until Redis confirms), and hands
 *   what arrives to receive.c, which checks it and posts it, framed once,
 *   to the workers through the fanout.
 * A node that hangs, dies or refuses costs only the rooms it serves. The
 * broker counts as connected while the publisher's link to the node that
 * carries realtime:global is ready and the subscriber has realtime:global
 * confirmed; /readyz follows that. */
#ifndef CHAT_REDIS_BROKER_H
#define CHAT_REDIS_BROKER_H

struct broker;
struct config;
struct fanout;
struct room_registry;

/* Fills b with the Redis broker and starts its threads; it keeps cfg,
 * rooms and fanout, which must outlive it. Returns
 * 0, -2 when a REDIS_TLS_* file cannot be used (logged with the variable's
 * name: a configuration error), or -1 when it could not start (out of
 * memory, no threads). Redis being unreachable is not an error: the broker
 * keeps trying. Main thread. */
int redis_broker_start(const struct config *cfg, struct room_registry *rooms,
                       struct fanout *fanout, struct broker *b);

#endif
