/* collide.h: room names a client could pick against an unkeyed table:
 * their FNV-1a (the hash the tables used before hmap.h) agrees in its low
 * 12 bits, so they would all share one bucket of any table of up to 4,096
 * buckets. For the tests that show the keyed map spreads them. */
#ifndef CHAT_TEST_COLLIDE_H
#define CHAT_TEST_COLLIDE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static inline uint32_t collide_fnv1a(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Fills names[0..n) (each at most 31 bytes and a NUL). */
static inline void collide_names(char (*names)[32], int n)
{
    char name[32];
    uint32_t target = collide_fnv1a("x0", 2) & 0xfff;
    int found = 0;
    for (unsigned i = 0; found < n; i++) {
        int len = snprintf(name, sizeof(name), "x%u", i);
        if ((collide_fnv1a(name, (size_t)len) & 0xfff) == target)
            memcpy(names[found++], name, (size_t)len + 1);
    }
}

#endif
