/* fuzz_frame.c: the frame parser fed in small chunks must give exactly the
 * events it gives when fed the whole input at once, and never crash. The
 * first byte of the input picks the chunk sizes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/frame.h"

#define MAX_EVENTS 256

struct digest {
    size_t n;
    uint32_t type[MAX_EVENTS];
    uint32_t sum[MAX_EVENTS];
    size_t len[MAX_EVENTS];
};

static uint32_t fnv(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void run(const uint8_t *in, size_t len, size_t chunk_seed, struct digest *d)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    struct ws_frame_parser p;
    ws_frame_parser_init(&p, WS_ROLE_SERVER, 4096);
    size_t off = 0, k = chunk_seed;
    d->n = 0;
    int stop = 0;
    while (off < len && !stop) {
        size_t step = chunk_seed ? 1 + (k % 7) : len - off;
        k = k * 31 + 7;
        if (step > len - off)
            step = len - off;
        size_t end = off + step;
        while (off < end) {
            struct ws_event ev;
            off += ws_frame_parse(&p, copy + off, end - off, &ev);
            if (ev.type == WS_EV_NONE)
                break;
            if (d->n < MAX_EVENTS) {
                d->type[d->n] = ev.type * 65536u + ev.close_code + (uint32_t)(ev.err + 16) * 256u;
                d->sum[d->n] = fnv(ev.data, ev.len);
                d->len[d->n] = ev.len;
                d->n++;
            }
            if (ev.type == WS_EV_ERROR) {
                stop = 1;
                break;
            }
        }
    }
    ws_frame_parser_free(&p);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static struct digest whole, pieces;
    run(data + 1, size - 1, 0, &whole);
    run(data + 1, size - 1, (size_t)data[0] + 1, &pieces);
    if (whole.n != pieces.n)
        abort();
    for (size_t i = 0; i < whole.n; i++)
        if (whole.type[i] != pieces.type[i] || whole.sum[i] != pieces.sum[i] ||
            whole.len[i] != pieces.len[i])
            abort();
    return 0;
}
