#!/usr/bin/env bash
# run.sh — run the peer baselines and asynchost side by side, in the same run of the shared runner
# (run-peers.sh), which prints every row's figures and asynchost's per-op ratio to every peer.
#
# Usage (from anywhere):  bench/run.sh
#         RUNS=2 WARMUP=1 ONLY=W1 bench/run.sh
# Env:    ONLY           workloads (default W1,W2,W3,W4,W5,W6: the ones bench/w<k>.lua implements so far)
#         RUNS WARMUP OUT and the runner's other variables are passed through unchanged
#         PEERS          directory holding run-peers.sh (default: <project>/../shared/bench)
#         ASYNCHOST_BIN  the asynchost binary (default: <project>/build/asynchost, built here if missing)
# Installs nothing; it only notes which Debian packages for the peer rows are missing.
set -u

note() { printf '# %s\n' "$*"; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 2; }
abspath() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }

HERE=$(cd "$(dirname "$0")" && pwd) || die "cannot find the bench directory"
ROOT=$(cd "$HERE/.." && pwd) || die "cannot find the project directory"

# the shared runner (not part of the project): resolve before changing directory
PEERS_DIR=${PEERS:-$(dirname "$0")/../../shared/bench}
RUNNER=$(cd "$PEERS_DIR" 2>/dev/null && pwd)/run-peers.sh
if [ ! -f "$RUNNER" ]; then
  die "run-peers.sh not found in $PEERS_DIR — set PEERS to the directory that holds run-peers.sh and peers/"
fi
[ -z "${OUT:-}" ] || export OUT=$(abspath "$OUT")

if [ -n "${ASYNCHOST_BIN:-}" ]; then
  BIN=$(abspath "$ASYNCHOST_BIN")
  [ -x "$BIN" ] || die "ASYNCHOST_BIN=$ASYNCHOST_BIN is not an executable file"
fi

cd "$ROOT" || die "cannot cd to $ROOT"   # run-peers.sh runs asynchost's command from where it was started
if [ -z "${BIN:-}" ]; then
  BIN=$ROOT/build/asynchost
  if [ ! -x "$BIN" ]; then
    command -v cmake >/dev/null 2>&1 || die "build/asynchost is missing and cmake is not installed (Debian package cmake)"
    note "build/asynchost missing: building it (Release)"
    { cmake -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2; } || die "build failed"
    [ -x "$BIN" ] || die "the build did not produce $BIN"
  fi
fi

# which Debian packages for the runner and the peer rows are missing (a note only; nothing is installed)
if command -v dpkg-query >/dev/null 2>&1; then
  missing=''
  for p in time python3-uvloop nodejs lua-luv; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    note "note: Debian packages not installed:$missing — their rows print SKIPPED ('time' is required by the runner)."
    note "      To install them (as root): apt-get install -y$missing   (full list: $(dirname "$RUNNER")/README.md)"
  fi
fi

ONLY=${ONLY:-W1,W2,W3,W4,W5,W6}
for t in ${ONLY//,/ }; do
  k=${t#[Ww]}
  case $k in [1-6]) [ -f "bench/w$k.lua" ] || note "note: bench/w$k.lua does not exist yet; the asynchost row of W$k will fail" ;; esac
done

export ONLY
export ASYNCHOST_BENCH_CMD="$(printf '%q' "$BIN") bench/w{w}.lua"
exec bash "$RUNNER"
