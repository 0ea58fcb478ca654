# Shared stages of the reproduction scripts (sourced by exp1_healthy.sh, exp2_ood.sh, exp3_tumour.sh).
#   scripts/reproduce/expN_*.sh [DATASET_CONFIG] [tiny|paper]
# Environment:
#   SMOKE=1                 a few steps per stage, 4 pairs (the test suite runs this; minutes → seconds)
#   REPRO_OUT=DIR           output folder (default out/reproduce/<experiment>[-smoke])
#   REPRO_PRETRAINED=DIR    reuse trained generators: DIR/{vae,ldm,classifier,spade}/checkpoints/last.ckpt
#                           (e.g. out/demo/runs from scripts/demo.sh) instead of training them
#   REPRO_PAIRS=N           synthetic pairs per image generator (default: 20000 paper, 64 tiny, 4 smoke)
#   REPRO_SLAB=LO:HI        held-out slab of relative slice positions (default 0.25:0.40)
#   REPRO_PAIR_RANGE=LO:HI  slice positions the pairs are drawn at (default: the sample config's slice_range). exp1's
#                           generators never see its slab; drawing only outside it made no measurable difference
#                           over 3 seeds (docs/reproduction.md), so it is not the default
#   REPRO_SEED=N            seed of every training stage, the sampling and the segmenters (default: each config's
#                           run.seed); outputs go to .../<experiment>-seedN. A figure that decides something is the
#                           mean and spread over >= 3 seeds (REPRO_SEED=0, 1, 2)
#   REPRO_SIDE_BY_SIDE=0    run every stage in turn (default: with >= 2 cores and no REPRO_THREADS, stages that do
#                           not need each other run side by side on one thread each; exp3 uses it)
#   REPRO_THREADS=N         CPU threads of every training and sampling stage (default: all cores); e.g. 1 to run
#                           two seeds side by side on 2 cores
#   TEST_SUBJECT, TEST_IMAGE, TEST_LABELS   the test volume (default: first entries of the dataset config)
#   REPRO_SEG_CONFIG=FILE   segmenter config (default configs/<scale>/segmenter.yaml)
#   BRAINSPADE=PATH         the brainspade program (default build/brainspade)
# Every stage is skipped when its output exists, so a rerun continues where the last one stopped.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DATA_CONFIG=${1:-${DEFAULT_DATA_CONFIG:-configs/data/example.yaml}}
SCALE=${2:-tiny}
SMOKE=${SMOKE:-0}
BIN=${BRAINSPADE:-$ROOT/build/brainspade}
CONFIGS=configs/$SCALE
SEG_CONFIG=${REPRO_SEG_CONFIG:-$CONFIGS/segmenter.yaml}
RUN_ARGS=()  # without REPRO_SEED every stage keeps its config's run.seed; without REPRO_THREADS all cores
suffix=""
if [ -n "${REPRO_SEED:-}" ]; then
  case "$REPRO_SEED" in *[!0-9]*) echo "[$EXP] error: REPRO_SEED '$REPRO_SEED': expected a non-negative integer" >&2; exit 2 ;; esac
  RUN_ARGS=(--seed "$REPRO_SEED")
  suffix="-seed$REPRO_SEED"
fi
if [ -n "${REPRO_THREADS:-}" ]; then
  case "$REPRO_THREADS" in ''|*[!0-9]*) echo "[$EXP] error: REPRO_THREADS '$REPRO_THREADS': expected a non-negative integer" >&2; exit 2 ;; esac
  RUN_ARGS+=(--threads "$REPRO_THREADS")
fi
[ "$SMOKE" = 1 ] && suffix="$suffix-smoke"
OUT=${REPRO_OUT:-out/reproduce/$EXP$suffix}
SLAB=${REPRO_SLAB:-0.25:0.40}
T0=$(date +%s)

log() { echo "[$EXP $(( $(date +%s) - T0 ))s] $*"; }
die() { echo "[$EXP] error: $*" >&2; exit 2; }
[ -f "$SEG_CONFIG" ] || die "segmenter config $SEG_CONFIG not found"

case "$SCALE" in tiny|paper) ;; *) die "scale '$SCALE': expected tiny or paper" ;; esac
[ -x "$BIN" ] || die "$BIN not found: build first (scripts/setup.sh)"
[ -f "$DATA_CONFIG" ] || die "dataset config $DATA_CONFIG not found"
for c in vae ldm classifier spade sample; do
  [ -f "$CONFIGS/$c.yaml" ] || die "$CONFIGS/$c.yaml is missing: scale '$SCALE' has no settings for stage $c (configs/tiny has all)"
done
if [ "$SMOKE" = 1 ]; then
  PAIRS=${REPRO_PAIRS:-4}
  TRAIN_SET=(--set train.steps=2 --set train.batch_size=2 --set train.log_every=1 --set train.checkpoint_every=2
             --set train.validate_every=0)
  SEG_SET=(--set train.steps=3 --set train.batch_size=2 --set train.log_every=1 --set train.checkpoint_every=3
           --set train.validate_every=0)
  SAMPLE_SET=(--set sampler.steps=2 --set sampler.batch_size=4)
  # One timestep, one noise draw, 100 bootstrap rounds: the audit's code path, not its verdict.
  AUDIT_SET=(--set "membership_timesteps=[100]" --set membership_noise_draws=1 --set bootstrap_rounds=100)
else
  if [ "$SCALE" = paper ]; then PAIRS=${REPRO_PAIRS:-20000}; else PAIRS=${REPRO_PAIRS:-64}; fi
  TRAIN_SET=(); SEG_SET=(); SAMPLE_SET=(); AUDIT_SET=()
fi
mkdir -p "$OUT"
# Where the test volumes (images/, labels/), the predictions (<model>/) and the report go; exp2 switches them per case.
TEST=$OUT/test PRED=$OUT/pred REPORT=$OUT/report

# First entry of a list key of the dataset config (data.images / data.labels / data.subjects).
config_first() {
  python3 - "$DATA_CONFIG" "$1" <<'PY' 2>/dev/null || true
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))["data"].get(sys.argv[2]) or []
print(d[0] if d else "")
PY
}
TEST_SUBJECT=${TEST_SUBJECT:-$(config_first subjects)}
TEST_IMAGE=${TEST_IMAGE:-$(config_first images)}
TEST_LABELS=${TEST_LABELS:-$(config_first labels)}

# stage NAME DONE_PATH COMMAND...: runs COMMAND unless DONE_PATH exists.
stage() {
  local name=$1 done=$2; shift 2
  if [ -e "$done" ]; then log "$name: done before ($done)"; return; fi
  log "$name ..."
  local t=$(date +%s)
  "$@"
  log "$name: $(( $(date +%s) - t ))s"
}

# train_stage STAGE CONFIG_NAME DATASET EXTRA...: a generator stage, reused from REPRO_PRETRAINED when given.
train_stage() {
  local st=$1 cfg=$2 data=$3; shift 3
  if [ -n "${REPRO_PRETRAINED:-}" ]; then
    local ck=$REPRO_PRETRAINED/$st/checkpoints/last.ckpt
    [ -f "$ck" ] || die "REPRO_PRETRAINED: $ck not found"
    eval "CK_$st=\$ck"
    log "$st: pre-trained $ck"
    return
  fi
  local dir=$OUT/runs/$st
  stage "train $st" "$dir/done" bash -c '"$@" && touch "'"$dir"'/done"' _ \
    "$BIN" train "$st" --config "$CONFIGS/$cfg.yaml" --out "$dir" --resume "${RUN_ARGS[@]}" --set data.dataset="$data" \
    "${TRAIN_SET[@]}" "${STAGE_ARGS[@]}" "$@"
  eval "CK_$st=\$dir/checkpoints/last.ckpt"
}

# The four generator stages on DATASET (slice dataset .pt).
train_generators() {
  local data=$1
  train_stage vae vae "$data"
  train_stage ldm ldm "$data" --set vae_checkpoint="$CK_vae"
  train_stage classifier classifier "$data"
  train_stage spade spade "$data" --set classifier_checkpoint="$CK_classifier"
}

# sample_pairs NAME GENERATOR [STYLE...]: N pairs into $OUT/pairs/NAME (spade with the styles, or randomized).
sample_pairs() {
  local name=$1 gen=$2; shift 2
  local dir=$OUT/pairs/$name args=()
  if [ "$gen" = spade ]; then
    for s in "$@"; do args+=(--style "$s"); done
    args+=(--spade "$CK_spade" --classifier "$CK_classifier")
  else
    args+=(--set image_generator=randomized --set classifier_checkpoint=)
  fi
  local range=${REPRO_PAIR_RANGE:-}
  if [ -n "$range" ]; then args+=(--set "sampler.slice_range=[${range%%:*}, ${range##*:}]"); fi
  stage "sample $name ($PAIRS pairs)" "$dir/manifest.csv" \
    "$BIN" sample --config "$CONFIGS/sample.yaml" --out "$dir" --num "$PAIRS" "${RUN_ARGS[@]}" --ldm "$CK_ldm" "${args[@]}" \
    "${SAMPLE_SET[@]}"
}

# train_segmenter NAME SOURCE...: a segmenter on the listed sources. Pair folders are made at the generators'
# reduced size, so they are not pooled again (data.source_downsample 1); real datasets use the config's factor.
train_segmenter() {
  local name=$1; shift
  local dir=$OUT/segmenters/$name src="" ds=""
  local f; f=$(sed -n 's/^ *downsample: *\([0-9]*\).*/\1/p' "$SEG_CONFIG" | head -1); f=${f:-1}
  for s in "$@"; do
    src+="${src:+, }\"$s\""
    if [ -d "$s" ]; then ds+="${ds:+, }1"; else ds+="${ds:+, }$f"; fi
  done
  stage "train segmenter $name" "$dir/done" bash -c '"$@" && touch "'"$dir"'/done"' _ \
    "$BIN" train segmenter --config "$SEG_CONFIG" --out "$dir" --resume "${RUN_ARGS[@]}" \
    --set "data.sources=[$src]" --set "data.source_downsample=[$ds]" "${SEG_SET[@]}" "${STAGE_ARGS[@]}"
}

# Side by side: stages that do not need each other's output run at once, one thread each, when there are at least
# two cores online (getconf, not nproc: nproc follows OMP_NUM_THREADS) and REPRO_THREADS is unset
# (REPRO_SIDE_BY_SIDE=0 runs everything in turn). The tiny networks gain little
# from a second thread (docs/performance.md, lever h), so two one-thread stages finish sooner than two in turn.
STAGE_ARGS=()  # appended to every train_stage / train_segmenter command; beside() sets --threads 1 in its subshell
SIDE_BY_SIDE=0
if [ "${REPRO_SIDE_BY_SIDE:-1}" != 0 ] && [ -z "${REPRO_THREADS:-}" ] && [ "$(getconf _NPROCESSORS_ONLN)" -ge 2 ]; then SIDE_BY_SIDE=1; fi
SIDE_PIDS=()
# beside NAME FUNCTION ARGS...: runs FUNCTION in the background on one thread (--threads 1 for the train_* helpers,
# OMP_NUM_THREADS=1 for the commands without --threads; its output in $OUT/logs/NAME.log),
# or in the foreground when SIDE_BY_SIDE is 0. join_beside waits for all of them and stops on the first failure.
beside() {
  local name=$1; shift
  if [ "$SIDE_BY_SIDE" = 0 ]; then "$@"; return; fi
  mkdir -p "$OUT/logs"
  log "$name: beside the next stages (log: $OUT/logs/$name.log)"
  ( STAGE_ARGS=(--threads 1); export OMP_NUM_THREADS=1; "$@" ) > "$OUT/logs/$name.log" 2>&1 &
  SIDE_PIDS+=("$!:$name")
  trap stop_beside EXIT
}
stop_beside() {  # on an early exit: interrupt what still runs beside (each stage checkpoints on SIGINT and resumes)
  local entry
  for entry in "${SIDE_PIDS[@]}"; do
    pkill -INT -P "${entry%%:*}" 2>/dev/null || true
  done
}
join_beside() {
  local entry failed=""
  for entry in "${SIDE_PIDS[@]}"; do
    wait "${entry%%:*}" || failed+=" ${entry#*:}"
  done
  SIDE_PIDS=()
  trap - EXIT
  if [ -n "$failed" ]; then
    for n in $failed; do echo "[$EXP] $n failed; the end of $OUT/logs/$n.log:" >&2; tail -20 "$OUT/logs/$n.log" >&2; done
    exit 1
  fi
}

# segment_all MODEL...: predictions into $PRED/MODEL/ for every volume of $TEST/images.
segment_all() {
  for m in "$@"; do
    for v in "$TEST"/images/*.nii.gz; do
      local o=$PRED/$m/$(basename "$v")
      stage "segment $(basename "$v") with $m" "$o" \
        "$BIN" segment --model "$OUT/segmenters/$m/checkpoints/last.ckpt" --in "$v" --out "$o"
    done
  done
}

# evaluate_pair A B CLASSES: A against B (Wilcoxon) into $REPORT/eval_A_vs_B; per-volume CSVs copied to $REPORT.
evaluate_pair() {
  local a=$1 b=$2 classes=$3
  mkdir -p "$REPORT"
  "$BIN" evaluate --pred "$PRED/$a" --pred2 "$PRED/$b" --name "$a" --name2 "$b" --ref "$TEST/labels" \
    --classes "$classes" --out "$REPORT/eval_${a}_vs_${b}" > /dev/null
  cp "$REPORT/eval_${a}_vs_${b}/per_volume_$a.csv" "$REPORT/per_volume_$a.csv"
  cp "$REPORT/eval_${a}_vs_${b}/per_volume_$b.csv" "$REPORT/per_volume_$b.csv"
}

# dice_table MODEL...: Markdown table of mean ± sd Dice per class (rows = models), from the per-volume CSVs.
dice_table() {
  python3 - "$REPORT" "$@" <<'PY'
import csv, statistics, sys
report, models = sys.argv[1], sys.argv[2:]
rows, classes = {}, []
for m in models:
    by_class = {}
    for r in csv.DictReader(open(f"{report}/per_volume_{m}.csv")):
        by_class.setdefault(r["class"], []).append(float(r["dice"]))
        if r["class"] not in classes: classes.append(r["class"])
    rows[m] = by_class
print("| model | " + " | ".join(classes) + " |")
print("|---|" + "---|" * len(classes))
for m in models:
    cells = []
    for c in classes:
        v = rows[m].get(c, [])
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        cells.append(f"{statistics.mean(v):.3f} ± {sd:.3f}" if v else "–")
    print(f"| {m} | " + " | ".join(cells) + " |")
PY
}

# figure NAME VOLUME MODEL...: the paper's Fig. 3/4 layout for $TEST/images/VOLUME into $REPORT/NAME.png; prints
# the caption.
figure() {
  local name=$1 vol=$2; shift 2
  local args=()
  for m in "$@"; do args+=(--pred "$m=$PRED/$m/$vol"); done
  "$BIN" figure --image "$TEST/images/$vol" --ref "$TEST/labels/$vol" "${args[@]}" --out "$REPORT/$name.png"
}
