#!/usr/bin/env bash
# rlsworker as a bench-peers contender (../shared/bench-peers, "Adding a contender").
# Runs tests/bench/bench.sh on the bench-peers cluster that is already running
# (REUSE_PG=1: own database bench_rlsworker, cluster left running) and prints its
# result lines in the contender shape, so run_all.sh's grep puts them next to the peers':
#   contender name=rlsworker task=noop concurrency=10 ... jobs_per_s=MED (min .. max)
#   contender_latency name=rlsworker task=user_latency concurrency=24 ... p50_ms=.. p95_ms=.. p99_ms=..
#   contender_enqueue name=rlsworker fn=add_jobs task=noop jobs=20000 ... jobs_per_s=MED (min .. max)
# Works from tests/bench/ (finds ../shared/bench-peers, or BENCH_PEERS_DIR) and when
# symlinked as <bench-peers>/contenders/rlsworker.sh (uses that bench-peers directory).
# Every bench.sh variable (JOBS, RUNS, CONCURRENCIES, TASKS, SAMPLES, QUICK, ...) passes through.
set -euo pipefail
self=$(readlink -f "$0")
repo=$(cd "$(dirname "$self")/../.." && pwd)
called_from=$(cd "$(dirname "$0")" && pwd)
if [ -r "$called_from/../env.sh" ]; then
    peers=$(cd "$called_from/.." && pwd)
else
    peers=${BENCH_PEERS_DIR:-$repo/../shared/bench-peers}
fi
[ -r "$peers/env.sh" ] || { echo "contender: no bench-peers harness at $peers; set BENCH_PEERS_DIR" >&2; exit 1; }
# shellcheck source=/dev/null
source "$peers/env.sh"; require_pg
REUSE_PG=1 BENCH_PEERS_DIR="$peers" "$repo/tests/bench/bench.sh" 2>&1 \
    | sed -u -e 's/^rlsworker_latency /contender_latency name=rlsworker /' \
             -e 's/^rlsworker_enqueue /contender_enqueue name=rlsworker /' \
             -e 's/^rlsworker /contender name=rlsworker /'
exit "${PIPESTATUS[0]}"
