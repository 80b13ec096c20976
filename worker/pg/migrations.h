/* SQL migrations from deploy/sql/NNN_name.sql, embedded at build time by
 * cmake/embed_sql.cmake, in ascending version order. */
#ifndef RW_MIGRATIONS_H
#define RW_MIGRATIONS_H

#include <libpq-fe.h>
#include <stddef.h>

struct rw_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct rw_migration rw_migrations[];
extern const int rw_migrations_count;

/* Latest version compiled into this binary. */
int rw_migrations_latest(void);

/* Applies the missing migrations, each in its own transaction under a
 * transaction-level advisory lock (safe when several processes migrate at
 * once, and through a transaction pooler). Blocking; for `rlsworker migrate`.
 * Returns the number applied (>= 0), or -1 with err filled. */
int rw_migrate(PGconn *admin, char *err, size_t errlen);

/* Version the database is at (0 when the schema is absent), or -1. */
int rw_schema_version(PGconn *admin, char *err, size_t errlen);

#endif
