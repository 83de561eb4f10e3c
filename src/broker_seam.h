/* broker_seam.h: the seam between the workers and whatever carries messages to
 * other pods. Standalone mode publishes nowhere (server.c); the Redis
 * broker publishes (redis/broker.h).
 *
 * Owner: the main thread fills it at start and stops it; workers call
 * publish, any thread calls status. */
#ifndef CHAT_BROKER_SEAM_H
#define CHAT_BROKER_SEAM_H

#include <stdint.h>

struct broker_status;
struct fbuf;

struct broker {
    const char *mode;
    void *impl;
    /* Called by workers with each message they accepted. Takes its own
     * reference of msg if it keeps it; never blocks. */
    void (*publish)(struct broker *b, struct fbuf *msg);
    /* Fills what stats and /readyz show. Any thread. */
    void (*status)(struct broker *b, struct broker_status *out);
    /* Stops the broker's threads, giving what waits for other pods until
     * deadline_ms (monotonic) to go out. Main thread. */
    void (*stop)(struct broker *b, uint64_t deadline_ms);
};

#endif
