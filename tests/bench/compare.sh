#!/usr/bin/env bash
# rlsworker beside Graphile Worker, pg-boss and pgbench ceilings, IN ONE RUN on one
# throwaway cluster (../shared/bench-peers' start_pg.sh: 127.0.0.1 only, PostgreSQL
# defaults, synchronous_commit=on). Prints every result line together at the end.
#
#   tests/bench/compare.sh             full: JOBS=20000 RUNS=3, concurrency 1 10 50, 1000 samples (~30 min on 2 cores)
#   QUICK=1 tests/bench/compare.sh     JOBS=10000 RUNS=1, concurrency 1 10, 300 samples (~5 min)
#
# Phases (PHASES=..., default all, in this order):
#   limits     pg_limit.sh claim_delete + batch100 (pgbench: the cluster's ceilings)
#   graphile   graphile_throughput.sh, batched and unbatched, at each concurrency; and
#              batched with TASK=add_todo_rls (the user-scoped RLS insert) at each concurrency
#   pgboss     pgboss_throughput.sh, pg-boss 10.4.2, batch_size 100, concurrency 10
#   rlsworker  tests/bench/contender.sh (bench.sh throughput + latency + enqueue: add_job
#              and add_jobs of ENQ_JOBS jobs, beside graphile_worker's add_jobs_per_s)
#   latency    graphile_latency.sh (batched, concurrency 24)
# Env: BENCH_PEERS_DIR (default <repo>/../shared/bench-peers; not modified), PGPORT (55452),
#      RESULTS_DIR (default <repo>/build-bench/results), SYNC_COMMIT (on|off for the whole run).
# Needs node + npm: the peers are npm-installed into $PEERS_DIR (/tmp/peers) by their scripts.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
peers=${BENCH_PEERS_DIR:-$repo/../shared/bench-peers}
[ -r "$peers/env.sh" ] || { echo "compare: no bench-peers harness at $peers; set BENCH_PEERS_DIR" >&2; exit 1; }
peers=$(cd "$peers" && pwd)

if [ "${QUICK:-0}" = 1 ]; then
    JOBS=${JOBS:-10000}; RUNS=${RUNS:-1}; CONCS=${CONCURRENCIES:-1 10}; SAMPLES=${SAMPLES:-300}
    LIMIT_CLIENTS=${LIMIT_CLIENTS:-1 10}
else
    JOBS=${JOBS:-20000}; RUNS=${RUNS:-3}; CONCS=${CONCURRENCIES:-1 10 50}; SAMPLES=${SAMPLES:-1000}
    LIMIT_CLIENTS=${LIMIT_CLIENTS:-1 10 50}
fi
PHASES=${PHASES:-limits graphile pgboss rlsworker latency}

work=$(mktemp -d /tmp/rlsworker-compare.XXXXXX)
chmod 755 "$work"
export PGROOT="$work/pg" PGPORT="${PGPORT:-55452}" BENCH_PEERS_DIR="$peers" RUNS
# shellcheck source=/dev/null
source "$peers/env.sh"
RESULTS_DIR=${RESULTS_DIR:-$repo/build-bench/results}
mkdir -p "$RESULTS_DIR"
ts=$(date +%Y%m%d-%H%M%S)
LOGF=$RESULTS_DIR/compare.$ts.log
RESF=$RESULTS_DIR/compare.$ts.results

cleanup() {
    "$peers/stop_pg.sh" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run() { # VAR=value ... command: log all, keep the result lines
    local tmp=$work/run.out rc
    echo "+ $*" | tee -a "$LOGF"
    env "$@" 2>&1 | tee -a "$LOGF" > "$tmp"; rc=${PIPESTATUS[0]}
    grep -E '^(pg_limit|graphile_worker|pgboss|contender)' "$tmp" >> "$RESF"
    [ "$rc" = 0 ] || echo "FAILED rc=$rc: $*" | tee -a "$RESF"
}

{
    echo "# compare $ts quick=${QUICK:-0} jobs=$JOBS runs=$RUNS concurrencies=\"$CONCS\" samples=$SAMPLES phases=\"$PHASES\""
    echo "# host: $(uname -srm), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); node $(node -v 2>/dev/null); $("$PGBIN/postgres" --version)"
    echo "# rlsworker $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null)"
} | tee -a "$LOGF" > "$RESF"

SYNC_COMMIT=${SYNC_COMMIT:-on} "$peers/start_pg.sh" 2>&1 | tee -a "$LOGF" || exit 1
pg_running || { echo "compare: the cluster did not start; see $LOGF" >&2; exit 1; }

for ph in $PHASES; do
    echo "## phase $ph $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$LOGF" >> "$RESF"
    case "$ph" in
    limits)
        run CLIENTS="$LIMIT_CLIENTS" JOBS="$JOBS" BATCH_JOBS=$((JOBS * 10)) "$peers/pg_limit.sh" claim_delete batch100 ;;
    graphile)
        for m in batched unbatched; do for c in $CONCS; do
            run MODE=$m CONCURRENCY="$c" JOBS="$JOBS" PARALLEL=1 "$peers/graphile_throughput.sh"
        done; done
        # the user-scoped job (restricted role, claims, RLS-checked insert), the
        # same transaction as rlsworker's user_insert, in Graphile's batched mode
        for c in $CONCS; do
            run MODE=batched TASK=add_todo_rls CONCURRENCY="$c" JOBS="$JOBS" PARALLEL=1 "$peers/graphile_throughput.sh"
        done ;;
    pgboss)
        run CONCURRENCY=10 BATCH_SIZE=100 JOBS="$JOBS" "$peers/pgboss_throughput.sh" ;;
    rlsworker)
        run PHASES="throughput latency enqueue" JOBS="$JOBS" CONCURRENCIES="$CONCS" SAMPLES="$SAMPLES" \
            ENQ_JOBS="${ENQ_JOBS:-$JOBS}" \
            PREFETCHES="${PREFETCHES:-default}" "$here/contender.sh" ;;
    latency)
        run MODE=batched CONCURRENCY=24 SAMPLES="$SAMPLES" "$peers/graphile_latency.sh" ;;
    *) echo "compare: unknown phase $ph" | tee -a "$LOGF" ;;
    esac
done
echo "## done $(date +%T)" >> "$RESF"
echo
echo "==== results ($RESF; full log $LOGF)"
cat "$RESF"
