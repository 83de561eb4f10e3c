/* fuzz_http.c: the request-head parser fed a growing prefix in small steps
 * must reach the answer it gives for the whole input, and never crash; the
 * upgrade check runs on every parsed head. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "ws/handshake.h"
#include "ws/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > HTTP_REQ_MAX_HEAD + 64)
        return 0;
    size_t seed = data[0];
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;

    struct http_req whole, step;
    size_t scanned = 0;
    int rw = http_req_parse(buf, len, &scanned, &whole);

    int rs = HTTP_REQ_NEED_MORE;
    scanned = 0;
    for (size_t have = 0; have < len && rs == HTTP_REQ_NEED_MORE;) {
        have += 1 + (seed % 5);
        seed = seed * 31 + 7;
        if (have > len)
            have = len;
        rs = http_req_parse(buf, have, &scanned, &step);
    }
    if (len == 0)
        rs = rw;
    /* A head that completes early in the steps completes at the same length. */
    if (rw > 0 && rs != rw)
        abort();
    if (rs > 0 && rw != rs)
        abort();
    if (rw > 0) {
        char *origins[] = {"http://a", "https://*.b.test"};
        struct ws_hs_policy pol = {.echo_enabled = true,
                                   .auth_enabled = (seed & 1) != 0,
                                   .keys = {.algs = WS_ALG_HS256,
                                            .secret = (const uint8_t *)"k",
                                            .secret_len = 1},
                                   .require_rooms = (seed & 4) != 0,
                                   .origins = origins,
                                   .n_origins = (seed & 2) ? 2 : 0,
                                   .now_s = 1800000000};
        struct ws_hs_result res;
        ws_hs_check(&whole, &pol, &res);
        if (res.status == 0 && res.route == WS_HS_NONE)
            abort();
        if (res.has_room && !ws_hs_room_valid(res.room, strlen(res.room)))
            abort();
    }
    return 0;
}
