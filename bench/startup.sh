#!/usr/bin/env bash
# startup.sh — start-up cost of `asynchost -e ''` against `lua5.4 -e ''` (target: asynchost within 2x).
# Uses hyperfine when installed, else a bash loop timed with `date +%s.%N`. Either way each run includes
# fork+exec+dynamic linking (~1 ms of lua5.4's ~1.5 ms here), which compresses the ratio; so the external
# `true` is timed too and the ratio is also printed above that floor. The target is judged on the plain ratio.
# Env: N (runs per command, default 200)  ASYNCHOST_BIN (default <project>/build/asynchost)  LUA (lua5.4)
set -u
export LC_ALL=C
N=${N:-200}
case $N in '' | *[!0-9]* | 0) echo "startup.sh: N must be a positive integer" >&2; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AH=${ASYNCHOST_BIN:-$ROOT/build/asynchost}
LUA=${LUA:-lua5.4}
TRUE=$(type -P true)   # the external binary, not the shell builtin

[ -x "$AH" ] || { echo "startup.sh: $AH not found — build first: cmake -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2" >&2; exit 2; }
command -v "$LUA" >/dev/null 2>&1 || { echo "startup.sh: $LUA not found (Debian package lua5.4)" >&2; exit 2; }
for c in "$AH" "$LUA"; do
  "$c" -e '' >/dev/null || { echo "startup.sh: '$c -e \"\"' failed (exit $?)" >&2; exit 1; }
done

# mean seconds per run of argv CMD..., N runs after N/10+1 warm-up runs
loop_mean() {
  local i t0 t1
  for ((i = 0; i < N / 10 + 1; i++)); do "$@" >/dev/null 2>&1; done
  t0=$(date +%s.%N)
  for ((i = 0; i < N; i++)); do "$@" >/dev/null 2>&1; done
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.9f", (b - a) / n }'
}
# mean seconds per run of the command string CMD, from hyperfine's CSV export (-N: no shell in between)
hyperfine_mean() {
  local csv rc=1
  csv=$(mktemp) || return 1
  if hyperfine -N --style none --warmup $((N / 10 + 1)) --runs "$N" --export-csv "$csv" "$1" >/dev/null 2>&1; then
    awk -F, 'NR == 2 { printf "%.9f", $2 }' "$csv"; rc=0
  fi
  rm -f "$csv"
  return $rc
}

method=loop
command -v hyperfine >/dev/null 2>&1 && hyperfine_mean "$TRUE" >/dev/null && method=hyperfine
measure() {   # measure 'command string' argv...
  local cmd=$1; shift
  if [ "$method" = hyperfine ]; then hyperfine_mean "$cmd"; else loop_mean "$@"; fi
}
q() { printf '%q' "$1"; }

t_lua=$(measure "$(q "$LUA") -e ''" "$LUA" -e '')
t_ah=$(measure "$(q "$AH") -e ''" "$AH" -e '')
t_true=$(measure "$(q "$TRUE")" "$TRUE")

awk -v m="$method" -v n="$N" -v l="$t_lua" -v a="$t_ah" -v t="$t_true" -v lua="$LUA" -v ah="$AH" 'BEGIN {
  q = sprintf("%c%c", 39, 39)
  printf "startup (%s, %d runs each, mean per run)\n", m, n
  printf "  %-44s %8.3f ms\n", lua " -e " q, l * 1000
  printf "  %-44s %8.3f ms\n", ah " -e " q, a * 1000
  printf "  %-44s %8.3f ms   (fork+exec floor, reference only)\n", "true", t * 1000
  r = a / l
  printf "ratio asynchost/lua5.4 = %.2f   (target <= 2.00: %s)\n", r, r <= 2 ? "met" : "NOT met"
  if (l > t) printf "ratio above the exec floor (asynchost-true)/(lua5.4-true) = %.2f   (information)\n", (a - t) / (l - t) }'
