/* A webhook's subject: the value at the source's JSON pointer
 * (webhook.<source>.subject, RFC 6901) in the delivery's body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http/intake_int.h"

/* One reference token of a pointer, unescaped (~1 is '/', ~0 is '~').
 * Returns 0, or -1 for a bad escape or a token longer than the buffer. */
static int next_token(const char **p, char *tok, size_t toklen)
{
    size_t n = 0;
    const char *s = *p;

    while (*s && *s != '/') {
        char c = *s++;
        if (c == '~') {
            if (*s != '0' && *s != '1')
                return -1;
            c = *s++ == '0' ? '~' : '/';
        }
        if (n + 1 >= toklen)
            return -1;
        tok[n++] = c;
    }
    tok[n] = '\0';
    *p = s;
    return 0;
}

static json_t *resolve(json_t *doc, const char *ptr)
{
    char tok[257];

    while (doc && *ptr == '/') {
        ptr++;
        if (next_token(&ptr, tok, sizeof tok) < 0)
            return NULL;
        if (json_is_object(doc)) {
            doc = json_object_get(doc, tok);
        } else if (json_is_array(doc)) {
            char *end;
            unsigned long i = strtoul(tok, &end, 10);
            if (!tok[0] || *end || (tok[0] == '0' && tok[1]) || tok[0] == '-' || tok[0] == '+')
                return NULL;
            doc = json_array_get(doc, i);
        } else {
            return NULL;
        }
    }
    return *ptr ? NULL : doc;
}

int rw_intake_webhook_subject(json_t *body, const char *ptr, char *out, size_t outlen)
{
    json_t *v = resolve(body, ptr);

    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        const char *s = json_string_value(v);
        if (n == 0 || n > 255 || n >= outlen || strlen(s) != n)
            return -1;
        memcpy(out, s, n + 1);
        return 0;
    }
    if (json_is_integer(v)) {
        snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    return -1;
}
