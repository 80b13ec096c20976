/* Pure parts of the HTTP intake: listen address, POST /v1/jobs body,
 * headers, job keys. No loop, no I/O: unit-tested and fuzzed. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "worker/http/intake.h"

int rw_intake_parse_listen(const char *listen, struct sockaddr_storage *ss,
                           socklen_t *len, char *err, size_t errlen)
{
    char host[64];
    const char *colon, *hs = listen, *he;
    char *end;
    long port;

    memset(ss, 0, sizeof *ss);
    if (!listen || !*listen)
        goto bad;
    if (listen[0] == '[') {
        hs = listen + 1;
        he = strchr(hs, ']');
        if (!he || he[1] != ':')
            goto bad;
        colon = he + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || memchr(listen, ':', (size_t)(colon - listen)))
            goto bad;
        he = colon;
    }
    if ((size_t)(he - hs) >= sizeof host)
        goto bad;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 1 || port > 65535) {
        snprintf(err, errlen, "listen address \"%s\": the port must be 1..65535", listen);
        return -1;
    }
    if (listen[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((unsigned short)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            goto bad;
        *len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((unsigned short)port);
        if (host[0] == '\0')
            s4->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            goto bad;
        *len = sizeof *s4;
    }
    return 0;
bad:
    snprintf(err, errlen, "listen address \"%s\" is not ADDR:PORT, [IPv6]:PORT or :PORT "
             "with a numeric address (e.g. 127.0.0.1:8080)", listen ? listen : "");
    return -1;
}

static bool task_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > RW_JOB_TASK_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
            return false;
    return true;
}

static bool key_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > RW_JOB_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

bool rw_intake_rfc3339(const char *s)
{
    size_t n = strlen(s);
    const char *p = s + 19;

    if (n < 20 || n > RW_JOB_RUN_AT_MAX)
        return false;
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || !strchr("Tt ", s[10]) || !digits(s + 11, 2) ||
        s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    if (*p == '.') {
        const char *q = ++p;
        while (isdigit((unsigned char)*p))
            p++;
        if (p == q || p - q > 9)
            return false;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return true;
    return (*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' &&
           digits(p + 4, 2) && p[6] == '\0';
}

/* Copies a string field into dst (max bytes + NUL). -1 if not a string. */
static int take_string(json_t *v, const char *name, char *dst, size_t max,
                       char *err, size_t errlen)
{
    const char *s;

    if (!json_is_string(v)) {
        snprintf(err, errlen, "field \"%s\" must be a string", name);
        return -1;
    }
    s = json_string_value(v);
    if (json_string_length(v) != strlen(s) || strlen(s) > max) {
        snprintf(err, errlen, "field \"%s\" is longer than %zu bytes or contains NUL",
                 name, max);
        return -1;
    }
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int take_field(const char *name, json_t *v, struct rw_job_request *out,
                      char *err, size_t errlen)
{
    if (strcmp(name, "task") == 0) {
        if (take_string(v, name, out->task, RW_JOB_TASK_MAX, err, errlen) < 0)
            return -1;
        if (!task_name_ok(out->task)) {
            snprintf(err, errlen, "field \"task\" must be 1..%d of A-Z a-z 0-9 _ . : -",
                     RW_JOB_TASK_MAX);
            return -1;
        }
    } else if (strcmp(name, "payload") == 0) {
        if (!json_is_object(v)) {
            snprintf(err, errlen, "field \"payload\" must be a JSON object");
            return -1;
        }
        json_decref(out->payload);
        out->payload = json_incref(v);
    } else if (strcmp(name, "run_at") == 0) {
        if (json_is_null(v))
            return 0;
        if (take_string(v, name, out->run_at, RW_JOB_RUN_AT_MAX, err, errlen) < 0)
            return -1;
        if (!rw_intake_rfc3339(out->run_at)) {
            snprintf(err, errlen, "field \"run_at\" must be an RFC 3339 time, "
                     "e.g. 2030-01-02T03:04:05Z");
            return -1;
        }
    } else if (strcmp(name, "key") == 0) {
        if (json_is_null(v))
            return 0;
        if (take_string(v, name, out->key, RW_JOB_KEY_MAX, err, errlen) < 0)
            return -1;
        if (!key_ok(out->key)) {
            snprintf(err, errlen, "field \"key\" must be 1..%d characters without "
                     "control characters", RW_JOB_KEY_MAX);
            return -1;
        }
    } else if (!strcmp(name, "claims") || !strcmp(name, "role") || !strcmp(name, "subject") ||
               !strcmp(name, "run_as")) {
        snprintf(err, errlen, "field \"%s\" may not be set: claims come from the verified "
                 "token and jobs enqueued over HTTP always run as that user", name);
        return -1;
    } else {
        snprintf(err, errlen, "unknown field \"%.64s\" (allowed: task, payload, run_at, key)",
                 name);
        return -1;
    }
    return 0;
}

int rw_intake_parse_job_body(const char *body, size_t len, struct rw_job_request *out,
                             char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root, *v;
    const char *name;

    memset(out, 0, sizeof *out);
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        snprintf(err, errlen, "malformed JSON at line %d, column %d: %s",
                 jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "the body must be a JSON object");
        goto fail;
    }
    json_object_foreach(root, name, v)
        if (take_field(name, v, out, err, errlen) < 0)
            goto fail;
    if (!out->task[0]) {
        snprintf(err, errlen, "field \"task\" is required");
        goto fail;
    }
    if (!out->payload && !(out->payload = json_object()))
        goto oom;
    json_decref(root);
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    json_decref(root);
    rw_job_request_clear(out);
    return -1;
}

void rw_job_request_clear(struct rw_job_request *r)
{
    json_decref(r->payload);
    memset(r, 0, sizeof *r);
}

bool rw_intake_bearer(const char *authz, const char **tok, size_t *toklen)
{
    const char *p, *e;

    if (!authz || strncasecmp(authz, "Bearer ", 7) != 0)
        return false;
    p = authz + 7;
    while (*p == ' ')
        p++;
    e = p;
    while (*e && *e != ' ' && *e != '\t')
        e++;
    if (e == p)
        return false;
    for (const char *q = e; *q; q++)
        if (*q != ' ' && *q != '\t')
            return false;
    *tok = p;
    *toklen = (size_t)(e - p);
    return true;
}

bool rw_intake_is_json(const char *ct)
{
    size_t n = strlen("application/json");

    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    ct += n;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

char *rw_intake_user_job_key(const char *sub, const char *key)
{
    char *out = NULL;

    if (asprintf(&out, "u%zu:%s:%s", strlen(sub), sub, key) < 0)
        return NULL;
    return out;
}
