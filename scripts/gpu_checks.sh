#!/usr/bin/env bash
# The checks a lent GPU machine runs, in one command (docs/gpu.md): versions, the out-of-memory path
# on CUDA (scripts/gpu_oom_check.py) and the embedded model's held-out headline on CUDA in float16
# (what model.dtype auto picks there) and float32, to compare with the CPU's float32 table.
#
#   bash scripts/gpu_checks.sh [LIMIT]      # LIMIT: only the first N questions (DEVICE=cpu: a smoke run here)
#
# Needs python3 with a CUDA torch and the pinned transformers (a lent machine's image has an older
# one: carry its wheel, docs/gpu.md). Results: $OUT (or out/gpu): gpu.log, bench_*.json.
set -uo pipefail
out=${OUT:-out/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
limit=(); [ $# -ge 1 ] && limit=(--limit "$1")
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0)) s] $*"; }
{
stamp "versions"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
stamp "out of memory on CUDA"
python3 scripts/gpu_oom_check.py
stamp "held-out scenes (seed 987654, 300 frames)"
if [ ! -f out/heldout/questions.jsonl ]; then
    python3 -m focus_ros.cli.scenes out/heldout --n 300 --seed 987654 --workers "$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))" \
        2>/dev/null | tail -1
fi
stamp "focus-bench, shape questions, four processes at once (float16, float32) x (two method groups)"
pids=()
for dtype in float16 float32; do
    for group in "vanilla focus oracle" "random attention zoom"; do
        name="${dtype}_${group%% *}"
        # shellcheck disable=SC2086 # the group is a word list on purpose
        OMP_NUM_THREADS=4 python3 -m focus_ros.cli.bench --scenes out/heldout --types shape --device "${DEVICE:-cuda}" \
            --dtype "$dtype" --methods $group "${limit[@]}" --out "out/gpu_bench/$name" --no-progress \
            > "out/gpu_bench_$name.txt" 2>&1 &
        pids+=($!)
    done
done
for pid in "${pids[@]}"; do wait "$pid"; done
for f in out/gpu_bench_*.txt; do echo "== $f"; cat "$f"; done
stamp "done"
} 2>&1 | tee "$out/gpu.log"
for d in out/gpu_bench/*/; do
    [ -f "$d/results.json" ] && cp "$d/results.json" "$out/bench_$(basename "$d").json"
done
exit 0
