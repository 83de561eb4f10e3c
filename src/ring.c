/* ring.c: the rings' growth rule (ring.h). */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

void *ring_relayout(const void *slots, size_t elem, uint32_t head, uint32_t n, uint32_t cap,
                    uint32_t newcap)
{
    unsigned char *v = malloc((size_t)newcap * elem);
    if (!v || n == 0)
        return v;
    const unsigned char *s = slots;
    uint32_t first = cap - head < n ? cap - head : n; /* up to the end of the old slots */
    memcpy(v, s + (size_t)head * elem, (size_t)first * elem);
    memcpy(v + (size_t)first * elem, s, (size_t)(n - first) * elem);
    return v;
}
