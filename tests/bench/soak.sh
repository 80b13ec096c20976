#!/usr/bin/env bash
# Soak benchmark: memory and file descriptors over a long run (issue 14).
#
#   tests/bench/soak.sh                  five minutes
#   SOAK_SECONDS=60 tests/bench/soak.sh  a quick run
#
# One `rlsworker run` (concurrency 8) on a throw-away cluster (the test
# fixtures' own, tests/helpers.py) while the driver enqueues SOAK_RATE (100)
# jobs a second, cancels a long-running job every SOAK_CANCEL_EVERY (3) s,
# and terminates every rlsworker connection (pg_terminate_backend) every
# SOAK_TERMINATE_EVERY (10) s. Prints the worker's VmRSS and number of open
# descriptors (/proc/PID/fd) after a warm-up and after the drain, and fails
# only if a job was lost or run twice. Figures: docs/benchmarks.md.
# Env: RLSWORKER_BIN (default build/rlsworker), SOAK_SECONDS (300), SOAK_RATE,
#      SOAK_CANCEL_EVERY, SOAK_TERMINATE_EVERY.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=python3
command -v /usr/bin/python3 >/dev/null && python=/usr/bin/python3
exec "$python" "$here/soak.py"
