/* common.h: the few small things several modules need, written once:
 * container_of, a fast non-secret random number generator, and giving freed
 * memory back to the kernel. Pure; no state of its own. */
#ifndef CHAT_COMMON_H
#define CHAT_COMMON_H

#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>

/* The struct of type that embeds *p as member. */
#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* Seeds an xorshift64* state from the kernel (fallback: a constant mixed
 * with salt). */
static inline void rng_seed(uint64_t *state, uint64_t salt)
{
    if (getrandom(state, sizeof(*state), 0) != sizeof(*state) || *state == 0)
        *state = 0x9e3779b97f4a7c15ull ^ salt;
}

/* xorshift64*: ids and UUIDs need to be unique, not secret. The state is
 * its owner's (one per thread). */
static inline uint64_t rng_next(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

/* Hands freed pages back to the kernel. Under a sanitizer the allocator is
 * the sanitizer's own, and glibc's arenas must not be touched: trimming them
 * from a thread that never used them breaks glibc's count of arena users
 * (an assertion at thread exit). */
static inline void give_back_memory(void)
{
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    malloc_trim(0);
#endif
}

#endif
