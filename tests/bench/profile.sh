#!/usr/bin/env bash
# Where the time goes during a drain: runs tests/bench/bench.sh's throughput
# phase with every drain under `perf record -a -g` (the whole machine: the
# worker, the PostgreSQL backends, everything else), then prints for each
# drain the share of CPU samples per process and the hottest functions.
#
#   tests/bench/profile.sh                 noop and user_insert, concurrency 10, 20000 jobs
#   TASKS=noop CONCURRENCIES=1 tests/bench/profile.sh
#
# Env: every bench.sh variable; PERF_DIR (default build-bench/perf, kept for
# `perf report -i FILE`), TOP (25: functions listed per drain). Needs perf
# (linux-perf) and root or kernel.perf_event_paranoid <= 0 for -a.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
command -v perf >/dev/null || { echo "profile: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
export PERF_DIR=${PERF_DIR:-$repo/build-bench/perf}
mkdir -p "$PERF_DIR"
rm -f "$PERF_DIR"/*.perf.data
TASKS=${TASKS:-noop user_insert} CONCURRENCIES=${CONCURRENCIES:-10} RUNS=${RUNS:-1} \
    JOBS=${JOBS:-20000} PHASES=throughput "$here/bench.sh"
for f in "$PERF_DIR"/*.perf.data; do
    echo
    echo "== $(basename "$f" .perf.data): CPU samples per process"
    perf report -i "$f" --stdio --no-children --sort comm 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -8
    echo "== $(basename "$f" .perf.data): hottest functions (process, library, symbol)"
    perf report -i "$f" --stdio --no-children --sort comm,dso,sym -g none 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -"${TOP:-25}"
done
