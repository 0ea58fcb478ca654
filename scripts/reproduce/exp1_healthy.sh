#!/usr/bin/env bash
# Experiment 3.1 of the paper (healthy, in distribution): CSF/GM/WM segmenters trained on real slices (R), on
# synthetic SPADE pairs only (S), on both (H), and on random-contrast pairs from the same labels (DR, the
# domain-randomisation baseline), tested on real volumes. On one subject (the example data) a slab of slices is held
# out of every training stage and the same slab of the 3D volume is the test set.
#   scripts/reproduce/exp1_healthy.sh [DATASET_CONFIG] [tiny|paper]     (see common.sh for the environment)
# Stages: slice → hold out the slab → VAE → LDM → classifier → SPADE → sample pairs (SPADE, randomized) →
#         segmenters R/S/H/DR → segment the test volume → evaluate → report ($OUT/report/README.md).
EXP=exp1
source "$(dirname "$0")/common.sh"
STYLES=${REPRO_STYLES:-data/example/styles/t1}   # unlabelled images of the target contrast (here: T1)

read -r SLICE_OUT LABEL_MAP CLASSES < <(python3 - "$DATA_CONFIG" "$SEG_CONFIG" <<'PY'
import sys, yaml
d, s = yaml.safe_load(open(sys.argv[1])), yaml.safe_load(open(sys.argv[2]))["data"]
print(d["run"]["out_dir"], ",".join(map(str, s.get("label_map") or [])) or "-", ",".join(s["class_names"][1:]))
PY
)
[ -n "$TEST_IMAGE" ] && [ -n "$TEST_LABELS" ] && [ -n "$TEST_SUBJECT" ] || die "set TEST_SUBJECT/TEST_IMAGE/TEST_LABELS"

DATASET=$SLICE_OUT/dataset.pt
stage "slice" "$DATASET" "$BIN" slice --config "$DATA_CONFIG"
lm=(); [ "$LABEL_MAP" != "-" ] && lm=(--label-map "$LABEL_MAP")
stage "hold out slab $SLAB of $TEST_SUBJECT" "$OUT/data/train_t1.pt" bash -c '
  "$1" holdout --dataset "$2" --slab "$3" --subject "$4" --train-out "$5/data/train.pt" \
    --volume "$6" --volume-out "$5/test/images/$4.nii.gz" --labels "$7" --labels-out "$5/test/labels/$4.nii.gz" "${@:9}" &&
  "$1" holdout --dataset "$2" --slab "$3" --subject "$4" --train-out "$5/data/train_t1.pt" --modality "$8" \
    --holdout-out "$5/data/holdout_t1.pt"' _ \
  "$BIN" "$DATASET" "$SLAB" "$TEST_SUBJECT" "$OUT" "$TEST_IMAGE" "$TEST_LABELS" "${REPRO_MODALITY:-T1}" "${lm[@]}"

train_generators "$OUT/data/train.pt"
sample_pairs spade spade "$STYLES"
sample_pairs randomized randomized

# Does the synthetic data copy the training slices? The held-out slab is the baseline (docs/privacy.md).
stage "audit the SPADE pairs" "$REPORT/audit/audit.md" "$BIN" audit --pairs "$OUT/pairs/spade" \
  --train "$OUT/data/train_t1.pt" --holdout "$OUT/data/holdout_t1.pt" --ldm "$CK_ldm" --spade "$CK_spade" \
  --out "$REPORT/audit" \
  "${RUN_ARGS[@]}" "${AUDIT_SET[@]}"

train_segmenter R "$OUT/data/train_t1.pt"
train_segmenter S "$OUT/pairs/spade"
train_segmenter H "$OUT/data/train_t1.pt" "$OUT/pairs/spade"
train_segmenter DR "$OUT/pairs/randomized"
segment_all R S H DR

log "evaluate ..."
evaluate_pair S R "$CLASSES"
evaluate_pair H R "$CLASSES"
evaluate_pair DR S "$CLASSES"
caption=$(figure fig3_$TEST_SUBJECT "$TEST_SUBJECT.nii.gz" R S H DR)
{
  echo "# Experiment 1 (paper 3.1): healthy tissue, in distribution"
  echo
  echo "Dataset config \`$DATA_CONFIG\`, scale \`$SCALE\`$([ "$SMOKE" = 1 ] && echo ", SMOKE (a few steps per stage: numbers mean nothing)"),"
  echo "held-out slab \`$SLAB\` of subject \`$TEST_SUBJECT\`, $PAIRS pairs per image generator,"
  echo "generators $([ -n "${REPRO_PRETRAINED:-}" ] && echo "pre-trained from \`$REPRO_PRETRAINED\`" || echo "trained here on the slices outside the slab")."
  echo "Wall-clock: $(( $(date +%s) - T0 )) s."
  echo
  echo "## Dice (mean ± sd over test volumes)"
  echo
  echo "R: real training slices; S: SPADE pairs only; H: both; DR: random-contrast pairs from the same labels."
  echo
  dice_table R S H DR
  echo
  echo "## Paired tests"
  for e in S_vs_R H_vs_R DR_vs_S; do echo; echo "### ${e//_/ }"; echo; cat "$REPORT/eval_$e/summary.md"; done
  echo
  echo "## Privacy audit (docs/privacy.md)"
  echo
  sed -n '/^| check/,/^$/p' "$REPORT/audit/audit.md"
  echo
  echo "## Figure"
  echo
  echo "![fig3](fig3_$TEST_SUBJECT.png)"
  echo
  echo "$caption (colours: background, CSF, GM, WM)."
} > "$REPORT/README.md"
log "report: $REPORT/README.md"
