#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build (gcc) in build-asan/ and the unit tests it runs.
#   scripts/sanitize.sh [GTEST_FILTER]
# Instrumented: brainspade's own code (library, program, tests). LibTorch, ITK and yaml-cpp are Debian's
# uninstrumented shared libraries: ASan still sees their heap through its malloc interceptors, but not their stack or
# globals, and LibTorch keeps allocator caches and thread pools alive until exit, so leak checking is off.
# The default filter picks the suites whose work is brainspade's code rather than long LibTorch kernels: config and
# checkpoint parsing, atomic files, image and dataset reading, slicing, metrics, schedulers, the fuzz corpora and the
# bad-input catalogue (which runs the instrumented program). Network forward/backward suites are left out: they spend
# their time inside uninstrumented LibTorch kernels, ~20x slower under ASan, and check nothing ASan can see.
# See docs/reliability.md for the last result. Not part of CI (a cold build took 54 CPU-minutes, 2026-11-29).
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-'Config.*:Checkpoint.*:Runtime.*:ImageIO.*:SliceDataset.*:Slicing.*:MetricsCsv.*:SplitRows.*:EvalMetrics.*:Wilcoxon.*:NoiseSchedule.*:DDPMScheduler.*:DDIMScheduler.*:SchedulerOptions.*:FuzzRegressions.*:BadInputs.*'}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD/..}
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRAINSPADE_SANITIZE=address,undefined >/dev/null
nice -n 15 cmake --build build-asan -j2
# ASan stops at its first report; UBSan reports go on ("runtime error:"), so the log is searched for them after the run.
export ASAN_OPTIONS=detect_leaks=0:${ASAN_OPTIONS:-}
export UBSAN_OPTIONS=print_stacktrace=1:${UBSAN_OPTIONS:-}
status=0
nice -n 15 build-asan/tests/brainspade_tests --gtest_filter="$filter" > build-asan/sanitize.log 2>&1 || status=$?
tail -n 5 build-asan/sanitize.log
if grep -E "runtime error:|ERROR: AddressSanitizer" build-asan/sanitize.log; then
  echo "sanitize.sh: sanitizer reports above (full log: build-asan/sanitize.log)"
  exit 1
fi
exit $status
