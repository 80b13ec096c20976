#include "worker/pg/pgresolve.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "worker/pg/offloop.h"

#define MAX_ADDRS_PER_HOST 8

static bool is_literal_or_path(const char *h)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return h[0] == '\0' || h[0] == '/' || h[0] == '@' || inet_pton(AF_INET, h, buf) == 1 ||
           inet_pton(AF_INET6, h, buf) == 1;
}

struct rw_pg_lookup *rw_pg_lookup_new(const char *conninfo)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    const char *hosts = NULL, *hostaddr = NULL, *ports = NULL;
    struct rw_pg_lookup *l = NULL;
    bool names = false;

    if (!opts)
        return NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0)
            hosts = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            ports = o->val;
    }
    if (hosts && *hosts && !(hostaddr && *hostaddr)) {
        char *copy = strdup(hosts), *save = NULL;
        for (char *h = copy ? strtok_r(copy, ",", &save) : NULL; h; h = strtok_r(NULL, ",", &save))
            names |= !is_literal_or_path(h);
        free(copy);
    }
    if (names && (l = calloc(1, sizeof *l)) != NULL) {
        l->hosts = strdup(hosts);
        l->ports = ports && *ports ? strdup(ports) : NULL;
        if (!l->hosts || (ports && *ports && !l->ports)) {
            rw_pg_lookup_free(l);
            l = NULL;
        }
    }
    PQconninfoFree(opts);
    return l;
}

/* Splits a comma-separated list in place (empty entries kept). */
static int split(char *s, char **out, int max)
{
    int n = 0;

    while (n < max) {
        out[n++] = s;
        s = strchr(s, ',');
        if (!s)
            break;
        *s++ = '\0';
    }
    return n;
}

static bool append(char **list, size_t *len, const char *item, bool first)
{
    size_t n = strlen(item);
    char *p = realloc(*list, *len + n + 2);

    if (!p)
        return false;
    if (!first)
        p[(*len)++] = ',';
    memcpy(p + *len, item, n + 1);
    *len += n;
    *list = p;
    return true;
}

/* One host entry: its addresses (or itself, for a literal or a path). */
static int add_entry(struct rw_pg_lookup *l, const char *h, const char *port, size_t *lens,
                     int *count)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    char addr[INET6_ADDRSTRLEN];
    int rc, got = 0;

    if (is_literal_or_path(h)) {
        if (!append(&l->host, &lens[0], h, *count == 0) ||
            !append(&l->hostaddr, &lens[1], "", *count == 0) ||
            (port && !append(&l->port, &lens[2], port, *count == 0)))
            return -1;
        (*count)++;
        return 0;
    }
    rc = getaddrinfo(h, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(l->err, sizeof l->err, "could not translate host name \"%.100s\" to address: %s",
                 h, gai_strerror(rc));
        return 0;   /* libpq would go on to the next host too */
    }
    for (ai = res; ai && got < MAX_ADDRS_PER_HOST; ai = ai->ai_next) {
        const void *a = ai->ai_family == AF_INET
            ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            !inet_ntop(ai->ai_family, a, addr, sizeof addr))
            continue;
        if (!append(&l->host, &lens[0], h, *count == 0) ||
            !append(&l->hostaddr, &lens[1], addr, *count == 0) ||
            (port && !append(&l->port, &lens[2], port, *count == 0))) {
            freeaddrinfo(res);
            return -1;
        }
        (*count)++;
        got++;
    }
    freeaddrinfo(res);
    return 0;
}

static void resolve(void *arg)
{
    struct rw_pg_lookup *l = arg;
    char *hosts = strdup(l->hosts), *ports = l->ports ? strdup(l->ports) : NULL;
    char *h[64], *p[64];
    size_t lens[3] = {0, 0, 0};
    int nh, np = 0, count = 0;
    bool oom = false;

    if (!hosts || (l->ports && !ports)) {
        snprintf(l->err, sizeof l->err, "out of memory");
        goto out;
    }
    nh = split(hosts, h, 64);
    if (ports)
        np = split(ports, p, 64);
    for (int i = 0; i < nh; i++) {
        /* one port for all hosts is left to libpq; a list is expanded */
        const char *port = np > 1 ? (i < np ? p[i] : "") : NULL;
        if (add_entry(l, h[i], port, lens, &count) < 0) {
            snprintf(l->err, sizeof l->err, "out of memory");
            oom = true;
            break;
        }
    }
    if (count == 0 || oom) {
        free(l->host), free(l->hostaddr), free(l->port);
        l->host = l->hostaddr = l->port = NULL;
        if (!l->err[0])
            snprintf(l->err, sizeof l->err, "no address for the host names");
    }
out:
    free(hosts);
    free(ports);
}

static void resolved(void *arg)
{
    struct rw_pg_lookup *l = arg;

    if (l->cancelled)
        rw_pg_lookup_free(l);
    else
        l->cb(l->arg, l);
}

int rw_pg_lookup_start(struct ev_loop *loop, struct rw_pg_lookup *l,
                       void (*cb)(void *arg, struct rw_pg_lookup *l), void *arg,
                       char *err, size_t errlen)
{
    l->cb = cb;
    l->arg = arg;
    return rw_offloop_run(loop, resolve, resolved, l, err, errlen);
}

void rw_pg_lookup_cancel(struct rw_pg_lookup *l) { l->cancelled = true; }

void rw_pg_lookup_free(struct rw_pg_lookup *l)
{
    if (!l)
        return;
    free(l->hosts);
    free(l->ports);
    free(l->host);
    free(l->hostaddr);
    free(l->port);
    free(l);
}
