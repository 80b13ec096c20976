/* See prepcache.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs/exec/prepcache.h"

int rw_prepcache_get(struct rw_prepcache *c, const char *sql)
{
    static unsigned process_tag;
    static unsigned long long seq;

    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i].sql, sql) == 0)
            return i;
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        struct rw_prep *v = realloc(c->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        c->v = v;
        c->cap = cap;
    }
    struct rw_prep *p = &c->v[c->n];
    if (!(p->sql = strdup(sql)))
        return -1;
    if (!process_tag)
        process_tag = ((unsigned)getpid() * 2654435761u) ^ (unsigned)time(NULL) ^ 1u;
    snprintf(p->name, sizeof p->name, "rlsworker_%08x_%llu", process_tag, ++seq);
    p->ready = p->sending = false;
    return c->n++;
}

void rw_prepcache_free(struct rw_prepcache *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->v[i].sql);
    free(c->v);
    *c = (struct rw_prepcache){0};
}
