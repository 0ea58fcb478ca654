#!/usr/bin/env bash
# Experiment 3.3 of the paper (tumours): R_les (real lesion slices) vs S_les (SPADE pairs from the lesion-conditioned
# label generator) vs H_les (both), plus DR (random-contrast pairs), Dice/accuracy/precision/recall per class
# including the tumour, on held-out subjects.
#   scripts/reproduce/exp3_tumour.sh DATASET_CONFIG [tiny|paper]     (see common.sh for the environment)
# Needs the user's lesion cohort (the example data has no lesions):
#   DATASET_CONFIG   a `slice` config of the training subjects with data.lesion_channels (e.g. [tumour, edema]);
#   TEST_IMAGES, TEST_LABELS   folders of held-out subjects' 3D images and integer label volumes (same file names);
#   REPRO_STYLES     unlabelled images of the target contrast;
#   REPRO_SEG_CONFIG segmenter config whose data.label_map / class_names include the lesion classes
#                    (default configs/<scale>/segmenter.yaml);
#   the LDM config of the scale must condition on the lesions (unet.cond_dim = number of lesions + 1).
EXP=exp3
source "$(dirname "$0")/common.sh"
LESIONS=$(python3 - "$DATA_CONFIG" <<'PY'
import sys, yaml
print(",".join((yaml.safe_load(open(sys.argv[1]))["data"].get("lesion_channels") or [])))
PY
)
need() {
  cat >&2 <<MSG
[exp3] experiment 3 needs a lesion cohort, which the example data does not have: $1
  Provide: a slice config with data.lesion_channels (e.g. [tumour]) as the first argument, TEST_IMAGES and
  TEST_LABELS (folders of held-out subjects' 3D images and integer labels, same file names), REPRO_STYLES (target
  contrast images) and REPRO_SEG_CONFIG (segmenter classes including the lesion). See docs/reproduction.md.
MSG
  exit 2
}
[ -n "$LESIONS" ] || need "$DATA_CONFIG has no data.lesion_channels"
[ -d "${TEST_IMAGES:-}" ] && [ -d "${TEST_LABELS:-}" ] || need "TEST_IMAGES / TEST_LABELS folders are not set"
[ -n "${REPRO_STYLES:-}" ] || need "REPRO_STYLES is not set"
CLASSES=$(python3 - "$SEG_CONFIG" <<'PY'
import sys, yaml
print(",".join(yaml.safe_load(open(sys.argv[1]))["data"]["class_names"][1:]))
PY
)
SLICE_OUT=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["run"]["out_dir"])' "$DATA_CONFIG")
DATASET=$SLICE_OUT/dataset.pt
stage "slice" "$DATASET" "$BIN" slice --config "$DATA_CONFIG"
mkdir -p "$OUT/test"
ln -sfn "$(cd "$TEST_IMAGES" && pwd)" "$OUT/test/images"
ln -sfn "$(cd "$TEST_LABELS" && pwd)" "$OUT/test/labels"

train_generators "$DATASET"
sample_pairs spade spade $REPRO_STYLES
sample_pairs randomized randomized
train_segmenter R_les "$DATASET"
train_segmenter S_les "$OUT/pairs/spade"
train_segmenter H_les "$DATASET" "$OUT/pairs/spade"
train_segmenter DR "$OUT/pairs/randomized"
segment_all R_les S_les H_les DR
evaluate_pair S_les R_les "$CLASSES"
evaluate_pair H_les R_les "$CLASSES"
evaluate_pair DR S_les "$CLASSES"
first=$(basename "$(ls "$TEST/images"/*.nii.gz | head -1)")
caption=$(figure fig4_tumour "$first" R_les S_les H_les DR)
{
  echo "# Experiment 3 (paper 3.3): tumours"
  echo
  echo "Dataset config \`$DATA_CONFIG\` (lesions: $LESIONS), scale \`$SCALE\`, $PAIRS pairs. Wall-clock: $(( $(date +%s) - T0 )) s."
  echo
  dice_table R_les S_les H_les DR
  for e in S_les_vs_R_les H_les_vs_R_les DR_vs_S_les; do echo; echo "### $e"; echo; cat "$REPORT/eval_$e/summary.md"; done
  echo
  echo "![fig4](fig4_tumour.png)"
  echo
  echo "$caption"
} > "$REPORT/README.md"
log "report: $REPORT/README.md"
