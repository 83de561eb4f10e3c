/* fuzz_json.c: the JSON scanner and member walk agree, and never crash. */
#include <stdint.h>
#include <stdlib.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    enum json_type t = json_check(s, size);
    size_t pos = 0;
    struct json_member m;
    int rc;
    while ((rc = json_object_next(s, size, &pos, &m)) == 1) {
        char buf[256];
        json_string_decode(m.key, buf, sizeof(buf));
        if (json_check(m.value.p, m.value.len) != m.value.type)
            abort();
    }
    /* The walk ends cleanly exactly when the input is one valid object. */
    if ((rc == 0) != (t == JSON_OBJECT))
        abort();
    return 0;
}
