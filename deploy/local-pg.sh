#!/bin/sh
# A local PostgreSQL for trying rlsworker: one cluster in a project-local
# directory, listening on 127.0.0.1 only (Unix socket inside the data
# directory), with the roles of deploy/roles.sql and the todos demo of
# deploy/demo/schema.sql in database rlsworker_demo.
#
#   deploy/local-pg.sh start    initialise (first time), start, set up; prints the URLs
#   deploy/local-pg.sh stop     pg_ctl stop -m fast
#   deploy/local-pg.sh status   running or not, and where
#   deploy/local-pg.sh env      prints export lines: eval "$(deploy/local-pg.sh env)"
#   deploy/local-pg.sh psql [ARGS...]   psql as neondb_owner on rlsworker_demo
#
# Environment: RLSWORKER_PGDATA (default <repo>/.local/pg), RLSWORKER_PGPORT
# (default 54329), RLSWORKER_PG_BINDIR (default: newest /usr/lib/postgresql/*/bin).
# As root, the server runs as the `postgres` OS user (PostgreSQL refuses root).
# Generated passwords are kept in $RLSWORKER_PGDATA/rlsworker.credentials (mode 600).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
PGDATA_DIR=${RLSWORKER_PGDATA:-$repo/.local/pg}
PORT=${RLSWORKER_PGPORT:-54329}
DB=rlsworker_demo
CREDS=$PGDATA_DIR/rlsworker.credentials
LOG=$PGDATA_DIR/server.log

die() { echo "local-pg: $*" >&2; exit 1; }
say() { echo "local-pg: $*" >&2; }

find_bindir() {
    if [ -n "${RLSWORKER_PG_BINDIR:-}" ]; then
        echo "$RLSWORKER_PG_BINDIR"
        return
    fi
    # shellcheck disable=SC2012  # the glob only matches version directories
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin: install postgresql-15 (see deploy/packages.txt) or set RLSWORKER_PG_BINDIR"
    echo "$d"
}
BIN=$(find_bindir)

# Runs a server-side command as the cluster's OS user.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Superuser psql over the Unix socket in the data directory (trust; only the
# cluster's OS user and root can reach that directory).
su_psql() {
    env -u PGHOST -u PGUSER -u PGDATABASE -u PGPASSWORD \
        "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGDATA_DIR" -p "$PORT" -U postgres "$@"
}

is_running() {
    [ -f "$PGDATA_DIR/PG_VERSION" ] && as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

init_cluster() {
    parent=$(dirname "$PGDATA_DIR")
    mkdir -p "$parent"
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$PGDATA_DIR"
        chown postgres:postgres "$PGDATA_DIR"
        chmod 700 "$PGDATA_DIR"
        runuser -u postgres -- test -w "$PGDATA_DIR" ||
            die "the postgres user cannot reach $PGDATA_DIR (a parent directory is not searchable by it): set RLSWORKER_PGDATA to a directory under /var/tmp, for example"
    fi
    say "initdb into $PGDATA_DIR"
    as_owner "$BIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null ||
        die "initdb failed; remove $PGDATA_DIR if it holds a broken cluster"
    as_owner sh -c "cat >> '$PGDATA_DIR/postgresql.conf'" <<EOF
# rlsworker local demo
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$PGDATA_DIR'
password_encryption = 'scram-sha-256'
EOF
    pw() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
    as_owner sh -c "umask 077; cat > '$CREDS'" <<EOF
owner_password=$(pw)
authenticated_password=$(pw)
moderator_password=$(pw)
admin_backend_password=$(pw)
EOF
}

# Reads the generated passwords into shell variables of the same names.
load_creds() {
    [ -r "$CREDS" ] || die "cannot read $CREDS: run \"deploy/local-pg.sh start\" first (as the user that owns $PGDATA_DIR, or root)"
    owner_password='' authenticated_password='' moderator_password='' admin_backend_password=''
    while IFS='=' read -r key value; do
        case $key in
            owner_password) owner_password=$value ;;
            authenticated_password) authenticated_password=$value ;;
            moderator_password) moderator_password=$value ;;
            admin_backend_password) admin_backend_password=$value ;;
        esac
    done < "$CREDS"
    if [ -z "$owner_password" ] || [ -z "$authenticated_password" ] ||
        [ -z "$moderator_password" ] || [ -z "$admin_backend_password" ]; then
        die "$CREDS lacks a password; delete $PGDATA_DIR to start over"
    fi
}

url() { echo "postgresql://$1:$2@127.0.0.1:$PORT/$DB"; }

print_env() {
    load_creds
    echo "export DATABASE_URL='$(url neondb_owner "$owner_password")'"
    echo "export DATABASE_AUTHENTICATED_URL='$(url authenticated_backend "$authenticated_password")'"
    # The demo configures these two only (deploy/demo/run-demo.sh); exporting
    # the other roles' URLs would make `run` and `doctor` check roles no task
    # uses. Uncomment one for tasks with `run_as: <that role>`.
    echo "# export DATABASE_MODERATOR_URL='$(url moderator_backend "$moderator_password")'"
    echo "# export DATABASE_ADMIN_BACKEND_URL='$(url admin_backend "$admin_backend_password")'"
}

# Roles, database and todos schema; each step is safe to repeat.
setup() {
    load_creds
    # Passwords go through stdin, not the command line (visible in ps).
    { printf '\\set %s %s\n' owner_password "$owner_password" \
          authenticated_password "$authenticated_password" \
          moderator_password "$moderator_password" \
          admin_backend_password "$admin_backend_password"
      cat "$here/roles.sql"; } | su_psql -d postgres -f - ||
        die "could not create the roles (deploy/roles.sql)"
    echo "select 'create database $DB owner neondb_owner' where not exists (select from pg_database where datname = '$DB') \\gexec" |
        su_psql -d postgres -f - || die "could not create database $DB"
    PGPASSWORD=$owner_password "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" \
        -U neondb_owner -d "$DB" -f "$here/demo/schema.sql" ||
        die "could not apply deploy/demo/schema.sql"
}

cmd_start() {
    [ -f "$PGDATA_DIR/PG_VERSION" ] || init_cluster
    if is_running; then
        say "already running ($PGDATA_DIR, port $PORT)"
    else
        say "starting on 127.0.0.1:$PORT (log: $LOG)"
        as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOG" -w -t 60 start >/dev/null || {
            tail -n 20 "$LOG" >&2 || true
            die "could not start PostgreSQL; is port $PORT taken? (set RLSWORKER_PGPORT)"
        }
    fi
    setup
    say "ready: database $DB; eval \"\$(deploy/local-pg.sh env)\" sets the URLs"
    print_env
}

cmd_stop() {
    if is_running; then
        as_owner "$BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
        say "stopped"
    else
        say "not running"
    fi
}

cmd_status() {
    if is_running; then
        say "running: $PGDATA_DIR, 127.0.0.1:$PORT, database $DB"
    else
        say "not running ($PGDATA_DIR)"
        return 3
    fi
}

cmd_psql() {
    is_running || die "not running: deploy/local-pg.sh start"
    load_creds
    PGPASSWORD=$owner_password exec "$BIN/psql" -X -h 127.0.0.1 -p "$PORT" -U neondb_owner -d "$DB" "$@"
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) print_env ;;
    psql) shift; cmd_psql "$@" ;;
    *) echo "usage: $0 start|stop|status|env|psql [psql args]" >&2; exit 2 ;;
esac
