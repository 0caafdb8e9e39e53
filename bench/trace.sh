#!/usr/bin/env bash
# trace.sh — what seeing the tasks costs, on W1 (bench/w1.lua: 100,000
# tasks, each spawned, one sleep(0), gathered; inner_s is the timed part).
#
# Rows, each the median inner_s of RUNS runs, in turn (interleaved, so that
# a busy machine hurts every row alike):
#   off      asynchost bench/w1.lua                 (the hooks compiled in, off)
#   base     the same without the hooks at all      (BASE_BIN, or a build of BASE_REF)
#   trace    asynchost --trace FILE.json bench/w1.lua
#   debug    asynchost -X debug bench/w1.lua
# and the ratios off/base (the cost of tracing when off: should be ~1.00),
# trace/off and debug/off.
#
# Wall time on a busy machine is noisy; with IRCOUNT=1 (and valgrind
# installed) the cost when off is also counted in instructions, which load
# does not change: instructions per task of off and base, from two runs of
# W1 under callgrind (N=10,000 and 30,000: the difference cancels start-up).
#
# Usage (from anywhere):  bench/trace.sh
#         RUNS=5 ASYNCHOST_BIN=build-rel/asynchost BASE_REF=<commit> bench/trace.sh
# Env:    RUNS           runs per row (default 5)
#         N              tasks (default 100000, as the runner's W1)
#         ASYNCHOST_BIN  the asynchost binary (default: build-rel/asynchost,
#                        else build/asynchost)
#         BASE_BIN       a binary built without the tracing hooks, or
#         BASE_REF       a git commit from before them: it is exported with
#                        'git archive' (the repository is left alone) and
#                        built Release in a temporary directory
#         (neither)      the base row is skipped
#         IRCOUNT=1      also count instructions per task (valgrind)
set -u

die() { printf 'bench/trace.sh: %s\n' "$*" >&2; exit 2; }
abspath() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }

HERE=$(cd "$(dirname "$0")" && pwd) || die "cannot find the bench directory"
ROOT=$(cd "$HERE/.." && pwd) || die "cannot find the project directory"
RUNS=${RUNS:-5}
N=${N:-100000}

if [ -n "${ASYNCHOST_BIN:-}" ]; then
  BIN=$(abspath "$ASYNCHOST_BIN")
elif [ -x "$ROOT/build-rel/asynchost" ]; then
  BIN=$ROOT/build-rel/asynchost
else
  BIN=$ROOT/build/asynchost
fi
[ -x "$BIN" ] || die "no asynchost binary at $BIN (set ASYNCHOST_BIN)"

TMP=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT

BASE=''
if [ -n "${BASE_BIN:-}" ]; then
  BASE=$(abspath "$BASE_BIN")
  [ -x "$BASE" ] || die "BASE_BIN=$BASE_BIN is not an executable file"
elif [ -n "${BASE_REF:-}" ]; then
  printf '# building %s (Release) in %s\n' "$BASE_REF" "$TMP/base"
  mkdir -p "$TMP/base"
  git -C "$ROOT" archive "$BASE_REF" | tar -x -C "$TMP/base" ||
    die "cannot export $BASE_REF"
  { cmake -S "$TMP/base" -B "$TMP/base/build" -DCMAKE_BUILD_TYPE=Release \
      -DASYNCHOST_TESTS=OFF > /dev/null &&
    cmake --build "$TMP/base/build" -j2 --target asynchost > /dev/null; } ||
    die "the build of $BASE_REF failed"
  BASE=$TMP/base/build/asynchost
fi

# inner_s of one run: $1 = binary, then its options before the script
inner() {
  local bin=$1; shift
  "$bin" "$@" "$ROOT/bench/w1.lua" "$N" 2> /dev/null |
    sed -n 's/.*ok=1 inner_s=\([0-9.]*\).*/\1/p'
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan";
  else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: > "$TMP/off"; : > "$TMP/base.t"; : > "$TMP/trace"; : > "$TMP/debug"
for i in $(seq "$RUNS"); do
  inner "$BIN" >> "$TMP/off"
  [ -z "$BASE" ] || inner "$BASE" >> "$TMP/base.t"
  inner "$BIN" --trace "$TMP/w1.json" >> "$TMP/trace"
  inner "$BIN" -X debug >> "$TMP/debug"
done

off=$(median < "$TMP/off")
trace=$(median < "$TMP/trace")
debug=$(median < "$TMP/debug")
printf 'W1 n=%s runs=%s binary=%s\n' "$N" "$RUNS" "$BIN"
printf '%-6s %10s   (each run: %s)\n' off "$off" "$(tr '\n' ' ' < "$TMP/off")"
if [ -n "$BASE" ]; then
  base=$(median < "$TMP/base.t")
  printf '%-6s %10s   (each run: %s)\n' base "$base" "$(tr '\n' ' ' < "$TMP/base.t")"
fi
printf '%-6s %10s   (each run: %s)\n' trace "$trace" "$(tr '\n' ' ' < "$TMP/trace")"
printf '%-6s %10s   (each run: %s)\n' debug "$debug" "$(tr '\n' ' ' < "$TMP/debug")"
[ -z "$BASE" ] || awk -v a="$off" -v b="$base" \
  'BEGIN { printf "RESULT off/base=%.3f  (tracing compiled in but off, against no hooks)\n", a / b }'
awk -v a="$trace" -v b="$off" 'BEGIN { printf "RESULT trace/off=%.3f\n", a / b }'
awk -v a="$debug" -v b="$off" 'BEGIN { printf "RESULT debug/off=%.3f\n", a / b }'

# instructions per task: (Ir(30000) - Ir(10000)) / 20000, under callgrind
irtask() {
  local a b
  a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" \
        "$ROOT/bench/w1.lua" 10000 2>&1 >/dev/null | awk '/Collected/ { print $4 }')
  b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" \
        "$ROOT/bench/w1.lua" 30000 2>&1 >/dev/null | awk '/Collected/ { print $4 }')
  awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", (b - a) / 20000 }'
}

if [ "${IRCOUNT:-0}" = 1 ] && [ -n "$BASE" ]; then
  command -v valgrind > /dev/null || die "IRCOUNT=1 needs valgrind"
  ioff=$(irtask "$BIN")
  ibase=$(irtask "$BASE")
  printf 'instructions per task: off %s, base %s\n' "$ioff" "$ibase"
  awk -v a="$ioff" -v b="$ibase" \
    'BEGIN { printf "RESULT instructions off/base=%.4f\n", a / b }'
fi
