#!/usr/bin/env bash
# Train a candidate embedded model on a lent GPU and measure it, in one command that fits a device
# lease (README "Embedded model"): training (default-fp32 made models/embedded in 543 s on an H200),
# then the gates (scripts/eval_embedded_model.py, with the tower-vs-LM table) and the held-out
# headline of vanilla, FOCUS and the oracle crop (focus-bench, float32 as on the CPU table).
#
#   bash scripts/gpu_train_check.sh [TRAIN FLAGS]   # e.g. --recipe default-fp32 --vision-object-cap 16
#   DEVICE=cpu SCENES=10 LIMIT=3 bash scripts/gpu_train_check.sh --recipe default-fp32 --scale 0.002   # smoke run
#
# Needs python3 with torch and the pinned transformers (carry its wheel, README "GPU"). Results in
# $OUT (or out/gpu_train): train.log, gates.txt, bench.txt, bench.json and the model (model/), which
# is small enough to come back; the training checkpoint stays in out/<basename of OUT>_work (a rerun resumes).
set -uo pipefail
out=${OUT:-out/gpu_train}
device=${DEVICE:-cuda}
work=${WORK:-out/$(basename "$out")_work}    # checkpoints; a rerun with the same OUT resumes from them
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
cores=$(nproc)
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0)) s] $*"; }
{
stamp "train $*"
# the held-out scenes are drawn on the CPU while the GPU trains (one core left to them)
if [ ! -f out/heldout/questions.jsonl ]; then
    python3 -m focus_ros.cli.scenes out/heldout --n 300 --seed 987654 --workers 1 > "$out/scenes.log" 2>&1 &
    scenes_pid=$!
fi
python3 scripts/train_embedded_model.py --device "$device" --workers "$(( cores > 2 ? cores - 2 : 1 ))" \
    --work "$work" --out "$out/model" --no-progress "$@" > "$out/train.log" 2>&1 || { tail -20 "$out/train.log"; exit 1; }
tail -3 "$out/train.log"
# the committed model's search settings (region sizes 1..2 cells, chosen on a validation seed for this
# view size); --write-settings below replaces the layer range by this model's best pointing
cp models/embedded/focus_settings.json "$out/model/"
stamp "gates"
python3 scripts/eval_embedded_model.py --model "$out/model" --device "$device" --scenes "${SCENES:-100}" --write-settings \
    --vision-heads "$work/checkpoint.pt" > "$out/gates.txt" 2>&1
cat "$out/gates.txt"
[ -n "${scenes_pid:-}" ] && wait "$scenes_pid"
stamp "headline: focus-bench, 300 held-out shape questions"
python3 -m focus_ros.cli.bench --model "$out/model" --scenes out/heldout --types shape --device "$device" \
    --dtype float32 --methods vanilla focus oracle ${LIMIT:+--limit "$LIMIT"} --out "$work/bench" --no-progress \
    > "$out/bench.txt" 2>&1
cat "$out/bench.txt"
cp "$work/bench/results.json" "$out/bench.json" 2>/dev/null
stamp "done"
} 2>&1 | tee "$out/run.log"
