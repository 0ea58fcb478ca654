#!/usr/bin/env bash
# Prepares the Colin27 example end to end: fetch (Debian archive) → label (tissue PV maps) → slice (dataset.pt).
# Idempotent: each step is skipped when its output exists. Needs a built `brainspade` binary.
#   usage: scripts/prepare_example_data.sh [BUILD_DIR]   (default: build, then build-*)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN=""
for d in "${1:-}" build build-*; do
  if [ -n "$d" ] && [ -x "$d/brainspade" ]; then BIN="$d/brainspade"; break; fi
done
if [ -z "$BIN" ]; then
  echo "error: no built brainspade found (build first: cmake -S . -B build -G Ninja && cmake --build build -j2)" >&2
  exit 1
fi
EX=data/example
scripts/fetch_example_data.sh "$EX"
if [ ! -s "$EX/colin27_pv.nii.gz" ]; then
  "$BIN" label --t1 "$EX/ch2bet.nii.gz" --atlas "$EX/aal.nii.gz" --out "$EX/colin27_pv.nii.gz" \
    --montage "$EX/colin27_pv_montage.png"
else
  echo "$EX/colin27_pv.nii.gz already present"
fi
if [ ! -s "$EX/slices/dataset.pt" ]; then
  "$BIN" slice --config configs/data/example.yaml --out "$EX/slices"
else
  echo "$EX/slices/dataset.pt already present"
fi
echo "example dataset: $EX/slices/dataset.pt (montage: $EX/slices/montage.png)"
