/* The one strict base64 decoder (RFC 4648): the url-safe alphabet without
 * padding for JWTs and JWKs (§5), the standard alphabet with padding for
 * Standard Webhooks secrets and signatures (§4). Both refuse non-alphabet
 * bytes, impossible lengths, non-zero trailing bits and overflow. */
#ifndef RW_BASE64_H
#define RW_BASE64_H

#include <stdbool.h>
#include <stddef.h>

enum rw_b64_alphabet {
    RW_B64_URL,   /* A-Z a-z 0-9 - _, no padding; empty input decodes to nothing */
    RW_B64_STD,   /* A-Z a-z 0-9 + /, padded to a multiple of 4; empty refused */
};

/* Decodes in[0..len) into out (capacity outcap); *outlen is the decoded size.
 * Returns false when malformed or longer than outcap. */
bool rw_b64_decode(enum rw_b64_alphabet a, const char *in, size_t len, unsigned char *out,
                   size_t outcap, size_t *outlen) __attribute__((warn_unused_result));

/* Strict base64url (RFC 4648 §5, no padding, canonical trailing bits):
 * rw_b64_decode(RW_B64_URL, ...). */
bool rw_b64url_decode(const char *in, size_t len, unsigned char *out,
                      size_t outcap, size_t *outlen) __attribute__((warn_unused_result));
/* Largest decoded size of n base64url characters. */
#define RW_B64URL_DECODED_MAX(n) (((n) / 4) * 3 + 2)

#endif
