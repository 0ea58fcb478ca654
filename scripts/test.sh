#!/usr/bin/env bash
# Runs the whole test suite through ctest. Sets itself up first when anything is missing.
#   scripts/test.sh                 # all tests
#   scripts/test.sh -R Config       # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
# Passive OpenMP waiting and one OpenBLAS thread: ctest runs two test processes on two cores (see core/runtime.h).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
ctest --output-on-failure -j"$(nproc)" --timeout 900 "$@"
