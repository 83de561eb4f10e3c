/* backoff.h: how the Redis engine waits and what it says about it. Pure.
 *
 * A backoff is a jittered exponential wait: a random wait in [d/2, d], then
 * d doubles, from 100 ms up to 5 s. It goes back to the start only when
 * Redis did real work for us (a PUBLISH or a subscription confirmed), never
 * on a mere TCP connect or AUTH: a Redis that accepts connections and
 * refuses everything is tried ever more slowly. The same failure is logged
 * once per step, not once per try.
 *
 * An episode is something that goes on for a while (drops under overload,
 * losses): one log line when it starts, one when it has been quiet for a
 * second.
 *
 * Owner: each backoff and episode belongs to the thread that uses it. */
#ifndef CHAT_REDIS_BACKOFF_H
#define CHAT_REDIS_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 5000
/* An episode ends after this long without news. */
#define REDIS_EPISODE_QUIET_MS 1000

struct redis_backoff {
    uint32_t next_ms;
    uint32_t max_ms;      /* the longest wait: REDIS_BACKOFF_MAX_MS unless capped */
    uint32_t logged_step; /* next_ms when last_err was logged */
    uint64_t rng;
    char last_err[600];
};

void redis_backoff_init(struct redis_backoff *bo);
/* The wait before the next try. */
uint32_t redis_backoff_next(struct redis_backoff *bo);
/* Caps the wait at max_ms (at least REDIS_BACKOFF_MIN_MS). */
void redis_backoff_cap(struct redis_backoff *bo, uint32_t max_ms);
/* Whether a try failed since Redis last did real work. */
bool redis_backoff_failing(const struct redis_backoff *bo);
/* Redis did real work: the next failure starts from the shortest wait. */
void redis_backoff_reset(struct redis_backoff *bo);
/* Logs why a try failed, at warn the first time and whenever the failure
 * changes or the backoff has moved to a longer step; at debug otherwise. */
void redis_backoff_log(struct redis_backoff *bo, const char *who, const char *err);

struct redis_episode {
    uint64_t since_ms, last_ms, at_start;
};

/* Notes one event; returns true when it starts an episode. */
bool redis_episode_note(struct redis_episode *e, uint64_t now, uint64_t count_before);
/* Returns true (once) when the episode under way has been quiet long
 * enough, with how long it lasted in *seconds. */
bool redis_episode_over(struct redis_episode *e, uint64_t now, double *seconds);

#endif
