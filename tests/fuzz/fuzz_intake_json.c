/* libFuzzer target: the POST /v1/jobs body parser and the Standard Webhooks
 * verifier on arbitrary bytes. Checks the parser's promises: on success the
 * fields are within their limits and the payload is an object; on failure
 * there is an error message and nothing to release. The first byte splits
 * the input between the two parsers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker/http/intake.h"

static void fuzz_body(const char *data, size_t size)
{
    struct rw_job_request r;
    char err[256] = "";

    if (rw_intake_parse_job_body(data, size, &r, err, sizeof err) == 0) {
        if (!json_is_object(r.payload) || !r.task[0] || strlen(r.task) > RW_JOB_TASK_MAX ||
            strlen(r.key) > RW_JOB_KEY_MAX || (r.run_at[0] && !rw_intake_rfc3339(r.run_at)))
            abort();
        rw_job_request_clear(&r);
    } else if (!err[0] || r.payload) {
        abort();
    }
}

/* Splits "id\ntimestamp\nsignatures\nbody" and verifies with a fixed key. */
static void fuzz_webhook(const char *data, size_t size)
{
    static const unsigned char key[] = "fuzz-key";
    char *copy = malloc(size + 1), *parts[3], *p;
    size_t used;

    if (!copy)
        return;
    memcpy(copy, data, size);
    copy[size] = '\0';
    p = copy;
    for (int i = 0; i < 3; i++) {
        parts[i] = p;
        p = strchr(p, '\n');
        if (!p) {
            free(copy);
            return;
        }
        *p++ = '\0';
    }
    used = (size_t)(p - copy);
    if (rw_webhook_verify(key, sizeof key - 1, parts[0], parts[1], parts[2], p, size - used,
                          (time_t)1700000000, 300) == RW_WEBHOOK_OK) {
        /* only a correct MAC passes: recompute and compare */
        char sig[64];
        if (rw_webhook_sign(key, sizeof key - 1, parts[0], parts[1], p, size - used, sig,
                            sizeof sig) < 0 || !strstr(parts[2], sig))
            abort();
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_body((const char *)data + 1, size - 1);
    else
        fuzz_webhook((const char *)data + 1, size - 1);
    return 0;
}
