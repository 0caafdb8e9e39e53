#!/usr/bin/env bash
# Builds asynchost twice (a normal build and an AddressSanitizer + UBSan
# build) and runs every test with ctest: the specs under the host, under
# stock lua5.4 with the C module, and under the ASan build.  Installs the
# Debian packages it needs first.  Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DASYNCHOST_ASAN=ON \
      -DASYNCHOST_TESTS=OFF >/dev/null
cmake --build build-asan -j"$jobs" --target asynchost embed_test

# the libFuzzer targets (HTTP request path, to_thread's marshalling), with clang
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DASYNCHOST_FUZZ=ON -DASYNCHOST_TESTS=OFF -DASYNCHOST_MIMALLOC=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_http fuzz_marshal

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DASYNCHOST_ASAN_BIN="$PWD/build-asan/asynchost" \
      -DASYNCHOST_FUZZ_BIN="$PWD/build-fuzz/fuzz_http" >/dev/null
cmake --build build -j"$jobs"

ctest --test-dir build -j"$jobs" --output-on-failure "$@"
