#!/bin/sh
# The todos demo, end to end, on a fresh Debian 12 machine:
#
#   deploy/demo/run-demo.sh
#
# 1. installs the packages of deploy/packages.txt (as root, only when some are
#    missing), 2. builds rlsworker into build/, 3. starts a local PostgreSQL
#    (deploy/local-pg.sh) with the roles of Neon's Drizzle RLS guide and the
#    todos table, 4. queues jobs for alice and bob, 5. runs them with
#    `rlsworker run --once`, 6. shows each user's todos as that user sees them
#    under RLS, and checks that alice's `complete_todos` job touched only
#    alice's rows.
#
# RLSWORKER_BUILD_DIR (default build) names the build directory.
# The demo empties the todos tables and the demo's jobs at each run. The
# database keeps running afterwards: `deploy/local-pg.sh stop` stops it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

step() { printf '\n==> %s\n' "$*"; }
die() { echo "run-demo: $*" >&2; exit 1; }

install_packages() {
    "$repo/deploy/install-packages.sh" || die "could not install the packages in deploy/packages.txt"
}

BUILD=${RLSWORKER_BUILD_DIR:-build}

build() {
    step "building rlsworker into $BUILD/"
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j "$(nproc)"
}

PSQL=psql
# shellcheck disable=SC2012  # the glob only matches version directories
command -v psql >/dev/null 2>&1 ||
    PSQL=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql

# Runs SQL as the admin role (BYPASSRLS).
admin_sql() { "$PSQL" -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }

# Runs SQL as the restricted role with `sub` = $1, the way the worker runs a
# user job: claims set transaction-locally inside one transaction.
as_user() {
    sub=$1
    shift
    {
        echo "begin;"
        echo "select set_config('request.jwt.claims', '{\"sub\":\"$sub\"}', true) \\g /dev/null"
        cat
        echo "commit;"
    } | "$PSQL" -X -q -v ON_ERROR_STOP=1 "$DATABASE_AUTHENTICATED_URL" "$@"
}

show_todos() {
    for who in alice bob; do
        echo "-- $who sees (authenticated_backend, sub=$who):"
        echo "select id, user_id, task, is_complete from todos order by id;" | as_user "$who"
    done
}

check_result() {
    # unaligned, tuples only: "open|done" counted as each user sees it
    alice=$(echo "select count(*) filter (where not is_complete) || '|' || count(*) filter (where is_complete) from todos;" |
        as_user alice -A -t)
    bob=$(echo "select count(*) filter (where not is_complete) || '|' || count(*) filter (where is_complete) from todos;" |
        as_user bob -A -t)
    [ "$alice" = "0|2" ] || die "expected alice to see 0 open and 2 done todos, got open|done = $alice"
    [ "$bob" = "1|0" ] || die "expected bob to see 1 open and 0 done todos, got open|done = $bob"
    echo "ok: alice's complete_todos job completed her 2 todos and left bob's open (RLS)"
}

install_packages
build
RW=$repo/$BUILD/rlsworker
export RLSWORKER_TASKS="$here/tasks"

step "starting the local PostgreSQL (deploy/local-pg.sh start)"
eval "$(deploy/local-pg.sh start)"

step "rlsworker migrate"
"$RW" migrate

step "resetting the demo data"
admin_sql -c "truncate todos, todo_stats restart identity" \
    -c "delete from rlsworker.jobs where task in ('add_todo', 'complete_todos', 'purge_completed', 'stats_global')"

step "queueing add_todo jobs: two for alice (CLI), one for bob (SQL)"
"$RW" add add_todo --claims '{"sub":"alice"}' --payload '{"title":"buy oat milk"}'
"$RW" add add_todo --claims '{"sub":"alice"}' --payload '{"title":"water the plants"}'
admin_sql -c "select rlsworker.add_job('add_todo', '{\"title\":\"call the plumber\"}', claims => '{\"sub\":\"bob\"}') as bob_job_id"
"$RW" jobs list

step "rlsworker run --once --tasks deploy/demo/tasks"
"$RW" run --once --tasks "$here/tasks"
show_todos

step "queueing complete_todos for alice only, and running it"
"$RW" add complete_todos --claims '{"sub":"alice"}' --payload '{}'
"$RW" run --once --tasks "$here/tasks"
show_todos

step "what the admin role (BYPASSRLS) sees"
admin_sql -c "select id, user_id, task, is_complete from todos order by id"

step "checking"
check_result
echo
echo "The database is still running: eval \"\$(deploy/local-pg.sh env)\" to use it,"
echo "deploy/local-pg.sh stop to stop it."
