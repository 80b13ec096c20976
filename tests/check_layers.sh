#!/usr/bin/env bash
# Checks the include graph between folders: a file may include headers of
# its own folder and of folders in LOWER layers only (no upward include, so
# no cycle). The order is the one of docs/architecture.md and CMakeLists.txt.
# Also checks that no .c file of worker/, jobs/, scheduler/ or tests/unit/
# is over MAX_LINES lines (issue 10: one file, one concern).
# Exits 1 and names each offending #include and each file too long.
set -uo pipefail
cd "$(dirname "$0")/.."

# bottom to top; folders on one line are peers of one layer and may not
# include each other
layers=(
    "worker/base"
    "worker/pg worker/net jobs/task"
    "worker/auth worker/checks"
    "jobs/builtin"
    "jobs/exec"
    "scheduler/cron"
    "scheduler"
    "worker/http"
    "worker/cli"
)

declare -A rank
for i in "${!layers[@]}"; do
    for d in ${layers[$i]}; do rank[$d]=$i; done
done

status=0
while IFS= read -r file; do
    dir=$(dirname "$file")
    if [ -z "${rank[$dir]+x}" ]; then
        echo "check_layers: $file: folder $dir is in no layer; add it to tests/check_layers.sh"
        status=1
        continue
    fi
    while IFS= read -r inc; do
        idir=$(dirname "$inc")
        [ "$idir" = "$dir" ] && continue
        if [ -z "${rank[$idir]+x}" ]; then
            echo "check_layers: $file includes \"$inc\" from $idir, which is in no layer"
            status=1
        elif [ "${rank[$idir]}" -ge "${rank[$dir]}" ]; then
            echo "check_layers: $file includes \"$inc\": $idir is not below $dir"
            status=1
        fi
    done < <(sed -n 's/^#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file")
done < <(find worker jobs scheduler -name '*.[ch]' | sort)

MAX_LINES=650
while IFS= read -r file; do
    n=$(wc -l < "$file")
    if [ "$n" -gt "$MAX_LINES" ]; then
        echo "check_layers: $file has $n lines, more than $MAX_LINES: split it along a seam" \
             "of concern into two files of its folder, with what both halves share in a" \
             "private *_int.h (as jobs/exec/executor_sql.c and worker/pg/pgconn_connect.c" \
             "were split off)"
        status=1
    fi
done < <(find worker jobs scheduler tests/unit -name '*.c' | sort)

[ "$status" = 0 ] && echo "check_layers: ok (${#rank[@]} folders, no upward include, no .c over $MAX_LINES lines)"
exit "$status"
