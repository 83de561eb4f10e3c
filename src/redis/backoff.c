/* backoff.c: jittered exponential backoff and episodes. */
#include "redis/backoff.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"

uint32_t redis_backoff_next(struct redis_backoff *bo)
{
    if (bo->next_ms == 0)
        bo->next_ms = REDIS_BACKOFF_MIN_MS;
    bo->rng ^= bo->rng << 13;
    bo->rng ^= bo->rng >> 7;
    bo->rng ^= bo->rng << 17;
    uint32_t d = bo->next_ms;
    uint32_t wait = d / 2 + (uint32_t)(bo->rng % (d / 2 + 1));
    bo->next_ms = d * 2 > bo->max_ms ? bo->max_ms : d * 2;
    return wait;
}

void redis_backoff_init(struct redis_backoff *bo)
{
    *bo = (struct redis_backoff){.max_ms = REDIS_BACKOFF_MAX_MS};
    if (getrandom(&bo->rng, sizeof(bo->rng), 0) != sizeof(bo->rng) || bo->rng == 0)
        bo->rng = 88172645463325252ull;
}

void redis_backoff_cap(struct redis_backoff *bo, uint32_t max_ms)
{
    bo->max_ms = max_ms < REDIS_BACKOFF_MIN_MS ? REDIS_BACKOFF_MIN_MS : max_ms;
    if (bo->next_ms > bo->max_ms)
        bo->next_ms = bo->max_ms;
}

bool redis_backoff_failing(const struct redis_backoff *bo)
{
    return bo->next_ms != 0;
}

void redis_backoff_reset(struct redis_backoff *bo)
{
    bo->next_ms = 0;
    bo->logged_step = 0;
    bo->last_err[0] = '\0';
}

void redis_backoff_log(struct redis_backoff *bo, const char *who, const char *err)
{
    if (strcmp(err, bo->last_err) != 0 || bo->logged_step != bo->next_ms) {
        log_warn("redis: %s: %s; retrying (backoff up to %u ms)", who, err,
                 bo->next_ms ? bo->next_ms : REDIS_BACKOFF_MIN_MS);
        snprintf(bo->last_err, sizeof(bo->last_err), "%s", err);
        bo->logged_step = bo->next_ms;
    } else {
        log_debug("redis: %s: %s", who, err);
    }
}

bool redis_episode_note(struct redis_episode *e, uint64_t now, uint64_t count_before)
{
    e->last_ms = now;
    if (e->since_ms)
        return false;
    e->since_ms = now;
    e->at_start = count_before;
    return true;
}

bool redis_episode_over(struct redis_episode *e, uint64_t now, double *seconds)
{
    if (!e->since_ms || now - e->last_ms < REDIS_EPISODE_QUIET_MS)
        return false;
    *seconds = (double)(e->last_ms - e->since_ms) / 1000.0;
    e->since_ms = 0;
    return true;
}
