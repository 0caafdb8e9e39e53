#!/usr/bin/env bash
# Builds asynchost and runs the main job: a lab solution.
# (Installs the Debian packages it needs first.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target asynchost
exec build/asynchost solutions/lab1/basic_async_await.lua "$@"
