#!/usr/bin/env bash
# The main job on the example data, end to end on a CPU: train the tiny label generator (VAE + LDM), the
# modality classifier and SPADE (reused when already trained), then generate a small labelled synthetic
# dataset with a montage into out/demo/, and measures it against the real slices (brainspade quality). 13 min 57 s on
# 2 quiet cores from a fresh clone with the build in place (2026-12-03, session 23): VAE 2m55s; then the LDM (one
# thread) 9m58s while classifier 7s, SPADE 2m34s and the quality report's segmenter 1m17s train on the other core;
# 32 pairs 14s, quality 5s (fetching and preparing the example data first: 37s). The same stages one after the
# other took 18m03s (docs/quality.md, "The demo's time").
#   scripts/demo.sh                 # everything
#   BRAINSPADE_DEMO_PAIRS=64 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x build/brainspade ] || [ ! -f data/example/slices/dataset.pt ]; then scripts/setup.sh; fi
bin=build/brainspade
runs=out/demo/runs
pairs=${BRAINSPADE_DEMO_PAIRS:-32}
start=$(date +%s)

stage() {  # stage NAME CHECKPOINT COMMAND...: runs COMMAND unless CHECKPOINT exists (then resumes if partial)
  local name=$1 ckpt=$2; shift 2
  if [ -f "$ckpt" ] && [ -f "$(dirname "$(dirname "$ckpt")")/done" ]; then
    echo "[demo] $name: already trained ($ckpt)"
    return
  fi
  echo "[demo] $name ..."
  "$@" --resume
  touch "$(dirname "$(dirname "$ckpt")")/done"
}

stage "label VAE" $runs/vae/checkpoints/last.ckpt \
  $bin train vae --config configs/tiny/vae.yaml --out $runs/vae

# The image side needs nothing from the label side: the modality classifier, SPADE and the reference segmenter of the
# quality report train on one core while the LDM (one thread, configs/tiny/ldm.yaml) trains on the other.
mkdir -p $runs
echo "[demo] modality classifier, SPADE and the quality report's segmenter train beside the LDM (log: $runs/image_side.log)"
(
  stage "modality classifier" $runs/classifier/checkpoints/last.ckpt \
    $bin train classifier --config configs/tiny/classifier.yaml --out $runs/classifier --threads 1
  stage "SPADE" $runs/spade/checkpoints/last.ckpt \
    $bin train spade --config configs/tiny/spade.yaml --out $runs/spade --threads 1 \
    --set classifier_checkpoint=$runs/classifier/checkpoints/last.ckpt
  stage "reference segmenter (real T1 slices)" $runs/segmenter/checkpoints/last.ckpt \
    $bin train segmenter --config configs/tiny/segmenter.yaml --out $runs/segmenter --threads 1 \
    --set "data.sources=[data/example/slices/dataset.pt]"
) > $runs/image_side.log 2>&1 &
image_side=$!
trap 'kill $image_side 2>/dev/null || true' EXIT
stage "label LDM" $runs/ldm/checkpoints/last.ckpt \
  $bin train ldm --config configs/tiny/ldm.yaml --out $runs/ldm --set vae_checkpoint=$runs/vae/checkpoints/last.ckpt
if ! wait $image_side; then
  echo "[demo] the image side failed; the end of $runs/image_side.log:" >&2
  tail -20 $runs/image_side.log >&2
  exit 1
fi
trap - EXIT
grep -h "done in" $runs/image_side.log | sed 's/^/[demo] image side: /'

echo "[demo] generating $pairs labelled pairs ..."
$bin sample --config configs/tiny/sample.yaml --out out/demo/pairs --num "$pairs" \
  --ldm $runs/ldm/checkpoints/last.ckpt --spade $runs/spade/checkpoints/last.ckpt \
  --classifier $runs/classifier/checkpoints/last.ckpt
cp out/demo/pairs/montage.png out/demo/montage.png
echo "[demo] measuring the pairs against the real T1 slices (brainspade quality; docs/quality.md) ..."
$bin quality --pairs out/demo/pairs --real data/example/slices/dataset.pt --modality T1 --out out/demo/quality \
  --segmenter $runs/segmenter/checkpoints/last.ckpt
sed -n '/^| check/,/^$/p' out/demo/quality/quality.md
echo
echo "[demo] finished in $(( $(date +%s) - start ))s. Look at:"
echo "  out/demo/montage.png                 synthetic label maps and their images"
echo "  out/demo/pairs/manifest.csv          one row per pair (seed, conditions, style, files)"
echo "  out/demo/runs/*/loss.png             training curves; runs/vae/reconstructions.png, runs/spade/samples.png"
echo "  out/demo/quality/quality.md          how close the pairs are to real slices (quality.png: spectra, areas)"
