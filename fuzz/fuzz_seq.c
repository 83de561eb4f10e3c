/* fuzz_seq.c: the numbering reader (envelope_numbering) never crashes, never reads outside its
 * input, finds exactly what envelope_number wrote, and cuts the numbering
 * off where it starts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "room/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct envelope_numbering t;
    if (envelope_numbering(s, size, &t)) {
        if (t.pod < s || t.pod + t.pod_len > s + size || t.pod_len == 0)
            abort();
        if (memchr(t.pod, '"', t.pod_len) || memchr(t.pod, '\\', t.pod_len))
            abort();
        /* What clients get ends where the numbering starts, after the pod. */
        if (t.body_len == 0 || t.body_len >= size || t.pod + t.pod_len + 1 != s + t.body_len)
            abort();
    }
    /* Whatever an object ends with, appending a tail makes one that parses
     * back to the numbers appended. */
    static char out[1 << 17];
    uint64_t seq = size, epoch = size ? data[0] : 7;
    size_t n = envelope_number(s, size, seq, epoch, out, sizeof(out));
    if (n && envelope_numbering(out, n, &t) &&
        (t.seq != seq || t.epoch != epoch || t.body_len != size - 1))
        abort();
    return 0;
}
