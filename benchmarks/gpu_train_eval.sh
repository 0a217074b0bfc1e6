#!/usr/bin/env bash
# Train an InfoTok tokenizer on a GPU within a wall-clock budget, then measure it: the
# rate-distortion table against every baseline, the per-kind token allocation, and the
# wall-time ratios. Prints a short table; reports, logs and (when under 16 MB) both
# checkpoints go to $RESULTS (default: $OUT on a device machine).
#
#   PRESET=tiny ADAPTIVE=tiny S1=240 S2=150 bash benchmarks/gpu_train_eval.sh   # shippable default
#   INIT1=tokenizer/checkpoints/tiny.safetensors LR1=5e-4 ...   # continue from the shipped base
#   PRESET=base ADAPTIVE=reference S1=300 S2=150 bash benchmarks/gpu_train_eval.sh  # the paper's sizes
#
# Each stage first trains PROBE steps into a scratch folder to measure steps/s on this
# machine, then runs `infotok train` for as many steps as fit in its budget (S1, S2 seconds),
# so the cosine schedule ends where the budget does. Data: the built-in procedural corpus
# (nothing downloaded). Needs python3 with torch (CUDA build), click, tqdm, safetensors,
# scikit-image and matplotlib; run from the repository root. On a CPU it runs the same way
# (slowly): DEVICE=cpu S1=20 S2=20 CROP=32 FRAMES=5 EVAL_SIZE=32 EVAL_FRAMES=5 checks the
# plumbing in about two minutes.
set -euo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

PRESET=${PRESET:-tiny}            # base tokenizer preset
ADAPTIVE=${ADAPTIVE:-tiny}        # adaptive layer preset
DEVICE=${DEVICE:-auto}
INIT1=${INIT1:-}                  # optional: stage 1 continues from this checkpoint's base (same preset)
S1=${S1:-240}                     # seconds of stage 1 (fixed-rate tokenizer)
S2=${S2:-150}                     # seconds of stage 2 (InfoTok layer)
BATCH=${BATCH:-16}
CROP=${CROP:-128}
FRAMES=${FRAMES:-17}
LR1=${LR1:-1e-3}
LR2=${LR2:-5e-4}
PROBE=${PROBE:-30}
EVAL_SIZE=${EVAL_SIZE:-128}
EVAL_FRAMES=${EVAL_FRAMES:-17}
EVAL_CLIPS=${EVAL_CLIPS:-20}
SPEARMAN_PSNR=${SPEARMAN_PSNR:-20}
RUN=${RUN:-runs/gpu-$PRESET-$ADAPTIVE}
RESULTS=${RESULTS:-${OUT:-$RUN/results}}
CLI="python3 -m jobs.cli"
mkdir -p "$RUN" "$RESULTS"

steps_for() {  # steps_for SECONDS PROBE_JSON -> steps that fit (at least 2 * PROBE)
    python3 -c 'import json, sys; r = json.load(open(sys.argv[2]))["steps_per_s"]; print(max(2 * int(sys.argv[3]), int(float(sys.argv[1]) * r)))' "$1" "$2" "$PROBE"
}
common=(--device "$DEVICE" --batch-size "$BATCH" --crop "$CROP" --frames "$FRAMES" --save-dtype float16 --json)
init1=()
if [ -n "$INIT1" ]; then init1=(--init "$INIT1"); fi

echo "== stage 1: $PRESET, probe"
rm -rf "$RUN/probe1"
$CLI train --out "$RUN/probe1" --preset "$PRESET" "${init1[@]}" --steps "$PROBE" --warmup-steps 5 --lr "$LR1" \
    --checkpoint-every 100000 "${common[@]}" > "$RUN/probe1.json"
STEPS1=$(steps_for "$S1" "$RUN/probe1.json")
echo "== stage 1: $STEPS1 steps"
$CLI -v train --out "$RUN/s1" --preset "$PRESET" "${init1[@]}" --steps "$STEPS1" --warmup-steps 200 --lr "$LR1" \
    --checkpoint-every 500 --time-limit "$((S1 * 3 / 2))" "${common[@]}" > "$RUN/stage1.json" 2> "$RESULTS/stage1.log"

echo "== stage 2: $ADAPTIVE, probe"
rm -rf "$RUN/probe2"
$CLI train --out "$RUN/probe2" --preset "$PRESET" --stage adaptive --adaptive-preset "$ADAPTIVE" \
    --init "$RUN/s1/tokenizer.safetensors" --steps "$PROBE" --warmup-steps 5 --lr "$LR2" \
    --checkpoint-every 100000 "${common[@]}" > "$RUN/probe2.json"
STEPS2=$(steps_for "$S2" "$RUN/probe2.json")
echo "== stage 2: $STEPS2 steps"
$CLI -v train --out "$RUN/s2" --preset "$PRESET" --stage adaptive --adaptive-preset "$ADAPTIVE" \
    --init "$RUN/s1/tokenizer.safetensors" --steps "$STEPS2" --warmup-steps 100 --lr "$LR2" \
    --checkpoint-every 500 --time-limit "$((S2 * 3 / 2))" "${common[@]}" > "$RUN/stage2.json" 2> "$RESULTS/stage2.log"
echo "== router stage: the latent head and E[s]"
$CLI -v train --out "$RUN/router" --stage router --init "$RUN/s2/tokenizer.safetensors" --router-clips 2048 \
    --steps 4000 --batch-size 32 --frames "$EVAL_FRAMES" --crop "$EVAL_SIZE" --lr 2e-3 --device "$DEVICE" \
    --json > "$RUN/router.json" 2> "$RESULTS/router.log"
CKPT="$RUN/router/tokenizer.safetensors"

echo "== eval"
$CLI eval procedural --checkpoint "$CKPT" --device "$DEVICE" --resolution "$EVAL_SIZE" --clip-frames "$EVAL_FRAMES" \
    --num-procedural "$EVAL_CLIPS" --methods elbo,gain,fixed,random,raster,jump,elastic,oracle,full --betas 1,0.75,0.5,0.25 \
    --spearman-psnr "$SPEARMAN_PSNR" --json > "$RESULTS/eval.json"
python3 benchmarks/bench_router.py --checkpoint "$CKPT" --device "$DEVICE" --clips "$EVAL_CLIPS" \
    --size "$EVAL_SIZE" --frames "$EVAL_FRAMES" > "$RESULTS/allocation.txt"
python3 benchmarks/bench_adaptive.py --checkpoint "$CKPT" --device "$DEVICE" --autocast --clips 8 --batch 4 \
    --size "$EVAL_SIZE" --frames "$EVAL_FRAMES" --reps 3 --json > "$RESULTS/timing.json"

# at most 8 files come back from a device machine: 3 reports, 2 logs, 2 small checkpoints
for pair in "$RUN/s1/tokenizer.safetensors:stage1.safetensors" "$CKPT:stage2.safetensors"; do
    src=${pair%%:*}
    if [ "$(stat -c %s "$src")" -lt 16000000 ]; then cp "$src" "$RESULTS/${pair##*:}"; fi
done

python3 - "$RESULTS" "$RUN" "$STEPS1" "$STEPS2" <<'EOF'
import json, sys
res, run, s1, s2 = sys.argv[1:5]
st1, st2 = json.load(open(f"{run}/stage1.json")), json.load(open(f"{run}/stage2.json"))
ev, tm = json.load(open(f"{res}/eval.json")), json.load(open(f"{res}/timing.json"))
print(f"stage 1: {st1['steps_done']}/{s1} steps at {st1['steps_per_s']:.2f}/s; "
      f"stage 2: {st2['steps_done']}/{s2} steps at {st2['steps_per_s']:.2f}/s -> {ev['tokenizer_id']}")
print(f"{'method':<8} {'beta':>5} {'BPP16':>6} {'PSNR':>6} {'pooled':>6} {'SSIM':>6}")
for r in ev["rows"]:
    print(f"{r['method']:<8} {r['beta']:>5.2f} {r['bpp16']:>6.3f} {r['psnr']:>6.2f} {r['psnr_pooled']:>6.2f} {r['ssim']:>6.3f}")
d = ev.get("difficulty", {})
print(f"Spearman(I, fewest tokens for {d.get('target_psnr')} dB): {d.get('spearman', float('nan')):.3f} "
      f"({d.get('unreached')} clips never reach it)")
r1, r2 = tm["ratio_over_fixed"], tm.get("ratio_elastic_over_elbo", {})
print(f"wall time on {tm['device']}: tokenize / fixed: " + ", ".join(f"{k} {v['tokenize']:.2f}" for k, v in r1.items())
      + f"; elastic/elbo tokenize {r2.get('tokenize', float('nan')):.2f}")
EOF
sed -n '/beta   rate/,/^$/p' "$RESULTS/allocation.txt"
