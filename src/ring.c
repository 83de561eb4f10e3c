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
