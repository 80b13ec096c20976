#!/usr/bin/env bash
# rlsworker benchmark: prints figures, asserts nothing about speed.
#
#   tests/bench/bench.sh                    throughput + latency on a throwaway cluster
#   QUICK=1 tests/bench/bench.sh            JOBS=10000 RUNS=1, concurrency 1 and 10, 300 samples
#
# Throughput (method of graphile-worker's perfTest, as in ../shared/bench-peers):
# per run a fresh database, `rlsworker migrate`, time `rlsworker run --once` on an
# empty queue (start-up), queue JOBS jobs with ONE add_job statement, CHECKPOINT,
# time `rlsworker run --once --concurrency C` until it exits (queue drained), and
# check that no job is left. jobs_per_s = JOBS / (drain - start-up); raw_jobs_per_s
# includes start-up. Tasks (TASKS):
#   noop          built-in C task; completions are batched (one complete_jobs per batch)
#   user_insert   SQL task add_todo (deploy/demo): run as the restricted role with the
#                 job's claims, one transaction per job that inserts a todo under RLS
#                 and completes the job (exactly-once) = one commit per job
#   user_select1  SQL task `select 1` as the restricted role with claims (the per-job
#                 transaction cost without the table write)
# Latency: a running `rlsworker run` (LISTEN/NOTIFY), SAMPLES sequential user-scoped
# jobs, enqueue -> task start (tests/bench/latency.py), after 100 warm-up jobs; RUNS runs.
# Enqueue (PHASES=enqueue; no worker runs): for each count in ENQ_JOBS, RUNS times on an
# emptied queue, the time of ONE statement (psql's \timing, commit included) that queues
# that many jobs: fn=add_job is the per-row form (ENQ_TASKS' enqueue statement above,
# one add_job call per row), fn=add_jobs the bulk form, one rlsworker.add_jobs(jsonb)
# call with the jobs as a JSON array (built beforehand, sent as a literal), as
# graphile_throughput.sh times graphile_worker.add_jobs (its add_jobs_per_s).
#
# Env: JOBS (20000) RUNS (3) CONCURRENCIES ("1 10 50") TASKS ("noop user_insert")
#      SAMPLES (1000) LAT_CONCURRENCY ("24") PHASES ("throughput latency"; also "scale", "enqueue",
#      "busy_enqueue") BUSY_QUEUED ("0 300000": jobs queued before the worker starts)
#      BUSY_CLIENTS (10) BUSY_SECONDS (5) BUSY_KEYED (0; 1: each client replaces its own job key)
#      SCALE_JOBS ("10000 1000000": queue lengths the scale phase drains, no-op jobs
#      enqueued with add_jobs) SCALE_CONCURRENCY (10) SCALE_RUNS (3: drains of each
#      length, median; a drain of 10 000 lasts a third of a second, so one is noise)
#      ENQ_JOBS ("20000 100000") ENQ_TASKS ("noop user_insert")
#      SYNC_COMMIT (on|off; restored afterwards) CLAIM_BATCH ("default": no --claim-batch, the
#      worker's own default; or a number)
#      PREFETCHES ("default": list of --prefetch values to measure, e.g. "default 0 100";
#      "default" passes no --prefetch, so the worker sizes it from the concurrency)
#      PERF_DIR (unset: when set, each drain runs under `perf record -a -g` into
#      PERF_DIR/TASK-cC-history_H-runR.perf.data; tests/bench/profile.sh reads them)
#      HISTORIES ("on": "on off" also measures each drain with tests/bench/no_history.sql
#      applied, the completion paths without their job_history insert: what history costs)
#      RLSWORKER_BIN (default build-bench/rlsworker, built in Release when missing)
#      RLSWORKER_BINS ("label=path ...": several binaries measured side by side, run by
#      run interleaved, e.g. before and after a change; result lines gain bin=label)
#      BENCH_PEERS_DIR (default <repo>/../shared/bench-peers; its env.sh/start_pg.sh are
#      used when present) REUSE_PG=1: use the already running bench-peers cluster
#      (compare.sh / contender.sh) and leave it running; otherwise a throwaway cluster
#      in a temporary directory on 127.0.0.1:${PGPORT:-55442} is started and removed.
# Result lines:
#   rlsworker task=noop concurrency=10 jobs=20000 runs=3 jobs_per_s=MED (min .. max) raw_jobs_per_s=...
#   rlsworker_latency task=user_latency concurrency=24 samples=1000 runs=3 p50_ms=MED (min .. max) p95_ms=.. p99_ms=.. avg_ms=..
#     ac_p50=MED (min .. max) ac_p99=.. (after the enqueue's commit) enq_p50=.. enq_p99=.. (the enqueue's execute)
#   rlsworker_enqueue fn=add_job task=noop jobs=20000 runs=3 jobs_per_s=MED (min .. max)
#   rlsworker_busy_enqueue history=on queued=300000 clients=10 seconds=5 keyed=0 runs=3 tps=MED (min .. max)
#   rlsworker_scale task=noop concurrency=10 jobs=N runs=3 enqueue_jobs_per_s=MED (min .. max) jobs_per_s=MED (min .. max) jobs_heap_index_mib_queued=H/I drained=H/I vacuumed=H/I
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ "${QUICK:-0}" = 1 ]; then
    : "${JOBS:=10000}" "${RUNS:=1}" "${CONCURRENCIES:=1 10}" "${SAMPLES:=300}" "${ENQ_JOBS:=10000}"
fi
JOBS=${JOBS:-20000}; RUNS=${RUNS:-3}; CONCURRENCIES=${CONCURRENCIES:-1 10 50}
TASKS=${TASKS:-noop user_insert}; SAMPLES=${SAMPLES:-1000}; LAT_CONCURRENCY=${LAT_CONCURRENCY:-24}
PHASES=${PHASES:-throughput latency}; CLAIM_BATCH=${CLAIM_BATCH:-default}
SCALE_JOBS=${SCALE_JOBS:-10000 1000000}
PREFETCHES=${PREFETCHES:-default}; PREFETCH=default
ENQ_JOBS=${ENQ_JOBS:-20000 100000}; ENQ_TASKS=${ENQ_TASKS:-noop user_insert}
HISTORIES=${HISTORIES:-on}; HISTORY=on
BIN=${RLSWORKER_BIN:-$repo/build-bench/rlsworker}
PEERS=${BENCH_PEERS_DIR:-$repo/../shared/bench-peers}
DB=bench_rlsworker
for v in "$JOBS" "$RUNS" "$SAMPLES" "${CLAIM_BATCH//default/0}" ${PREFETCHES//default/0} $ENQ_JOBS; do
    case "$v" in ''|*[!0-9]*) echo "bench: JOBS, RUNS, SAMPLES and CLAIM_BATCH must be whole numbers" >&2; exit 2;; esac
done
for v in $HISTORIES; do
    case "$v" in on|off) ;; *) echo "bench: HISTORIES takes on and off, not $v" >&2; exit 2;; esac
done
case "${BUSY_KEYED:-0}" in 0|1) ;; *) echo "bench: BUSY_KEYED takes 0 or 1, not $BUSY_KEYED" >&2; exit 2;; esac
[ "$JOBS" -le 1000000 ] && [ "$RUNS" -le 20 ] || { echo "bench: at most JOBS=1000000, RUNS=20" >&2; exit 2; }
for v in $ENQ_JOBS; do
    [ "$v" -ge 1 ] && [ "$v" -le 1000000 ] || { echo "bench: ENQ_JOBS counts must be 1..1000000" >&2; exit 2; }
done

# ---- cluster ----------------------------------------------------------------
own_cluster=0
worker_pid=
orig_sync=
work=$(mktemp -d /tmp/rlsworker-bench.XXXXXX)
chmod 755 "$work"

if [ "${REUSE_PG:-0}" != 1 ]; then
    export PGROOT="$work/pg" PGPORT="${PGPORT:-55442}"
fi
if [ -r "$PEERS/env.sh" ]; then
    # shellcheck source=/dev/null
    source "$PEERS/env.sh"
else
    # the same settings as bench-peers' env.sh, for a checkout without ../shared
    : "${PGROOT:=$work/pg}" "${PGPORT:=55442}"
    PGDATA_DIR=$PGROOT/data; PGBIN=/usr/lib/postgresql/15/bin
    if [ "$(id -u)" = 0 ]; then PG_OS_USER=postgres; else PG_OS_USER=$(id -un); fi
    export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=postgres PATH="$PGBIN:$PATH"
    as_pg() { if [ "$(id -un)" = "$PG_OS_USER" ]; then "$@"; else runuser -u "$PG_OS_USER" -- "$@"; fi; }
    pg_running() { [ -f "$PGDATA_DIR/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }
fi

start_own_cluster() {
    if [ -x "$PEERS/start_pg.sh" ]; then
        "$PEERS/start_pg.sh"
    else
        id "$PG_OS_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
        mkdir -p "$PGROOT"
        head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$PGROOT/password"
        chown -R "$PG_OS_USER" "$PGROOT"; chmod 700 "$PGROOT"; chmod 644 "$PGROOT/password"
        as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --pwfile="$PGROOT/password" \
            --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$work/initdb.log" 2>&1 \
            || { cat "$work/initdb.log"; return 1; }
        as_pg sh -c "cat >> '$PGDATA_DIR/postgresql.conf'" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = ''
max_connections = 200
synchronous_commit = on
fsync = on
CONF
        as_pg sh -c "echo 'host all all 127.0.0.1/32 scram-sha-256' > '$PGDATA_DIR/pg_hba.conf'"
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGROOT/postgres.log" -w -t 60 start >/dev/null
        echo "start_pg status=started port=$PGPORT data=$PGDATA_DIR"
    fi
    export PGPASSWORD; PGPASSWORD=$(cat "$PGROOT/password")
}

cleanup() {
    local rc=$?
    if [ -n "$worker_pid" ]; then kill -TERM "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true; fi
    if [ -n "$orig_sync" ] && pg_running; then
        psql -qAtX -c "alter system set synchronous_commit = '$orig_sync'" -c "select pg_reload_conf()" >/dev/null || true
    fi
    if [ "$own_cluster" = 1 ] && pg_running; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null || true
        echo "stop_pg status=stopped data=$PGDATA_DIR"
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${REUSE_PG:-0}" = 1 ]; then
    pg_running || { echo "bench: REUSE_PG=1 but no cluster runs in $PGDATA_DIR" >&2; exit 1; }
else
    if ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE "[:.]$PGPORT\$"; then
        echo "bench: port $PGPORT is in use; set PGPORT" >&2; exit 1
    fi
    own_cluster=1
    start_own_cluster
fi
export PGPASSWORD; PGPASSWORD=$(cat "$PGROOT/password")

# ---- binary -------------------------------------------------------------------
if [ ! -x "$BIN" ]; then
    echo "bench: building $BIN (Release)"
    cmake -S "$repo" -B "$repo/build-bench" -DCMAKE_BUILD_TYPE=Release -DRLSWORKER_TESTS=OFF >/dev/null
    cmake --build "$repo/build-bench" -j"$(nproc)" --target rlsworker >/dev/null
    BIN=$repo/build-bench/rlsworker
fi

for b in ${RLSWORKER_BINS:-}; do
    case "$b" in
    *=*) [ -x "${b#*=}" ] || { echo "bench: RLSWORKER_BINS: ${b#*=} is not an executable" >&2; exit 2; };;
    *) echo "bench: RLSWORKER_BINS takes label=path words, not $b" >&2; exit 2;;
    esac
done
VTAG=history=on; BIN_LABEL=

# ---- roles, tasks -------------------------------------------------------------
owner_pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
auth_pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
psql -qX -v ON_ERROR_STOP=1 -v owner_password="$owner_pw" -v authenticated_password="$auth_pw" \
    -v moderator_password="$auth_pw-m" -v admin_backend_password="$auth_pw-a" \
    -f "$repo/deploy/roles.sql" >/dev/null
url() { echo "postgresql://$1:$2@127.0.0.1:$PGPORT/$DB"; }
export DATABASE_URL; DATABASE_URL=$(url neondb_owner "$owner_pw")
export DATABASE_AUTHENTICATED_URL; DATABASE_AUTHENTICATED_URL=$(url authenticated_backend "$auth_pw")

if [ -n "${SYNC_COMMIT:-}" ]; then
    orig_sync=$(psql -qAtX -c 'show synchronous_commit')
    psql -qAtX -c "alter system set synchronous_commit = '$SYNC_COMMIT'" -c "select pg_reload_conf()" >/dev/null
    sleep 0.5
fi
sync_now=$(psql -qAtX -c 'show synchronous_commit')

tasks=$work/tasks
mkdir -p "$tasks"
cp "$repo/deploy/demo/tasks/add_todo.sql" "$tasks/"
cat > "$tasks/bench_select1.sql" <<'SQL'
-- task: bench.select1
-- run_as: user
select 1;
SQL
cat > "$tasks/bench_latency.sql" <<'SQL'
-- task: bench.latency
-- run_as: user
insert into bench_latency (n, enqueued_at, started_at)
values (:n::int, :t0::timestamptz, clock_timestamp());
select pg_notify('rlsworker_bench', :n::text);
SQL

# A fresh database: demo schema (todos under RLS), the latency table, the queue.
fresh_db() {
    PGOPTIONS="-c client_min_messages=warning" psql -qX -v ON_ERROR_STOP=1 -c "drop database if exists $DB with (force)" \
        -c "create database $DB owner neondb_owner" >/dev/null
    psql -qX -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f "$repo/deploy/demo/schema.sql" >/dev/null
    psql -qX -v ON_ERROR_STOP=1 -d "$DATABASE_URL" >/dev/null <<'SQL'
create table bench_latency (
    n           int primary key,
    enqueued_at timestamptz not null,
    started_at  timestamptz not null,
    user_id     text not null default (auth.user_id())
);
alter table bench_latency enable row level security;
grant insert on bench_latency to authenticated_backend;
create policy bench_latency_own on bench_latency for insert to authenticated_backend
    with check ((select auth.user_id()) = user_id);
SQL
    "$BIN" migrate --log-level warning >/dev/null
    # history=off: the completion paths without their job_history insert (bench only)
    [ "$HISTORY" = on ] || psql -qX -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f "$here/no_history.sql" >/dev/null
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# The worker's defaults (the pools and the prefetch are sized from --concurrency)
# unless PREFETCHES names a number. Records the largest VmRSS seen while it ran
# (sampled every 50 ms) in $work/rss_kib.
run_once() { # concurrency
    local pid rss max=0 pf=()
    [ "$PREFETCH" = default ] || pf=(--prefetch "$PREFETCH")
    [ "$CLAIM_BATCH" = default ] || pf+=(--claim-batch "$CLAIM_BATCH")
    local under=()   # profile: the whole machine while the worker runs
    [ -z "${2:-}" ] || under=(perf record -q -a -g -o "$2" --)
    "${under[@]}" "$BIN" run --once --tasks "$tasks" --concurrency "$1" \
        "${pf[@]}" --log-level warning &
    pid=$!
    local pm; pm=$(head -1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$rss" ] && [ "$rss" -gt "$max" ] && max=$rss
        # profile: the processes of this drain (the worker under perf, this
        # cluster's backends), so the report can leave out everything else
        [ -z "${2:-}" ] || [ -s "$2.pids" ] || { sleep 0.5; pgrep -P "$pid"; [ -z "$pm" ] || pgrep -P "$pm"; } > "$2.pids" 2>/dev/null || true
        sleep 0.05
    done
    echo "$max" > "$work/rss_kib"
    wait "$pid"
}
q() { psql -qAtX -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c "$1"; }
# median / min / max of the numbers on stdin, graphile's format
mmm() { sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f (min %.0f max %.0f)", m, a[1], a[NR]}'; }

enqueue_sql() { # task jobs
    local claims="claims => jsonb_build_object('sub', 'user' || (i % 100), 'role', 'authenticated')"
    case "$1" in
    noop) echo "select count(rlsworker.add_job('noop')) from generate_series(1, $2) i";;
    user_insert) echo "select count(rlsworker.add_job('add_todo', jsonb_build_object('title', 't' || i), $claims)) from generate_series(1, $2) i";;
    user_select1) echo "select count(rlsworker.add_job('bench.select1', '{}', $claims)) from generate_series(1, $2) i";;
    *) echo "bench: unknown task $1 (noop, user_insert, user_select1)" >&2; return 1;;
    esac
}

throughput_run() { # task concurrency run -> prints "jps raw"
    local task=$1 c=$2 r=$3 t0 startup queue drain left done_rows rss
    fresh_db
    t0=$(now_ms); run_once "$c"; startup=$(( $(now_ms) - t0 ))
    t0=$(now_ms); q "$(enqueue_sql "$task" "$JOBS")" >/dev/null; queue=$(( $(now_ms) - t0 ))
    psql -qAtX -c "checkpoint" >/dev/null
    local perf_file=
    [ -z "${PERF_DIR:-}" ] || perf_file=$PERF_DIR/$task-c$c-history_$HISTORY-run$r.perf.data
    t0=$(now_ms); run_once "$c" "$perf_file"; drain=$(( $(now_ms) - t0 )); rss=$(cat "$work/rss_kib")
    left=$(q "select count(*) from rlsworker.jobs")
    [ "$left" = 0 ] || { echo "bench: $left jobs left after draining ($task, concurrency $c)" >&2; return 1; }
    if [ "$task" = user_insert ]; then
        done_rows=$(q "select count(*) from todos")
        [ "$done_rows" = "$JOBS" ] || { echo "bench: $done_rows todos for $JOBS jobs" >&2; return 1; }
    fi
    awk -v j="$JOBS" -v d="$drain" -v s="$startup" -v qm="$queue" -v r="$r" -v t="$task" -v c="$c" -v rss="$rss" -v h="$VTAG" 'BEGIN{
        printf "  run %d: task=%s %s concurrency=%d startup_ms=%d queue_ms=%d drain_ms=%d jobs_per_s=%.1f raw_jobs_per_s=%.1f rss_max_kib=%d\n",
            r, t, h, c, s, qm, d, 1000*j/(d-s), 1000*j/d, rss > "/dev/stderr"
        printf "%.1f %.1f %d\n", 1000*j/(d-s), 1000*j/d, rss }'
}

# The variants measured side by side, interleaved run by run: every binary of
# RLSWORKER_BINS ("label=path ...", default the one binary) with every HISTORIES.
variants() { local b h; for b in ${RLSWORKER_BINS:-=$BIN}; do for h in $HISTORIES; do echo "$b@$h"; done; done; }
vfile() { echo "$work/$1.$(echo "$2" | md5sum | cut -c1-8)"; }   # kind variant: its results file
use_variant() { # label=path@history
    BIN_LABEL=${1%%=*}; local rest=${1#*=}; BIN=${rest%@*}; HISTORY=${rest##*@}
    VTAG=${BIN_LABEL:+bin=$BIN_LABEL }history=$HISTORY
}
throughput() {
    local task c r out v
    for task in $TASKS; do
        enqueue_sql "$task" 1 >/dev/null || exit 2
        for PREFETCH in $PREFETCHES; do for c in $CONCURRENCIES; do
            for v in $(variants); do : > "$(vfile tp "$v")"; done
            for r in $(seq "$RUNS"); do for v in $(variants); do
                use_variant "$v"
                throughput_run "$task" "$c" "$r" >> "$(vfile tp "$v")"
            done; done
            for v in $(variants); do
                use_variant "$v"
                out=$(vfile tp "$v")
                echo "rlsworker task=$task concurrency=$c prefetch=$PREFETCH claim_batch=$CLAIM_BATCH $VTAG sync_commit=$sync_now jobs=$JOBS runs=$RUNS" \
                    "jobs_per_s=$(cut -d' ' -f1 "$out" | mmm) raw_jobs_per_s=$(cut -d' ' -f2 "$out" | mmm)" \
                    "rss_max_kib=$(cut -d' ' -f3 "$out" | sort -g | tail -1)"
            done
        done; done
    done
}

latency_run() { # concurrency -> "p50_ms=.. p95_ms=.. ..." of one run
    "$BIN" run --tasks "$tasks" --concurrency "$1" --log-level "${LAT_LOG_LEVEL:-info}" \
        > "$work/worker.log" 2>&1 &
    worker_pid=$!
    if ! SAMPLES=$SAMPLES /usr/bin/python3 "$here/latency.py"; then
        echo "bench: latency run failed; the worker's log ends with:" >&2
        tail -n 30 "$work/worker.log" >&2
        return 1
    fi
    kill -TERM "$worker_pid"; wait "$worker_pid" || true; worker_pid=
}

latency() {
    local c r out k v
    for c in $LAT_CONCURRENCY; do
        for v in $(variants); do : > "$(vfile lat "$v")"; done
        for r in $(seq "$RUNS"); do for v in $(variants); do
            use_variant "$v"
            out=$(vfile lat "$v")
            fresh_db
            latency_run "$c" | tee -a "$out" | sed "s/^/  run $r ($VTAG): /" >&2
            [ "${PIPESTATUS[0]}" = 0 ] || return 1
        done; done
        for v in $(variants); do
            use_variant "$v"
            out=$(vfile lat "$v")
            line=
            # ac_*: after the enqueue's commit (the worker's part); enq_*: the enqueue itself
            for k in p50_ms p95_ms p99_ms avg_ms min_ms max_ms ac_p50 ac_p99 enq_p50 enq_p99; do
                line="$line $k=$(grep -o "$k=[0-9.]*" "$out" | cut -d= -f2 |
                    sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2;
                    printf "%.2f (min %.2f max %.2f)", m, a[1], a[NR]}')"
            done
            echo "rlsworker_latency task=user_latency concurrency=$c $VTAG sync_commit=$sync_now samples=$SAMPLES runs=$RUNS$line"
        done
    done
}

# Scale: the same no-op drain with SCALE_JOBS queued, smallest first: does a
# long queue slow the claim? Sizes of rlsworker.jobs (heap, indexes) after the
# enqueue, after the drain, and after a plain VACUUM, in MiB.
sizes() { q "select round(pg_table_size('rlsworker.jobs') / 1048576.0, 1) || ' '
                 || round(pg_indexes_size('rlsworker.jobs') / 1048576.0, 1)"; }
scale() {
    local n t0 startup enq drain left c=${SCALE_CONCURRENCY:-10} s1 s2 s3 i chunk run
    local rates enqs
    for n in $SCALE_JOBS; do
        rates=() enqs=()
        for (( run = 1; run <= ${SCALE_RUNS:-3}; run++ )); do
            fresh_db
            t0=$(now_ms); run_once "$c"; startup=$(( $(now_ms) - t0 ))
            t0=$(now_ms)
            for (( i = 0; i < n; i += 100000 )); do   # add_jobs, 100 000 jobs a call
                chunk=$(( n - i < 100000 ? n - i : 100000 ))
                q "select count(*) from rlsworker.add_jobs((select jsonb_agg(jsonb_build_object('task', 'noop'))
                   from generate_series(1, $chunk)))" >/dev/null
            done
            enq=$(( $(now_ms) - t0 ))
            q "analyze rlsworker.jobs" >/dev/null; s1=$(sizes)
            psql -qAtX -c "checkpoint" >/dev/null
            t0=$(now_ms); run_once "$c"; drain=$(( $(now_ms) - t0 ))
            left=$(q "select count(*) from rlsworker.jobs")
            [ "$left" = 0 ] || { echo "bench: $left jobs left after the scale drain of $n" >&2; return 1; }
            s2=$(sizes); q "vacuum rlsworker.jobs" >/dev/null; s3=$(sizes)
            enqs+=("$(( n * 1000 / (enq > 0 ? enq : 1) ))")
            rates+=("$(( n * 1000 / (drain - startup > 0 ? drain - startup : 1) ))")
            echo "  run $run: scale jobs=$n startup_ms=$startup drain_ms=$drain jobs_per_s=${rates[-1]}" >&2
        done
        echo "rlsworker_scale task=noop concurrency=$c jobs=$n runs=${SCALE_RUNS:-3}" \
            "enqueue_jobs_per_s=$(printf '%s\n' "${enqs[@]}" | mmm)" \
            "jobs_per_s=$(printf '%s\n' "${rates[@]}" | mmm)" \
            "jobs_heap_index_mib_queued=${s1// //} drained=${s2// //} vacuumed=${s3// //}"
    done
}

# The JSON array add_jobs takes for JOBS jobs of a task, as enqueue_sql queues them.
add_jobs_json() { # task jobs
    local claims="'claims', jsonb_build_object('sub', 'user' || (i % 100), 'role', 'authenticated')"
    case "$1" in
    noop) q "select jsonb_agg(jsonb_build_object('task', 'noop', 'payload', jsonb_build_object('id', i)) order by i) from generate_series(1, $2) i";;
    user_insert) q "select jsonb_agg(jsonb_build_object('task', 'add_todo', 'payload', jsonb_build_object('title', 't' || i), $claims) order by i) from generate_series(1, $2) i";;
    user_select1) q "select jsonb_agg(jsonb_build_object('task', 'bench.select1', $claims) order by i) from generate_series(1, $2) i";;
    *) echo "bench: unknown task $1 (noop, user_insert, user_select1)" >&2; return 1;;
    esac
}

# ms of the last statement of the psql script on stdin (\timing; a fresh
# connection, so the connection set-up is not counted)
timed_ms() {
    { echo '\timing on'; cat; } | psql -qAtX -v ON_ERROR_STOP=1 -d "$DATABASE_URL" |
        awk '/^Time: /{ms=$2} END{if (ms == "") exit 1; print ms}'
}

enqueue() {
    local task n r fn out ms json left
    fresh_db
    for task in $ENQ_TASKS; do
        enqueue_sql "$task" 1 >/dev/null || exit 2
        for n in $ENQ_JOBS; do
            json=$work/enq.json
            add_jobs_json "$task" "$n" > "$json"
            for fn in add_job add_jobs; do
                out=$work/enq.out; : > "$out"
                for r in $(seq "$RUNS"); do
                    q "truncate rlsworker.jobs" >/dev/null
                    if [ "$fn" = add_job ]; then
                        ms=$(enqueue_sql "$task" "$n" | timed_ms)
                    else
                        ms=$(printf '%s\n' "\\set js \`cat $json\`" \
                                "select count(*) from rlsworker.add_jobs(:'js')" | timed_ms)
                    fi
                    left=$(q "select count(*) from rlsworker.jobs")
                    [ "$left" = "$n" ] || { echo "bench: $fn queued $left jobs, not $n" >&2; return 1; }
                    awk -v n="$n" -v ms="$ms" -v r="$r" -v f="$fn" -v t="$task" 'BEGIN{
                        printf "  run %d: fn=%s task=%s jobs=%d ms=%.1f jobs_per_s=%.0f\n", r, f, t, n, ms, 1000*n/ms > "/dev/stderr"
                        printf "%.1f\n", 1000*n/ms }' >> "$out"
                done
                echo "rlsworker_enqueue fn=$fn task=$task sync_commit=$sync_now jobs=$n runs=$RUNS" \
                    "jobs_per_s=$(mmm < "$out")"
            done
        done
    done
    q "truncate rlsworker.jobs" >/dev/null
}

# Enqueue beside a running worker (PHASES=busy_enqueue): for each count in
# BUSY_QUEUED, a fresh database with that many no-op jobs queued, `rlsworker
# run` (concurrency 10) started, and after a second BUSY_CLIENTS pgbench
# clients calling `select rlsworker.add_job('noop')`, one transaction each,
# for BUSY_SECONDS. With jobs queued the worker is busy draining them; with
# none it waits for work, so every enqueue notifies it. BUSY_KEYED=1: each
# client calls add_job with a job key of its own, so after its first call
# each one replaces its queued job (a debounce; migration 021).
busy_enqueue() {
    local n r v out tps left pid script=$work/busy_enqueue.sql
    if [ "${BUSY_KEYED:-0}" = 1 ]; then
        echo "select rlsworker.add_job('noop', job_key => 'debounce-' || :client_id);" > "$script"
    else
        echo "select rlsworker.add_job('noop');" > "$script"
    fi
    for n in ${BUSY_QUEUED:-0 300000}; do
        for v in $(variants); do : > "$(vfile busy "$v")"; done
        for r in $(seq "$RUNS"); do for v in $(variants); do
            use_variant "$v"
            out=$(vfile busy "$v")
            fresh_db
            [ "$n" = 0 ] || q "select count(*) from rlsworker.add_jobs((select jsonb_agg(jsonb_build_object('task', 'noop'))
                                  from generate_series(1, $n)))" >/dev/null
            psql -qAtX -c "checkpoint" >/dev/null
            "$BIN" run --tasks "$tasks" --concurrency 10 --log-level warning &
            pid=$!
            sleep 1
            tps=$(pgbench -n -M prepared -c "${BUSY_CLIENTS:-10}" -j 2 -T "${BUSY_SECONDS:-5}" \
                      -f "$script" "$DATABASE_URL" 2>&1 | awk '/^tps/{printf "%.0f", $3}')
            left=$(q "select count(*) from rlsworker.jobs")
            kill -TERM "$pid"; wait "$pid" || true
            [ -n "$tps" ] || { echo "bench: pgbench printed no tps" >&2; return 1; }
            echo "  run $r ($VTAG): busy_enqueue queued=$n tps=$tps left_after=$left" >&2
            echo "$tps" >> "$out"
        done; done
        for v in $(variants); do
            use_variant "$v"
            echo "rlsworker_busy_enqueue${VTAG:+ $VTAG} queued=$n clients=${BUSY_CLIENTS:-10}" \
                "seconds=${BUSY_SECONDS:-5} keyed=${BUSY_KEYED:-0} runs=$RUNS tps=$(mmm < "$(vfile busy "$v")")"
        done
    done
}

echo "# rlsworker $("$BIN" --version 2>/dev/null | head -1) $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null)," \
    "$(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), synchronous_commit=$sync_now"
for ph in $PHASES; do
    case "$ph" in
    throughput) throughput;;
    latency) latency;;
    scale) scale;;
    enqueue) enqueue;;
    busy_enqueue) busy_enqueue;;
    *) echo "bench: unknown phase $ph (throughput, latency, scale, enqueue, busy_enqueue)" >&2; exit 2;;
    esac
done
