/* One strict base64 decoder for both alphabets (worker/base/base64.h). */
#include "worker/base/base64.h"

static int b64_value(enum rw_b64_alphabet a, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (a == RW_B64_URL ? '-' : '+'))
        return 62;
    if (c == (a == RW_B64_URL ? '_' : '/'))
        return 63;
    return -1;
}

bool rw_b64_decode(enum rw_b64_alphabet a, const char *in, size_t len, unsigned char *out,
                   size_t outcap, size_t *outlen)
{
    unsigned long acc = 0;
    int bits = 0;
    size_t n = 0;

    if (a == RW_B64_STD) {
        /* padded: whole quads; at most two '=' and only at the very end */
        if (len == 0 || len % 4 != 0)
            return false;
        for (int pad = 0; pad < 2 && in[len - 1] == '='; pad++)
            len--;
    }
    if (len % 4 == 1)
        return false;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(a, (unsigned char)in[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= outcap)
                return false;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1UL << bits) - 1;
        }
    }
    if (acc != 0)               /* non-canonical: unused trailing bits set */
        return false;
    *outlen = n;
    return true;
}

bool rw_b64url_decode(const char *in, size_t len, unsigned char *out,
                      size_t outcap, size_t *outlen)
{
    return rw_b64_decode(RW_B64_URL, in, len, out, outcap, outlen);
}
