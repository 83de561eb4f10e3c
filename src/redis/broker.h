/* broker.h: the Redis broker, which carries messages between pods.
 *
 * DESIGN: two threads, each with its own hiredis connection.
 * - The publisher takes messages from the outbox (filled by workers through
 *   broker->publish, which never waits on Redis) and PUBLISHes them in
 *   pipelined batches, in order. Messages it could not get confirmed go back
 *   to the front of the outbox and are sent again after a reconnect.
 * - The subscriber listens on realtime:global and on the channel of each
 *   room this pod hosts (SUBSCRIBE on a room's first member, UNSUBSCRIBE
 *   after ROOM_LINGER without one; the room registry keeps the states and
 *   holds a joining client's welcome until Redis confirms), drops
 *   this pod's own messages and anything that is not a JSON object or is
 *   over the outgoing bound, and posts the rest, framed once, to the
 *   workers through the fanout (fanout.h). What the workers have no room
 *   for is dropped and counted: the subscriber never waits for them.
 * Both reconnect on their own with jittered exponential backoff (100 ms to
 * 5 s). The broker counts as connected while the publisher is connected and
 * the subscriber is subscribed; /readyz follows that. */
#ifndef CHAT_REDIS_BROKER_H
#define CHAT_REDIS_BROKER_H

struct server;
struct broker;

/* Fills srv->broker with the Redis broker and starts its threads. Returns
 * 0, or -1 when it could not start (out of memory, no threads). Redis being
 * unreachable is not an error: the broker keeps trying. Main thread. */
int redis_broker_start(struct server *srv, struct broker *b);

#endif
