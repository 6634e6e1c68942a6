#!/usr/bin/env bash
# The distributed tests under load, many times in a row (not part of `make test`):
#   bash tests/stress_distributed.sh [RUNS=20] [BUSY=2]
# starts BUSY busy-loop processes, runs tests/test_distributed.py RUNS times, prints one line per run and
# exits 1 if any run failed (its output is kept in $TMPDIR/stress-distributed-N.log).
set -u
cd "$(dirname "$0")/.."
runs=${1:-20}
busy=${2:-2}
pids=()
for _ in $(seq "$busy"); do python3 -c 'while True: pass' & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
passed=0
for i in $(seq "$runs"); do
    log="${TMPDIR:-/tmp}/stress-distributed-$i.log"
    start=$(date +%s)
    if .venv/bin/pytest -q -p no:cacheprovider tests/test_distributed.py > "$log" 2>&1; then
        passed=$((passed + 1))
        echo "run $i: passed in $(($(date +%s) - start)) s, load $(cut -d' ' -f1 /proc/loadavg)"
    else
        echo "run $i: FAILED in $(($(date +%s) - start)) s, load $(cut -d' ' -f1 /proc/loadavg) (see $log)"
    fi
done
echo "$passed of $runs passed beside $busy busy loop(s)"
[ "$passed" -eq "$runs" ]
