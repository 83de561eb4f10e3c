/* ring.c: the rings' growth rule (ring.h). */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

bool ring_resize(void *slots, size_t elem, uint32_t *head, uint32_t n, uint32_t *cap,
                 uint32_t newcap)
{
    unsigned char *v = malloc((size_t)newcap * elem), *old;
    if (!v)
        return false;
    memcpy(&old, slots, sizeof(old)); /* the owner's pointer, whatever its element type */
    uint32_t first = *cap - *head < n ? *cap - *head : n; /* up to the end of the old slots */
    if (n) {
        memcpy(v, old + (size_t)*head * elem, (size_t)first * elem);
        memcpy(v + (size_t)first * elem, old, (size_t)(n - first) * elem);
    }
    free(old);
    memcpy(slots, &v, sizeof(v));
    *head = 0;
    *cap = newcap;
    return true;
}

enum ring_room ring_make_room(void *slots, size_t elem, uint32_t *head, uint32_t n, uint32_t *cap,
                              uint32_t first, uint32_t max, enum ring_policy policy)
{
    if (policy == RING_GROW)
        max = UINT32_MAX;
    if (n < *cap)
        return RING_ROOM;
    if (n < max && ring_resize(slots, elem, head, n, cap, ring_next_cap(*cap, first, max)))
        return RING_ROOM;
    return policy == RING_DROP_OLDEST && n > 0 ? RING_DROP : RING_FULL;
}
