#!/usr/bin/env bash
# Runs the whole test suite through ctest. Sets itself up first when anything is missing.
#   scripts/test.sh                 # all tests
#   scripts/test.sh -R Config       # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 900 "$@"
