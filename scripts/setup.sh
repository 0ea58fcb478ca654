#!/usr/bin/env bash
# One-command set-up on Debian 12: installs every dependency from Debian's archive, fetches the example MRI,
# configures and builds into build/, and prepares the example slice dataset. Idempotent: a second run only
# does what is missing.
#   scripts/setup.sh            # everything
#   BRAINSPADE_BUILD_TYPE=Debug scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

packages=(build-essential cmake ninja-build ccache libtorch-dev libinsighttoolkit5-dev libyaml-cpp-dev libspdlog-dev
          libcli11-dev libgtest-dev libopenblas0-pthread libgloo-dev nlohmann-json3-dev zlib1g-dev
          libcairo2-dev fonts-dejavu-core pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] installing from Debian's archive: ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "[setup] need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "[setup] Debian packages: all present"
fi

# Example data (real Colin27 MRI from Debian's archive).
if [ -x scripts/fetch_example_data.sh ]; then scripts/fetch_example_data.sh; fi

# Configure once, build incrementally.
build_type=${BRAINSPADE_BUILD_TYPE:-Release}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
fi
echo "[setup] building (unity build + precompiled headers; the first build takes about 10 minutes on 2 cores)"
start=$(date +%s)
cmake --build build -j"$(nproc)"
echo "[setup] build finished in $(( $(date +%s) - start ))s"

# Tissue maps + slice dataset for the demos and the tests of later stages.
if [ -x scripts/prepare_example_data.sh ]; then scripts/prepare_example_data.sh; fi
echo "[setup] done: build/brainspade --help"
