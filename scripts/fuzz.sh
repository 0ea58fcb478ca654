#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer) in build-fuzz/ and runs each for SECONDS (default 120).
#   scripts/fuzz.sh [SECONDS] [TARGET...]      TARGET: config nifti png checkpoint csv (default: all five)
# Needs the ordinary build first (build/libbrainspade_core.a supplies the code that is not fuzzed) and clang with
# libFuzzer — an optional dependency, not installed by setup.sh:  apt-get install -y clang libclang-rt-14-dev
# Each run starts from tests/fuzz/corpus/<target>/ and keeps what it finds in build-fuzz/corpus/<target>/; a crashing
# input is written to build-fuzz/crashes/. Fix the bug, then copy the input into tests/fuzz/corpus/<target>/ so that
# ctest (FuzzRegressions.*) replays it from then on. Logs: build-fuzz/fuzz_<target>.log (execs and cov: at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(config nifti png checkpoint csv)
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install -y clang libclang-rt-14-dev)"; exit 1; }
[ -f build/libbrainspade_core.a ] || { echo "fuzz.sh: build/libbrainspade_core.a missing: run the ordinary build first"; exit 1; }
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD/..}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRAINSPADE_FUZZ=ON \
  -DBRAINSPADE_BUILD_TESTS=OFF -DBRAINSPADE_FUZZ_CORE_LIB="$PWD/build/libbrainspade_core.a" >/dev/null
nice -n 15 cmake --build build-fuzz -j2 --target $(printf 'fuzz_%s ' "${targets[@]}")
mkdir -p build-fuzz/crashes
# Leaks: LibTorch and ITK keep global caches; a leak is not what these targets look for.
export ASAN_OPTIONS=detect_leaks=0:${ASAN_OPTIONS:-}
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  dict=()
  [ "$t" = config ] && dict=(-dict=tests/fuzz/config.dict)
  echo "[fuzz] $t for ${seconds}s"
  # rss_limit/malloc_limit turn a huge allocation into a reported bug; timeout a hang.
  nice -n 15 "build-fuzz/fuzz_$t" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" "${dict[@]}" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -artifact_prefix="build-fuzz/crashes/${t}-" -print_final_stats=1 2>&1 | tee "build-fuzz/fuzz_$t.log" | grep -E "^#[0-9]+.*(INITED|DONE|pulse)|ERROR|stat::" || true
done
