#!/usr/bin/env bash
# Prepares the example end to end: fetch (Debian archive) → label (Colin27 tissue PV maps) → register the BrainWeb
# T1/PD slice to Colin27 → style images → slice (dataset.pt: modalities T1, PD; datasets colin27, brainweb).
# Idempotent: each step is skipped when its output exists; the dataset is rebuilt when its config changed.
# Needs a built `brainspade` binary.
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
# BrainWeb T1/PD slice (same axial slice, two contrasts): matched to Colin27 by NCC, written as full-depth volumes
# holding that slice only (zero/background elsewhere), plus single-slice style images for sampling.
BW=("$EX/brainweb_t1.nii.gz" "$EX/brainweb_pd.nii.gz" "$EX/brainweb_pv.nii.gz" "$EX/styles/t1/brainweb_t1.nii.gz"
    "$EX/styles/pd/brainweb_pd.nii.gz")
missing() { for f in "$@"; do [ -s "$f" ] || return 0; done; return 1; }
if missing "${BW[@]}"; then
  "$BIN" register-slice --match "$EX/BrainT1Slice.png" --reference "$EX/ch2.nii.gz" --labels "$EX/colin27_pv.nii.gz" \
    --png "$EX/BrainT1Slice.png" --image-out "$EX/brainweb_t1.nii.gz" --style-out "$EX/styles/t1/brainweb_t1.nii.gz" \
    --png "$EX/BrainProtonDensitySlice.png" --image-out "$EX/brainweb_pd.nii.gz" \
    --style-out "$EX/styles/pd/brainweb_pd.nii.gz" --labels-out "$EX/brainweb_pv.nii.gz" --report "$EX/brainweb_match.txt"
else
  echo "BrainWeb slice volumes already present ($(cat "$EX/brainweb_match.txt" 2>/dev/null || true))"
fi
# Colin27 T1 style images at four mid-brain heights (same 192x256 x_rows layout as the dataset).
STYLE_Z=(72 86 100 114)
COLIN_STYLES=()
for z in "${STYLE_Z[@]}"; do COLIN_STYLES+=("$EX/styles/t1/colin27_z$(printf %03d "$z").nii.gz"); done
if missing "${COLIN_STYLES[@]}"; then
  zargs=()
  for z in "${STYLE_Z[@]}"; do zargs+=(--z "$z"); done
  "$BIN" style-slices --image "$EX/ch2bet.nii.gz" --labels "$EX/colin27_pv.nii.gz" "${zargs[@]}" \
    --out-dir "$EX/styles/t1" --prefix colin27
else
  echo "Colin27 style images already present"
fi
# The dataset is rebuilt when the config differs from the one it was made from (e.g. an old T1-only dataset.pt).
CFG=configs/data/example.yaml
if [ -s "$EX/slices/dataset.pt" ] && cmp -s "$CFG" "$EX/slices/source_config.yaml"; then
  echo "$EX/slices/dataset.pt already present (made from the current $CFG)"
else
  if [ -e "$EX/slices" ]; then echo "$CFG changed or no dataset yet: rebuilding $EX/slices"; fi
  rm -rf "$EX/slices"
  "$BIN" slice --config "$CFG" --out "$EX/slices"
  cp "$CFG" "$EX/slices/source_config.yaml"
fi
if [ ! -s "$EX/styles/montage.png" ]; then
  "$BIN" style-montage --out "$EX/styles/montage.png" --cols 4 --files "$EX"/styles/t1/*.nii.gz "$EX"/styles/pd/*.nii.gz
fi
echo "example dataset: $EX/slices/dataset.pt (montage: $EX/slices/montage.png)"
echo "style images: $EX/styles/t1/, $EX/styles/pd/ (montage: $EX/styles/montage.png)"
