#!/usr/bin/env bash
# Experiment 3.3 of the paper (tumours): segmenters of background/CSF/GM/WM/tumour/edema on T1 and PD together, trained
# on real lesion slices (R_les), on synthetic pairs from the lesion-conditioned label generator and SPADE (S_les), on
# both (H_les), and on random-contrast pairs from the same labels (DR); Dice, accuracy, precision and recall per class
# on held-out patients that no stage sees, Wilcoxon tests, the Fig. 4 layout.
#   scripts/reproduce/exp3_tumour.sh [CONFIG] [tiny|paper]     (see common.sh for the environment)
# CONFIG (default configs/data/phantom_lesions.yaml):
#   - a `phantom-lesions` config: the simulated lesion cohort is made first (docs/data.md; simulations, not clinical
#     data) and everything below is set from it;
#   - or a `slice` config of a real lesion cohort's training subjects with data.lesion_channels (e.g. [tumour, edema])
#     and one volume per modality of the segmenter config, with
#       TEST_DIR     held-out subjects: TEST_DIR/<modality>/<name>.nii.gz per modality and TEST_DIR/labels/<name>.nii.gz
#                    (integer labels in the segmenter's classes);
#       STYLES_DIR   unlabelled style images: STYLES_DIR/<modality>/ per modality.
# Settings: configs/<scale>/{vae,ldm,classifier,spade,segmenter}_lesion.yaml and <scale>/sample.yaml
# (REPRO_SEG_CONFIG overrides the segmenter's). The lesion flags of the synthetic maps:
#   REPRO_LESION_COMBINATIONS='A+B, B, none'  each map's flags drawn from these combinations only (sampler.
#                    lesion_combinations). Default: the ones the simulated cohort holds, 'tumour+edema, edema, none',
#                    when the lesion channels are [tumour, edema]; otherwise (or set to empty) independent flags.
#   REPRO_LESION_REDRAW=N  a map whose lesions disagree with its flags is drawn again up to N times (sampler.
#                    lesion_redraw; default 10). Both defaults since session 19: with them every lesion check passed
#                    on the seeds measured (docs/label-generator.md); REPRO_LESION_REDRAW=0 REPRO_LESION_COMBINATIONS=
#                    gives the independent flags without redraws of the earlier exp3 figures.
# At tiny scale the whole run took 29 min 08 s on 2 quiet cores (2026-12-03, stages side by side; REPRO_SIDE_BY_SIDE=0
# runs them in turn: about 44 min, estimated); what it cuts compared with exp1: docs/reproduction.md.
EXP=exp3
DEFAULT_DATA_CONFIG=configs/data/phantom_lesions.yaml
REPRO_SEG_CONFIG=${REPRO_SEG_CONFIG:-configs/${2:-tiny}/segmenter_lesion.yaml}
source "$(dirname "$0")/common.sh"
REDRAW=${REPRO_LESION_REDRAW-10}
case "$REDRAW" in ''|*[!0-9]*) die "REPRO_LESION_REDRAW '$REDRAW': expected a non-negative integer" ;; esac
SAMPLE_SET+=(--set sampler.lesion_redraw="$REDRAW")
COMBOS=${REPRO_LESION_COMBINATIONS-default}  # set but empty: independent flags
case "$COMBOS" in *[\[\]]*) die "REPRO_LESION_COMBINATIONS '$COMBOS': give the combinations without brackets, e.g. 'tumour+edema, edema, none'" ;; esac
for c in vae_lesion ldm_lesion classifier_lesion spade_lesion; do
  [ -f "$CONFIGS/$c.yaml" ] || die "$CONFIGS/$c.yaml is missing: scale '$SCALE' has no lesion settings for ${c%_lesion}"
done
yaml_get() {  # yaml_get FILE a.b: a value (lists joined with commas; empty when absent)
  python3 - "$1" "$2" <<'PY'
import sys, yaml
v = yaml.safe_load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = (v or {}).get(k) if isinstance(v, dict) else None
print(",".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v))
PY
}
MODS=$(yaml_get "$SEG_CONFIG" data.modalities)
[ -n "$MODS" ] || die "$SEG_CONFIG has no data.modalities (e.g. [T1, PD]): experiment 3 segments T1 and a second contrast together"
IFS=, read -r -a MOD_LIST <<< "$MODS"
CLASSES=$(yaml_get "$SEG_CONFIG" data.class_names | cut -d, -f2-)

if [ -n "$(yaml_get "$DATA_CONFIG" cohort.train)" ]; then
  # The simulated cohort, inside this run's folder.
  COHORT=$OUT/cohort
  if [ "$SMOKE" = 1 ]; then
    COHORT_SET=(--set cohort.train=2 --set cohort.test=2 --set cohort.slices_per_volume=12)
  else
    COHORT_SET=()
  fi
  stage "phantom-lesions (simulated cohort)" "$COHORT/cohort.csv" \
    "$BIN" phantom-lesions --config "$DATA_CONFIG" --out "$COHORT" "${RUN_ARGS[@]}" "${COHORT_SET[@]}"
  DATA_CONFIG=$COHORT/slice.yaml
  LESIONS=$(yaml_get "$DATA_CONFIG" data.lesion_channels)
  TEST_DIR=$COHORT/test
  STYLES_DIR=$COHORT/styles
  # Style images: four axial slices through the lesion range of each training patient (never a test patient); made
  # beside the lesion LDM (image_side below): only the sampling needs them.
  make_styles() {
    local m img p h w
    h=$(yaml_get "$DATA_CONFIG" data.height) w=$(yaml_get "$DATA_CONFIG" data.width)
    for m in "${MOD_LIST[@]}"; do
      for img in "$COHORT"/train/images/*_"$m".nii.gz; do
        p=$(basename "$img" "_$m.nii.gz")
        stage "style slices $p $m" "$STYLES_DIR/$m/${p}_z115.nii.gz" "$BIN" style-slices --image "$img" \
          --labels "$COHORT/train/pv/$p.nii.gz" --z 70 --z 85 --z 100 --z 115 --out-dir "$STYLES_DIR/$m" --prefix "$p" \
          --height "$h" --width "$w"
      done
    done
  }
else
  make_styles() { :; }
  LESIONS=$(yaml_get "$DATA_CONFIG" data.lesion_channels)
  need() {
    cat >&2 <<MSG
[exp3] experiment 3 needs a lesion cohort: $1
  Run without arguments for the simulated cohort (configs/data/phantom_lesions.yaml), or give a slice config with
  data.lesion_channels (e.g. [tumour, edema]) and set TEST_DIR (<modality>/ and labels/ of held-out subjects) and
  STYLES_DIR (<modality>/ style images). See docs/reproduction.md.
MSG
    exit 2
  }
  [ -n "$LESIONS" ] || need "$DATA_CONFIG has no data.lesion_channels"
  [ -d "${TEST_DIR:-}/labels" ] || need "TEST_DIR is not set or has no labels/ folder"
  [ -d "${STYLES_DIR:-}" ] || need "STYLES_DIR is not set"
  for m in "${MOD_LIST[@]}"; do
    [ -d "$TEST_DIR/$m" ] || need "TEST_DIR has no $m/ folder (data.modalities of $SEG_CONFIG)"
    [ -d "$STYLES_DIR/$m" ] || need "STYLES_DIR has no $m/ folder"
  done
fi
TEST=$TEST_DIR
if [ "$COMBOS" = default ]; then
  # The combinations the simulated cohort holds (6 of its 394 slices hold a tumour without edema).
  if [ "$LESIONS" = "tumour,edema" ]; then COMBOS="tumour+edema, edema, none"; else COMBOS=""; fi
fi
[ -n "$COMBOS" ] && SAMPLE_SET+=(--set "sampler.lesion_combinations=[$COMBOS]")
SLICE_OUT=$(yaml_get "$DATA_CONFIG" run.out_dir)
DATASET=$SLICE_OUT/dataset.pt
stage "slice" "$DATASET" "$BIN" slice --config "$DATA_CONFIG"

train_stage vae vae_lesion "$DATASET"
# segment_with MODEL: every held-out patient, one --in per modality in the segmenter's order.
segment_with() {
  local model=$1 lab name m ins
  for lab in "$TEST"/labels/*.nii.gz; do
    name=$(basename "$lab")
    ins=()
    for m in "${MOD_LIST[@]}"; do ins+=(--in "$TEST/$m/$name"); done
    stage "segment $name with $model" "$PRED/$model/$name" \
      "$BIN" segment --model "$OUT/segmenters/$model/checkpoints/last.ckpt" "${ins[@]}" --out "$PRED/$model/$name"
  done
}
# Beside the lesion LDM (one thread, configs/tiny/ldm_lesion.yaml): the classifier, SPADE and the style slices (common.sh,
# "Side by side"). R_les, which needs only the real slices too, trains beside the sampling and S_les below: beside the
# LDM it would outlast it.
image_side() {
  train_stage classifier classifier_lesion "$DATASET"
  train_stage spade spade_lesion "$DATASET" --set classifier_checkpoint="$CK_classifier"
  make_styles
}
beside image_side image_side
train_stage ldm ldm_lesion "$DATASET" --set vae_checkpoint="$CK_vae"
join_beside
train_stage classifier classifier_lesion "$DATASET"  # done beside the LDM: sets CK_classifier
train_stage spade spade_lesion "$DATASET" --set classifier_checkpoint="$CK_classifier"
make_styles  # made beside the LDM

# R_les and its predictions beside the sampling and S_les (the two longest lanes of what is left, then H_les beside DR).
# train_and_segment NAME SOURCE...: a segmenter, then its predictions of every held-out patient (one lane).
train_and_segment() { train_segmenter "$@"; segment_with "$1"; }
beside R_les train_and_segment R_les "$DATASET"

# One pair folder per modality over the same label maps (the segmenter checks it), so that <folder>/T1 and
# <folder>/PD become two-channel samples: the first SPADE run draws the maps (with the lesion redraws), every other
# run takes them from it (label_pairs) instead of drawing them again.
k=0
MAPS=$OUT/pairs/spade/${MOD_LIST[0]}
for m in "${MOD_LIST[@]}"; do
  reuse=()
  [ "$m" = "${MOD_LIST[0]}" ] || reuse=(--set label_pairs="$MAPS")
  stage "sample spade $m ($PAIRS pairs)" "$OUT/pairs/spade/$m/manifest.csv" \
    "$BIN" sample --config "$CONFIGS/sample.yaml" --out "$OUT/pairs/spade/$m" --num "$PAIRS" "${RUN_ARGS[@]}" \
    --ldm "$CK_ldm" --spade "$CK_spade" --classifier "$CK_classifier" --style "$STYLES_DIR/$m" \
    --set target_modality="$m" "${SAMPLE_SET[@]}" "${reuse[@]}"
  stage "sample randomized $m ($PAIRS pairs)" "$OUT/pairs/randomized/$m/manifest.csv" \
    "$BIN" sample --config "$CONFIGS/sample.yaml" --out "$OUT/pairs/randomized/$m" --num "$PAIRS" "${RUN_ARGS[@]}" \
    --ldm "$CK_ldm" --set image_generator=randomized --set classifier_checkpoint= --set randomized.stream=$k \
    "${SAMPLE_SET[@]}" --set label_pairs="$MAPS"
  k=$((k + 1))
done

# How often the lesion flags put lesions into the maps (docs/quality.md: >= 90 % with the flag on, <= 5 % off).
stage "quality of the lesion pairs" "$REPORT/quality/quality.md" "$BIN" quality --pairs "$OUT/pairs/spade/${MOD_LIST[0]}" \
  --real "$DATASET" --modality "${MOD_LIST[0]}" --out "$REPORT/quality" --set images=false

beside S_les train_and_segment S_les "$OUT/pairs/spade"
join_beside
beside H_les train_and_segment H_les "$DATASET" "$OUT/pairs/spade"
beside DR train_and_segment DR "$OUT/pairs/randomized"
join_beside

log "evaluate ..."
evaluate_pair S_les R_les "$CLASSES"
evaluate_pair H_les R_les "$CLASSES"
evaluate_pair DR S_les "$CLASSES"
first=$(basename "$(ls "$TEST"/labels/*.nii.gz | head -1)")
args=()
for m in R_les S_les H_les DR; do args+=(--pred "$m=$PRED/$m/$first"); done
# Rows through the lesion: the axial slice with the most voxels of the first lesion class, and 8 slices either side.
zs=$(python3 - "$TEST/labels/$first" "$(yaml_get "$SEG_CONFIG" data.class_names)" "${LESIONS%%,*}" <<'PY'
import gzip, struct, sys
classes = sys.argv[2].split(",")
if sys.argv[3] not in classes:  # the lesion is not a class of the segmenter: let `figure` choose
    sys.exit(0)
raw = open(sys.argv[1], "rb").read()
b = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
dims = struct.unpack("<8h", b[40:56])
if dims[0] < 3 or struct.unpack("<h", b[70:72])[0] != 2:  # not a 3D uint8 label volume: let `figure` choose
    sys.exit(0)
x, y, z = dims[1:4]
off = int(struct.unpack("<f", b[108:112])[0])
v, best = classes.index(sys.argv[3]), (0, z // 2)
for k in range(z):
    n = b[off + k * x * y: off + (k + 1) * x * y].count(bytes([v]))
    best = max(best, (n, k))
k = best[1]
print(f"{max(k - 8, 0)},{k},{min(k + 8, z - 1)}")
PY
)
[ -n "$zs" ] && args+=(--slices "$zs")
caption=$("$BIN" figure --image "$TEST/${MOD_LIST[0]}/$first" --ref "$TEST/labels/$first" "${args[@]}" \
  --classes "$(yaml_get "$SEG_CONFIG" data.class_names)" --out "$REPORT/fig4_tumour.png")
{
  echo "# Experiment 3 (paper 3.3): tumours"
  echo
  echo "Config \`${1:-$DEFAULT_DATA_CONFIG}\`, scale \`$SCALE\`$([ "$SMOKE" = 1 ] && echo ", SMOKE (a few steps per stage: numbers mean nothing)"),"
  echo "inputs [$MODS], $PAIRS pairs per image generator and modality, $(ls "$TEST"/labels/*.nii.gz | wc -l) held-out"
  echo "test volumes. Wall-clock: $(( $(date +%s) - T0 )) s."
  echo
  echo "R_les: real training slices; S_les: SPADE pairs from the lesion-conditioned label generator only; H_les: both;"
  echo "DR: random-contrast pairs from the same label maps."
  echo
  echo "## Table 3: mean ± sd over test volumes"
  echo
  python3 - "$REPORT" R_les S_les H_les DR <<'PY'
import csv, statistics, sys
report, models = sys.argv[1], sys.argv[2:]
rows = {m: list(csv.DictReader(open(f"{report}/per_volume_{m}.csv"))) for m in models}
classes = []
for r in rows[models[0]]:
    if r["class"] not in classes: classes.append(r["class"])
def cell(m, c, k):
    v = [float(r[k]) for r in rows[m] if r["class"] == c and r[k] not in ("nan", "")]
    v = [x for x in v if x == x]
    if not v: return "–"
    return f"{statistics.mean(v):.3f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.3f}"
for c in [c for c in ("tumour", "edema") if c in classes]:
    print(f"**{c}**\n")
    print("| metric | " + " | ".join(models) + " |")
    print("|---|" + "---|" * len(models))
    for k in ("dice", "accuracy", "precision", "recall"):
        print(f"| {k} | " + " | ".join(cell(m, c, k) for m in models) + " |")
    print()
print("**Dice, every class**\n")
print("| model | " + " | ".join(classes) + " |")
print("|---|" + "---|" * len(classes))
for m in models:
    print(f"| {m} | " + " | ".join(cell(m, c, "dice") for c in classes) + " |")
PY
  echo
  echo "## Paired tests (Wilcoxon signed-rank)"
  for e in S_les_vs_R_les H_les_vs_R_les DR_vs_S_les; do echo; echo "### ${e//_vs_/ vs }"; echo; cat "$REPORT/eval_$e/summary.md"; done
  echo
  echo "## Lesion conditioning of the label generator (\`brainspade quality\`)"
  echo
  grep -E "^\| (check|---|.*present)" "$REPORT/quality/quality.md" || true
  echo
  echo "## Figure"
  echo
  echo "![fig4](fig4_tumour.png)"
  echo
  echo "$caption (colours: background, CSF, GM, WM, tumour, edema)."
} > "$REPORT/README.md"
log "report: $REPORT/README.md"
