#!/usr/bin/env bash
# Train a candidate embedded model on a lent GPU and measure it, in one command that fits a device
# lease (docs/embedded-model.md): training (default-fp32 made models/embedded in 543 s on an H200),
# then the gates (scripts/eval_embedded_model.py, with the tower-vs-LM table) and the held-out
# headline of vanilla, FOCUS and the oracle crop (focus-bench, float32 as on the CPU table).
#
#   bash scripts/gpu_train_check.sh [TRAIN FLAGS]   # e.g. --recipe default-fp32 --vision-object-cap 16
#   DEVICE=cpu SCENES=10 LIMIT=3 bash scripts/gpu_train_check.sh --recipe default-fp32 --scale 0.002   # smoke run
#
#   SWEEP="search.s_min=1,2,3 search.s_max=2,3,4,5" ...   # also pick region sizes on the validation seed
#
# A recipe longer than one lease (grid-24: ~20 min on an H200, a session lends 15 with the start):
#   BUDGET_S=420 bash scripts/gpu_train_check.sh --recipe grid-24          # trains 7 min, returns checkpoint.pt
#   RESUME=.gpu/checkpoint.pt BUDGET_S=420 bash scripts/gpu_train_check.sh --recipe grid-24   # next lease goes on
# (copy the returned checkpoint.pt into .gpu/, which .git/info/exclude ignores, and carry .gpu).
#
# Needs python3 with torch and the pinned transformers (carry its wheel, docs/gpu.md). Results in
# $OUT (or out/gpu_train), at most 8 files so a device call returns them all: run.log, train.log,
# gates.txt, sweep.txt (with SWEEP), bench.txt, bench.json, checkpoint.pt (the training state: resume
# or --vision-heads from it) and model.tar (the saved model). The work folder (WORK, default
# out/<basename of OUT>_work) keeps checkpoints, the model and the bench run; a rerun with the same WORK
# resumes from it.
set -uo pipefail
out=${OUT:-out/gpu_train}
device=${DEVICE:-cuda}
work=${WORK:-out/$(basename "$out")_work}
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
cores=$(nproc)
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0)) s] $*"; }
{
if [ -n "${RESUME:-}" ]; then
    if [ -f "$work/checkpoint.pt" ]; then
        stamp "$work already holds a checkpoint: RESUME=$RESUME is not copied over it"
    else
        cp "$RESUME" "$work/checkpoint.pt" || exit 1
        stamp "resuming from $RESUME"
    fi
fi
stamp "train $*${BUDGET_S:+ (at most $BUDGET_S s)}"
# the held-out scenes are drawn on the CPU while the GPU trains (one core left to them)
if [ ! -f out/heldout/questions.jsonl ]; then
    python3 -m focus_ros.cli.scenes out/heldout --n 300 --seed 987654 --workers 1 > "$work/scenes.log" 2>&1 &
    scenes_pid=$!
fi
python3 scripts/train_embedded_model.py --device "$device" --workers "$(( cores > 2 ? cores - 2 : 1 ))" \
    --work "$work" --out "$work/model" --no-progress ${BUDGET_S:+--max-seconds "$BUDGET_S"} "$@" > "$out/train.log" 2>&1
rc=$?
tail -3 "$out/train.log"
[ -f "$work/checkpoint.pt" ] && cp "$work/checkpoint.pt" "$out/checkpoint.pt"
if [ "$rc" = 75 ]; then          # the training script's "stopped at --max-seconds, checkpoint saved"
    [ -n "${scenes_pid:-}" ] && kill "$scenes_pid" 2>/dev/null
    stamp "time budget reached: $out/checkpoint.pt holds the state; rerun with RESUME=<that file> to go on"
    exit 0
fi
[ "$rc" = 0 ] || { tail -20 "$out/train.log"; exit 1; }
# the committed model's search settings (region sizes 1..1 cell, chosen on a validation seed for this
# view size); --write-settings below replaces the layer range by this model's best pointing
cp models/embedded/focus_settings.json "$work/model/"
stamp "gates"
python3 scripts/eval_embedded_model.py --model "$work/model" --device "$device" --scenes "${SCENES:-100}" --write-settings \
    --vision-heads "$work/checkpoint.pt" > "$out/gates.txt" 2>&1
cat "$out/gates.txt"
if [ -n "${SWEEP:-}" ]; then     # region sizes for this model's grid, chosen on the validation seed
    stamp "sweep on the validation seed: $SWEEP"
    [ -f out/valid/questions.jsonl ] || python3 -m focus_ros.cli.scenes out/valid --n 120 --seed 4242 \
        --workers "$(( cores > 2 ? cores - 2 : 1 ))" > "$work/valid.log" 2>&1
    sweep_flags=(); for s in $SWEEP; do sweep_flags+=(--sweep "$s"); done
    python3 -m focus_ros.cli.bench --model "$work/model" --scenes out/valid --types shape --device "$device" \
        --dtype float32 --methods focus ${LIMIT:+--limit "$LIMIT"} "${sweep_flags[@]}" --out "$work/sweep" \
        --no-progress > "$out/sweep.txt" 2>&1
    cat "$out/sweep.txt"
    python3 - "$work/sweep/sweep.json" "$work/model/focus_settings.json" <<'PY' || exit 1
import json, sys
from dataclasses import asdict
from focus_ros.eval.bench import headline
from focus_ros.core.config import SearchConfig, search_with
sweep, path = json.load(open(sys.argv[1])), sys.argv[2]
best = sweep["runs"][sweep["best"]]["settings"]
chosen = asdict(search_with(SearchConfig(), best))
data = json.load(open(path))
data["search"].update({k.split(".", 1)[1]: chosen[k.split(".", 1)[1]] for k in best})
name = lambda settings: " ".join(f"{k.split('.', 1)[1]}={v}" for k, v in settings.items())
tried = "; ".join(f"{name(r['settings'])} {headline(r['summary']['focus'])['accuracy']:.3f}"
                  for r in sweep["runs"] if "summary" in r)
why = data.get("why") if isinstance(data.get("why"), dict) else {"before": data.get("why", "")}
why["region sizes"] = (f"{name(best)}: FOCUS's best accuracy on the validation seed's {sweep['questions']} shape "
                       f"questions, never the held-out ones (focus-bench --sweep; out/valid: focus-scenes --n 120 "
                       f"--seed 4242): {tried}")
data["why"] = why
json.dump(data, open(path, "w"), indent=1)
print(f"wrote {path}: {data['search']}")
PY
fi
tar -C "$work" -cf "$out/model.tar" model
[ -n "${scenes_pid:-}" ] && wait "$scenes_pid"
stamp "headline: focus-bench, 300 held-out shape questions"
python3 -m focus_ros.cli.bench --model "$work/model" --scenes out/heldout --types shape --device "$device" \
    --dtype float32 --methods vanilla focus oracle ${LIMIT:+--limit "$LIMIT"} --out "$work/bench" --no-progress \
    > "$out/bench.txt" 2>&1
cat "$out/bench.txt"
cp "$work/bench/results.json" "$out/bench.json" 2>/dev/null
stamp "done"
} 2>&1 | tee "$out/run.log"
exit "${PIPESTATUS[0]}"
