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
 * The probe never LISTENs on a connection that looks pooled; otherwise it
 * LISTENs on a private channel, NOTIFYs it in a second transaction and waits
 * up to a deadline for the notification. */
#ifndef RW_POOLER_H
#define RW_POOLER_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

enum rw_notify_probe {
    RW_NOTIFY_OK,        /* the NOTIFY to itself arrived: LISTEN works */
    RW_NOTIFY_POOLED,    /* a pooler answers for the server: never LISTEN here */
    RW_NOTIFY_SILENT,    /* no pooler seen, but the NOTIFY did not arrive in time */
    RW_NOTIFY_ERROR      /* a query failed (err filled) */
};

/* The server's pid as pg_backend_pid() printed it differs from the one libpq
 * got at connect: a pooler is in between. */
bool rw_pg_pid_pooled(PGconn *c, const char *server_pid);

/* A fresh private channel name for the probe ("rlsworker_probe_<pid>_<n>"). */
void rw_pg_probe_channel(char *out, size_t outlen);

/* Blocking probe for CLI subcommands (doctor): pooled, then LISTEN, NOTIFY,
 * wait up to timeout_ms, UNLISTEN. */
enum rw_notify_probe rw_pg_probe_notify(PGconn *c, int timeout_ms, char *err, size_t errlen);

/* What the worker does about it, for logs, doctor and /readyz. */
#define RW_NOTIFY_FIX \
    "set DATABASE_DIRECT_URL (--direct-url, config direct_url) to a direct, unpooled " \
    "admin connection string (on Neon: the same host without -pooler)"

#endif
