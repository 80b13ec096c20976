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
rm -f "$PERF_DIR"/*.perf.data "$PERF_DIR"/*.pids
TASKS=${TASKS:-noop user_insert} CONCURRENCIES=${CONCURRENCIES:-10} RUNS=${RUNS:-1} \
    JOBS=${JOBS:-20000} PHASES=throughput "$here/bench.sh"
for f in "$PERF_DIR"/*.perf.data; do
    pids=$(sort -un "$f.pids" 2>/dev/null | paste -sd, -)
    echo
    echo "== $(basename "$f" .perf.data): CPU samples per process, whole machine"
    perf report -i "$f" --stdio --no-children --sort comm 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -8 || true
    [ -n "$pids" ] || continue
    # perf report's --pid filter misses processes forked before the recording,
    # so the split by process and symbol is summed here from --sort pid,...
    echo "== $(basename "$f" .perf.data): the drain's own processes (the worker, the cluster's backends)"
    perf report -i "$f" --stdio --no-children --sort pid -g none 2>/dev/null \
        | awk -v pids="$pids" 'BEGIN{n=split(pids,a,","); for(i=1;i<=n;i++) keep[a[i]]=1}
            $1 ~ /%$/ { split($2,p,":"); if (p[1] in keep) { sub("%","",$1); t[p[2]]+=$1; all+=$1 } }
            END{ for (c in t) printf "    %6.2f%%  %s\n", t[c], c; printf "    %6.2f%%  (together, of all samples)\n", all }' \
        | sort -rn || true
    echo "== $(basename "$f" .perf.data): their hottest functions (process, library, symbol; % of all samples)"
    perf report -i "$f" --stdio --no-children --sort pid,dso,sym -g none 2>/dev/null \
        | awk -v pids="$pids" 'BEGIN{n=split(pids,a,","); for(i=1;i<=n;i++) keep[a[i]]=1}
            $1 ~ /%$/ { split($2,p,":"); if (p[1] in keep) { sub("%","",$1);
                k=p[2] "  " $3; for (i=5;i<=NF;i++) k=k " " $i; t[k]+=$1 } }
            END{ for (k in t) printf "    %6.2f%%  %s\n", t[k], k }' \
        | sort -rn | head -"${TOP:-25}" || true
done
