/* utf8.c: incremental UTF-8 validation.
 *
 * The state packs what the next byte must be: bits 16-17 hold how many
 * continuation bytes are still due, bits 8-15 and 0-7 the lowest and highest
 * value the next one may take. Narrowing the range of the first continuation
 * byte is what rejects overlong forms (E0 80..9F, F0 80..8F), surrogates
 * (ED A0..BF) and code points above U+10FFFF (F4 90..BF) at the earliest byte. */
#include "ws/utf8.h"

#include <string.h>

#define NEED_SHIFT 16
#define LO_SHIFT 8

static uint32_t pack(uint32_t need, uint32_t lo, uint32_t hi)
{
    return (need << NEED_SHIFT) | (lo << LO_SHIFT) | hi;
}

/* The state after a lead byte, or 0xffffffff for a byte that cannot lead. */
static uint32_t after_lead(uint8_t b)
{
    if (b >= 0xC2 && b <= 0xDF)
        return pack(1, 0x80, 0xBF);
    if (b == 0xE0)
        return pack(2, 0xA0, 0xBF);
    if (b == 0xED)
        return pack(2, 0x80, 0x9F);
    if (b >= 0xE1 && b <= 0xEF)
        return pack(2, 0x80, 0xBF);
    if (b == 0xF0)
        return pack(3, 0x90, 0xBF);
    if (b >= 0xF1 && b <= 0xF3)
        return pack(3, 0x80, 0xBF);
    if (b == 0xF4)
        return pack(3, 0x80, 0x8F);
    return 0xffffffffu;
}

int ws_utf8_feed(uint32_t *state, const uint8_t *s, size_t n)
{
    uint32_t st = *state;
    size_t i = 0;

    while (i < n) {
        if (st == WS_UTF8_ACCEPT) {
            /* Text is mostly ASCII: skip it eight bytes at a time. */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            uint8_t b = s[i++];
            if (b < 0x80)
                continue;
            st = after_lead(b);
            if (st == 0xffffffffu)
                return -1;
            continue;
        }
        uint8_t b = s[i++];
        uint32_t lo = (st >> LO_SHIFT) & 0xff, hi = st & 0xff;
        if (b < lo || b > hi)
            return -1;
        uint32_t need = (st >> NEED_SHIFT) - 1;
        st = need ? pack(need, 0x80, 0xBF) : WS_UTF8_ACCEPT;
    }
    *state = st;
    return 0;
}

int ws_utf8_check(const uint8_t *s, size_t n)
{
    uint32_t st = WS_UTF8_ACCEPT;
    if (ws_utf8_feed(&st, s, n) < 0 || st != WS_UTF8_ACCEPT)
        return -1;
    return 0;
}
