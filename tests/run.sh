#!/usr/bin/env bash
# Runs every test tier: unit (CTest), integration/security/chaos (pytest
# against a real PostgreSQL the fixtures start), and a short fuzz smoke.
# Installs what it needs first. Exits non-zero when any test fails.
#
#   tests/run.sh             everything, on an ASan+UBSan build
#   tests/run.sh -k cron     pass extra arguments to pytest
# Environment: RLSWORKER_TEST_SANITIZE=0 for a plain build,
#              RLSWORKER_FUZZ_SECONDS (default 10, 0 skips fuzzing).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

"$repo/deploy/install-packages.sh" || exit 1

sanitize=${RLSWORKER_TEST_SANITIZE:-1}
fuzz_seconds=${RLSWORKER_FUZZ_SECONDS:-10}
if [ "$sanitize" = 1 ]; then build=build-asan; else build=build-test; fi
status=0

echo "==> layers (no upward include between folders, no .c file over 650 lines)"
"$repo/tests/check_layers.sh" || status=1

echo "==> building ($build, sanitizers: $sanitize)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DRLSWORKER_SANITIZE="$([ "$sanitize" = 1 ] && echo ON || echo OFF)" >/dev/null || exit 1
cmake --build "$build" -j"$(nproc)" || exit 1

# ASan: fail on errors; leaks in short-lived CLI runs are reported too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "==> browser test driver (playwright-core into tests/browser/node_modules; no browser download)"
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund) || status=1
fi

echo "==> unit tests (ctest)"
(cd "$build" && ctest --output-on-failure) || status=1

echo "==> integration, security and chaos tests (pytest, real PostgreSQL)"
RLSWORKER_BIN="$repo/$build/rlsworker" /usr/bin/python3 -m pytest -p no:cacheprovider \
    -o console_output_style=classic -rfE tests/integration "$@" || status=1

if [ "$fuzz_seconds" != 0 ] && command -v clang >/dev/null; then
    echo "==> fuzz smoke (${fuzz_seconds}s per target)"
    cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DRLSWORKER_FUZZ=ON \
          -DRLSWORKER_TESTS=OFF -DRLSWORKER_SANITIZE=ON >/dev/null || exit 1
    cmake --build build-fuzz -j"$(nproc)" >/dev/null || { echo "fuzz build failed"; exit 1; }
    for f in build-fuzz/fuzz_*; do
        [ -x "$f" ] || continue
        corpus="tests/fuzz/corpus/$(basename "$f" | sed 's/^fuzz_//')"
        mkdir -p "$corpus.run"
        if "$f" -max_total_time="$fuzz_seconds" -print_final_stats=0 "$corpus.run" \
               $( [ -d "$corpus" ] && echo "$corpus" ) >"build-fuzz/$(basename "$f").log" 2>&1; then
            echo "fuzz $(basename "$f"): ok"
        else
            echo "fuzz $(basename "$f"): FAILED (see build-fuzz/$(basename "$f").log)"
            tail -30 "build-fuzz/$(basename "$f").log"
            status=1
        fi
        rm -rf "$corpus.run"
    done
fi

if [ $status = 0 ]; then echo "==> all test tiers passed"; else echo "==> some tests FAILED"; fi
exit $status
