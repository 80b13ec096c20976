/* Whether a connection sits behind a connection pooler, and whether
 * LISTEN/NOTIFY works on it (README, "Behind a connection pooler").
 *
 * A pooler (PgBouncer, Neon's -pooler endpoint, Supavisor, pgcat) hands the
 * client its own cancel key, so the backend pid libpq learned at connect
 * (PQbackendPID) differs from the pid of the server session that answers
 * (pg_backend_pid()). A direct connection has the two equal. Behind a
 * transaction pooler every transaction may run on another server session, so
 * a LISTEN stays on a session other clients then get and the notifications it
 * catches reach no one; nothing may LISTEN there.
 *
 * So the pid alone does not decide: a session proxy (Neon's proxy in front
 * of the direct endpoint also hands out its own cancel keys) keeps one
 * server session per client, and LISTEN works there. The probe LISTENs on a
 * private channel and waits for a NOTIFY: sent by the connection itself when
 * it is direct, or by another connection while it idles when it is proxied
 * (an idle client of a transaction pooler is linked to no server session, so
 * the notification cannot reach it). Behind a transaction pooler the probe's
 * LISTEN on its private channel may stay in one pooled server session (the
 * UNLISTEN that follows may reach another); nothing ever notifies it. */
#ifndef RW_POOLER_H
#define RW_POOLER_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

enum rw_notify_probe {
    RW_NOTIFY_OK,        /* the NOTIFY arrived: LISTEN works */
    RW_NOTIFY_POOLED,    /* proxied, and the NOTIFY did not arrive: a transaction pooler */
    RW_NOTIFY_SILENT,    /* direct, but the NOTIFY did not arrive in time */
    RW_NOTIFY_ERROR      /* a query failed (err filled) */
};

/* The server's pid as pg_backend_pid() printed it differs from the one libpq
 * got at connect: a pooler or proxy is in between. */
bool rw_pg_pid_pooled(PGconn *c, const char *server_pid);

/* A fresh private channel name for the probe ("rlsworker_probe_<pid>_<n>"). */
void rw_pg_probe_channel(char *out, size_t outlen);

/* Blocking probe for CLI subcommands (doctor): LISTEN on c, NOTIFY from c
 * (direct) or from a new connection to notify_url (proxied), wait up to
 * timeout_ms, UNLISTEN. */
enum rw_notify_probe rw_pg_probe_notify(PGconn *c, const char *notify_url, int timeout_ms,
                                        char *err, size_t errlen);

/* What the worker does about it, for logs, doctor and /readyz. */
#define RW_NOTIFY_FIX \
    "set DATABASE_DIRECT_URL (--direct-url, config direct_url) to a direct, unpooled " \
    "admin connection string (on Neon: the same host without -pooler)"

#endif
