#!/usr/bin/env bash
# valgrind memcheck over the lab solutions, or over the scripts named:
#
#   bash scripts/valgrind.sh                      # every solutions/lab*/*.lua
#   bash scripts/valgrind.sh solutions/lab1/basic_async_await.lua
#
# Each script runs under `valgrind --error-exitcode=1 --leak-check=full`
# (definite and possible leaks count as errors) with LAB_TIME_SCALE=0.05
# (the labs' delays 20 times shorter; set it to change).  The executable
# is build-valgrind/asynchost, built here without mimalloc (valgrind copes
# with mimalloc too, but the C library's malloc is what its reports know
# best), unless ASYNCHOST_VALGRIND_BIN names one.  Prints one line per
# script (errors, leaked bytes, allocations, seconds) and the log of any
# that fails; exits 1 if one did, 2 if valgrind is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
  echo "valgrind.sh: valgrind is not installed (bash scripts/deps.sh)" >&2
  exit 2
fi

bin=${ASYNCHOST_VALGRIND_BIN:-}
if [ -z "$bin" ]; then
  cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DASYNCHOST_MIMALLOC=OFF -DASYNCHOST_TESTS=OFF >/dev/null
  cmake --build build-valgrind -j"$(nproc 2>/dev/null || echo 2)" \
        --target asynchost >/dev/null
  bin=build-valgrind/asynchost
fi

scripts=("$@")
if [ ${#scripts[@]} -eq 0 ]; then
  mapfile -t scripts < <(ls solutions/lab*/*.lua 2>/dev/null | sort)
fi
if [ ${#scripts[@]} -eq 0 ]; then
  echo "valgrind.sh: no script to run" >&2
  exit 2
fi

export LAB_TIME_SCALE=${LAB_TIME_SCALE:-0.05}
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
failed=0
total=0
printf '%-45s %6s %8s %9s %7s\n' script errors leaked allocs seconds
for s in "${scripts[@]}"; do
  log="$logdir/$(basename "$s").log"
  t0=$(date +%s.%N)
  rc=0
  valgrind --error-exitcode=101 --leak-check=full \
           --errors-for-leak-kinds=definite,possible --log-file="$log" \
           "$bin" "$s" >"$log.out" 2>&1 </dev/null || rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  total=$(awk -v a="$total" -v b="$secs" 'BEGIN { printf "%.1f", a + b }')
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" |
           tail -1 | tr -d ,)
  allocs=$(sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$log" |
           tail -1 | tr -d ,)
  leaked=$(awk '/definitely lost:|possibly lost:/ { gsub(",", "", $4);
                n += $4 } END { print n + 0 }' "$log")
  printf '%-45s %6s %8s %9s %7s' "$s" "${errors:-?}" "$leaked" \
         "${allocs:-?}" "$secs"
  if [ "$rc" -eq 0 ]; then
    echo
  else
    failed=1
    if [ "$rc" -eq 101 ]; then echo "  FAIL: memcheck errors"
    else echo "  FAIL: exit status $rc"; fi
    echo "--- valgrind log:"; cat "$log"
    echo "--- output (last 20 lines):"; tail -20 "$log.out"
  fi
done
echo "valgrind.sh: ${#scripts[@]} script(s) in ${total} s," \
     "$([ $failed -eq 0 ] && echo "all clean" || echo "some FAILED")"
exit $failed
