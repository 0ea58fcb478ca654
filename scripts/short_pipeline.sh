#!/usr/bin/env bash
# The demo's pipeline with the demo's configs and seeds but a few steps per stage (about 2 minutes): for checking that
# a change leaves the outputs byte-identical. Run it with the binary before and after the change, then compare:
#   scripts/short_pipeline.sh /path/to/old/brainspade /tmp/before
#   scripts/short_pipeline.sh build/brainspade /tmp/after
#   diff <(cd /tmp/before && sha256sum pairs/images/* pairs/labels_pv/* pairs/manifest.csv) \
#        <(cd /tmp/after && sha256sum pairs/images/* pairs/labels_pv/* pairs/manifest.csv)
# (2026-11-30: the binary of a87985a and of the session-6 refactor gave identical images, PV maps and manifest; the hard
# labels changed type, float32 -> uint8, not a voxel.)
set -euo pipefail
bin=${1:?usage: scripts/short_pipeline.sh BRAINSPADE OUT}
out=${2:?usage: scripts/short_pipeline.sh BRAINSPADE OUT}
cd "$(dirname "$0")/.."
rm -rf "$out"
q=(--log-level warn)
"$bin" "${q[@]}" train vae --config configs/tiny/vae.yaml --out "$out/vae" --set train.steps=40 \
  --set train.checkpoint_every=40 --set train.validate_every=20
"$bin" "${q[@]}" train ldm --config configs/tiny/ldm.yaml --out "$out/ldm" --set vae_checkpoint="$out/vae/checkpoints/last.ckpt" \
  --set train.steps=40 --set train.checkpoint_every=40 --set train.validate_every=20
"$bin" "${q[@]}" train classifier --config configs/tiny/classifier.yaml --out "$out/clf" --set train.steps=20 \
  --set train.checkpoint_every=20
"$bin" "${q[@]}" train spade --config configs/tiny/spade.yaml --out "$out/spade" \
  --set classifier_checkpoint="$out/clf/checkpoints/last.ckpt" --set train.steps=20 --set train.checkpoint_every=20
"$bin" "${q[@]}" sample --config configs/tiny/sample.yaml --out "$out/pairs" --num 8 --ldm "$out/ldm/checkpoints/last.ckpt" \
  --spade "$out/spade/checkpoints/last.ckpt" --classifier "$out/clf/checkpoints/last.ckpt"
echo "short pipeline done: $out/pairs"
