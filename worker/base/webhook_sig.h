/* Standard Webhooks (https://www.standardwebhooks.com) signatures, both
 * ways: the HTTP intake verifies incoming deliveries (worker/intake.c) and
 * the `http` built-in signs outgoing ones (jobs/http_task.c). Pure functions
 * in worker/intake_sig.c, no I/O. Signed content is "{id}.{timestamp}.{body}",
 * the MAC HMAC-SHA256 with the secret's key bytes, sent base64-encoded as a
 * "v1,<sig>" entry of the space-separated webhook-signature header. */
#ifndef RW_WEBHOOK_SIG_H
#define RW_WEBHOOK_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Limits on the headers (the spec's ids are short) and on key bytes. */
#define RW_WEBHOOK_ID_MAX 256
#define RW_WEBHOOK_SIG_HEADER_MAX 4096
#define RW_WEBHOOK_KEY_MAX 256
/* Room for one "v1,<base64 of 32 bytes>" signature and its NUL. */
#define RW_WEBHOOK_SIG_LEN (3 + 44 + 1)

enum rw_webhook_verdict {
    RW_WEBHOOK_OK = 0,
    RW_WEBHOOK_MISSING_HEADERS,   /* webhook-id/-timestamp/-signature absent or too long */
    RW_WEBHOOK_BAD_TIMESTAMP,     /* not an integer */
    RW_WEBHOOK_STALE,             /* outside the tolerance, either direction */
    RW_WEBHOOK_BAD_SIGNATURE,     /* no v1 signature matches */
};

/* Stable label ("bad_signature"); never NULL. */
const char *rw_webhook_verdict_label(enum rw_webhook_verdict v);

/* Key bytes of a configured secret: "whsec_<base64>" decodes the base64,
 * anything else is used as raw bytes. Returns the key length (> 0), or -1
 * when the secret is empty, not valid base64 after whsec_, or longer than
 * max. */
int rw_webhook_key(const char *secret, unsigned char *key, size_t max)
    __attribute__((warn_unused_result));

/* Verifies one delivery: HMAC-SHA256(key, "{id}.{timestamp}.{body}") against
 * every "v1,<base64>" entry of the space-separated signature header
 * (constant-time compare); timestamp within tolerance_s of now. */
enum rw_webhook_verdict rw_webhook_verify(const unsigned char *key, size_t keylen,
                                          const char *id, const char *timestamp,
                                          const char *signatures, const char *body,
                                          size_t bodylen, time_t now, int tolerance_s);

/* The "v1,<base64>" signature of a delivery. Writes a NUL-terminated string
 * into out (at least RW_WEBHOOK_SIG_LEN bytes). Returns 0/-1. */
int rw_webhook_sign(const unsigned char *key, size_t keylen, const char *id,
                    const char *timestamp, const char *body, size_t bodylen,
                    char *out, size_t outlen) __attribute__((warn_unused_result));

#endif
