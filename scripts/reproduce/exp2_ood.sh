#!/usr/bin/env bash
# Experiment 3.2 of the paper (out of distribution): a segmenter trained on real source-contrast slices (R) against
# ones trained on SPADE pairs whose style comes from unlabelled images of the target domain (S_near, S_far), real +
# far synthetic (H_far), and random-contrast pairs (DR), tested on a near-OoD and a far-OoD volume.
# On the example data: source = Colin27 T1; near OoD = the BrainWeb T1 simulation of a Colin27 slice; far OoD = the
# BrainWeb proton-density simulation of the same slice (a real second contrast, labels from the co-registered
# Colin27 maps). A slab around that slice is held out of every training stage (the PD slice with it), so the PD
# image is only ever used, unlabelled, as the style of the far-OoD pairs.
#   scripts/reproduce/exp2_ood.sh [DATASET_CONFIG] [tiny|paper]     (see common.sh for the environment)
# Extra environment: NEAR_IMAGE, FAR_IMAGE, OOD_LABELS (default: the 2nd and 3rd data.images, the 2nd data.labels),
# NEAR_STYLES, FAR_STYLES (default data/example/styles/t1/brainweb_t1.nii.gz, data/example/styles/pd),
# REPRO_SLAB (default 0.45:0.60, around the BrainWeb slice).
EXP=exp2
REPRO_SLAB=${REPRO_SLAB:-0.45:0.60}
source "$(dirname "$0")/common.sh"

read -r SLICE_OUT LABEL_MAP CLASSES NEAR0 FAR0 OODL0 < <(python3 - "$DATA_CONFIG" "$SEG_CONFIG" <<'PY'
import sys, yaml
d, s = yaml.safe_load(open(sys.argv[1])), yaml.safe_load(open(sys.argv[2]))["data"]
im, lb = d["data"].get("images", []), d["data"].get("labels", [])
pick = lambda l, i: l[i] if len(l) > i else "-"
print(d["run"]["out_dir"], ",".join(map(str, s.get("label_map") or [])) or "-", ",".join(s["class_names"][1:]),
      pick(im, 1), pick(im, 2), pick(lb, 1))
PY
)
NEAR_IMAGE=${NEAR_IMAGE:-$NEAR0} FAR_IMAGE=${FAR_IMAGE:-$FAR0} OOD_LABELS=${OOD_LABELS:-$OODL0}
NEAR_STYLES=${NEAR_STYLES:-data/example/styles/t1/brainweb_t1.nii.gz}
FAR_STYLES=${FAR_STYLES:-data/example/styles/pd}
for f in "$NEAR_IMAGE" "$FAR_IMAGE" "$OOD_LABELS"; do
  [ "$f" != "-" ] && [ -f "$f" ] || die "near/far OoD volumes missing: set NEAR_IMAGE, FAR_IMAGE and OOD_LABELS (got '$f')"
done

DATASET=$SLICE_OUT/dataset.pt
stage "slice" "$DATASET" "$BIN" slice --config "$DATA_CONFIG"
lm=(); [ "$LABEL_MAP" != "-" ] && lm=(--label-map "$LABEL_MAP")
# holdout TRAIN_OUT CASE IMAGE [--modality M]: training set outside the slab and the slab of IMAGE as test case CASE.
holdout() {
  local train=$1 case=$2 img=$3; shift 3
  "$BIN" holdout --dataset "$DATASET" --slab "$SLAB" --subject "$TEST_SUBJECT" --train-out "$train" \
    --volume "$img" --volume-out "$OUT/test_$case/images/$TEST_SUBJECT.nii.gz" \
    --labels "$OOD_LABELS" --labels-out "$OUT/test_$case/labels/$TEST_SUBJECT.nii.gz" "${lm[@]}" "$@"
}
if [ ! -e "$OUT/data/train_t1.pt" ]; then
  log "hold out slab $SLAB of $TEST_SUBJECT ..."
  holdout "$OUT/data/train.pt" near "$NEAR_IMAGE"
  holdout "$OUT/data/train_t1.pt" far "$FAR_IMAGE" --modality "${REPRO_MODALITY:-T1}"
fi

train_generators "$OUT/data/train.pt"
sample_pairs spade_near spade "$NEAR_STYLES"
sample_pairs spade_far spade "$FAR_STYLES"
sample_pairs randomized randomized

train_segmenter R "$OUT/data/train_t1.pt"
train_segmenter S_near "$OUT/pairs/spade_near"
train_segmenter S_far "$OUT/pairs/spade_far"
train_segmenter H_far "$OUT/data/train_t1.pt" "$OUT/pairs/spade_far"
train_segmenter DR "$OUT/pairs/randomized"

for case in near far; do
  TEST=$OUT/test_$case PRED=$OUT/pred_$case REPORT=$OUT/report/$case
  if [ $case = near ]; then models=(R S_near DR); else models=(R S_far H_far DR); fi
  segment_all "${models[@]}"
  log "evaluate $case ..."
  evaluate_pair "${models[1]}" R "$CLASSES"
  evaluate_pair DR R "$CLASSES"
  [ $case = far ] && evaluate_pair H_far R "$CLASSES"
  caption=$(figure fig4_$case "$TEST_SUBJECT.nii.gz" "${models[@]}")
  {
    echo "## ${case} out of distribution ($(basename "$([ $case = near ] && echo "$NEAR_IMAGE" || echo "$FAR_IMAGE")"))"
    echo
    dice_table "${models[@]}"
    echo
    echo "![fig4_$case]($case/fig4_$case.png)"
    echo
    echo "$caption (colours: background, CSF, GM, WM)."
    echo
    for d in "$REPORT"/eval_*; do echo "### $(basename "$d")"; echo; cat "$d/summary.md"; echo; done
  } > "$OUT/report/$case.md"
done
{
  echo "# Experiment 2 (paper 3.2): out of distribution"
  echo
  echo "Dataset config \`$DATA_CONFIG\`, scale \`$SCALE\`$([ "$SMOKE" = 1 ] && echo ", SMOKE (a few steps per stage: numbers mean nothing)"),"
  echo "held-out slab \`$SLAB\` of \`$TEST_SUBJECT\`, $PAIRS pairs per image generator, styles: near \`$NEAR_STYLES\`, far \`$FAR_STYLES\`."
  echo "R: real source slices; S_*: SPADE pairs styled by the target images; H_far: R's data + S_far's; DR: random contrast."
  echo "Wall-clock: $(( $(date +%s) - T0 )) s."
  echo
  cat "$OUT/report/near.md" "$OUT/report/far.md"
} > "$OUT/report/README.md"
log "report: $OUT/report/README.md"
