#include "worker/pg/migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATE_LOCK_KEY "7216543210987"   /* advisory lock id of migrations */

int rw_migrations_latest(void)
{
    return rw_migrations_count ? rw_migrations[rw_migrations_count - 1].version : 0;
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

int rw_schema_version(PGconn *admin, char *err, size_t errlen)
{
    /* two queries: the table name is resolved when a query is parsed, so a
     * single "case when to_regclass(...)" still fails on a fresh database */
    PGresult *r = PQexec(admin, "select to_regclass('rlsworker.migrations') is not null");
    int v = -1;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "could not read schema version: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    if (PQgetvalue(r, 0, 0)[0] != 't') {
        PQclear(r);
        return 0;
    }
    PQclear(r);
    r = PQexec(admin, "select coalesce(max(version), 0) from rlsworker.migrations");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        v = atoi(PQgetvalue(r, 0, 0));
    else
        snprintf(err, errlen, "could not read schema version: %s", PQresultErrorMessage(r));
    PQclear(r);
    return v;
}

/* One migration in one transaction under a transaction-level advisory lock,
 * the version read again under the lock: several processes may migrate at
 * once, and nothing outlives the transaction, so this works the same
 * through a transaction pooler (PgBouncer, Neon's -pooler endpoint) as on a
 * direct connection. Returns 1 applied, 0 already there, -1 (err filled). */
static int apply_one(PGconn *c, const struct rw_migration *m, char *err, size_t errlen)
{
    char msg[1024];
    char ins[256];
    int current;

    if (exec_ok(c, "begin", msg, sizeof msg) < 0 ||
        exec_ok(c, "select pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", msg, sizeof msg) < 0 ||
        exec_ok(c, "set local client_min_messages = warning", msg, sizeof msg) < 0) {
        snprintf(err, errlen, "could not take the migration lock: %s", msg);
        exec_ok(c, "rollback", msg, sizeof msg);
        return -1;
    }
    if ((current = rw_schema_version(c, err, errlen)) < 0) {
        exec_ok(c, "rollback", msg, sizeof msg);
        return -1;
    }
    if (current >= m->version)
        return exec_ok(c, "commit", msg, sizeof msg) < 0 ? -1 : 0;
    if (exec_ok(c, m->sql, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "migration %s failed: %s", m->name, msg);
        exec_ok(c, "rollback", msg, sizeof msg);
        return -1;
    }
    snprintf(ins, sizeof ins,
             "insert into rlsworker.migrations (version, name) values (%d, '%s')",
             m->version, m->name);
    if (exec_ok(c, ins, msg, sizeof msg) < 0 || exec_ok(c, "commit", msg, sizeof msg) < 0) {
        snprintf(err, errlen, "could not record migration %s: %s", m->name, msg);
        exec_ok(c, "rollback", msg, sizeof msg);
        return -1;
    }
    return 1;
}

int rw_migrate(PGconn *admin, char *err, size_t errlen)
{
    char msg[1024];
    int applied = 0, current, rc;

    if (exec_ok(admin,
                "begin; select pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ");"
                "set local client_min_messages = warning;"
                "create schema if not exists rlsworker;"
                "create table if not exists rlsworker.migrations ("
                " version int primary key, name text not null,"
                " applied_at timestamptz not null default now());"
                "commit",
                msg, sizeof msg) < 0) {
        exec_ok(admin, "rollback", msg + 512, sizeof msg - 512);
        snprintf(err, errlen, "could not create schema rlsworker: %s"
                 "(the admin role needs CREATE on the database)", msg);
        return -1;
    }
    current = rw_schema_version(admin, err, errlen);
    if (current < 0)
        return -1;
    if (current > rw_migrations_latest()) {
        snprintf(err, errlen, "the database is at schema version %d, newer than this "
                 "binary's %d: upgrade rlsworker", current, rw_migrations_latest());
        return -1;
    }
    for (int i = 0; i < rw_migrations_count; i++) {
        if (rw_migrations[i].version <= current)
            continue;
        if ((rc = apply_one(admin, &rw_migrations[i], err, errlen)) < 0)
            return -1;
        applied += rc;
    }
    return applied;
}
