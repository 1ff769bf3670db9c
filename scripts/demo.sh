#!/usr/bin/env bash
# The main job: set up (if needed), then answer questions about small objects in high-resolution
# frames with FOCUS and the embedded default model (models/embedded, trained in this repository):
# four frames of a held-out scene seed (never seen in training) are drawn with focus-scenes, and
# each frame's shape question ("What shape is the red object?", objects 1-12 % of the short side)
# is answered by focus-vqa; the table shows the true answer, FOCUS's answer, its box, its cost.
# Extra arguments go to focus-vqa (e.g. --method vanilla, --model DIR).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

set +u
# shellcheck disable=SC1091
source scripts/env.sh
set -u

OUT=out/demo
focus-scenes "$OUT" --n 4 --seed 987654 >/dev/null
python - "$OUT" <<'PY' > "$OUT/shape_questions.jsonl"
import json, sys
from pathlib import Path
for line in (Path(sys.argv[1]) / "questions.jsonl").read_text().splitlines():
    q = json.loads(line)
    if q["type"] == "shape":
        print(json.dumps(q))
PY
focus-vqa --batch "$OUT/shape_questions.jsonl" "$@" > "$OUT/answers.jsonl"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
gold = [json.loads(l) for l in (out / "shape_questions.jsonl").read_text().splitlines()]
print(f"{'question':34} {'true':9} {'answer':9} {'box (source px)':26} {'passes':>6} {'seconds':>7}")
for g, line in zip(gold, (out / "answers.jsonl").read_text().splitlines()):
    r = json.loads(line)
    if "error" in r:
        print(f"{g['question']:34} {g['answer']:9} error: {r['error']}")
        continue
    print(f"{g['question']:34} {g['answer']:9} {r['answer']:9} {str(r['bbox']):26} {r['forward_passes']:6d} "
          f"{r['timings']['total']:7.2f}")
PY
