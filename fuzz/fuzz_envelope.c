/* fuzz_envelope.c: whatever valid UTF-8 a client sends, the message built
 * from it is one JSON object. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "room/envelope.h"
#include "ws/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ws_utf8_check(data, size) < 0)
        return 0;
    struct envelope_ctx c = {
        .client_id = "c\"1", .room = (size & 1) ? "lobby" : NULL, .pod_id = "p", .now_ms = 1};
    memset(c.rand, 7, sizeof(c.rand));
    struct json_out o = {0};
    int rc = envelope_from_client(&c, (const char *)data, size, &o);
    if (rc == 0 && json_check(o.p, o.len) != JSON_OBJECT)
        abort();
    if (rc < 0) {
        o.len = 0;
        envelope_error(&c, rc, &o);
        if (json_check(o.p, o.len) != JSON_OBJECT)
            abort();
    }
    json_out_free(&o);
    return 0;
}
