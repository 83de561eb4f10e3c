/* utf8.h: incremental UTF-8 validation (RFC 3629, Unicode table 3-7). Pure.
 *
 * The state is one integer the caller keeps between chunks, so a text message
 * split over frames or reads is validated as it arrives and rejected at the
 * first byte that can no longer begin or continue a well-formed sequence. */
#ifndef CHAT_WS_UTF8_H
#define CHAT_WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Between characters: the only state in which a message may end. */
#define WS_UTF8_ACCEPT 0u

/* Feeds n bytes. Returns 0 while the input can still become valid UTF-8 and
 * -1 as soon as it cannot (the state is then meaningless). Any thread; the
 * caller owns *state. */
int ws_utf8_feed(uint32_t *state, const uint8_t *s, size_t n);

/* Validates a whole string. Returns 0 when it is complete, valid UTF-8. */
int ws_utf8_check(const uint8_t *s, size_t n);

#endif
