#!/usr/bin/env bash
# The main job: set up (if needed), then answer a question about the bundled sample frame with
# FOCUS. Until the trained embedded model lands this uses the random-weight LLaVA miniature: the
# pipeline runs end to end (targets, relevance, regions, verification, costs) but the answer text
# is meaningless. Extra arguments go to focus-vqa (e.g. --json, --model DIR).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

set +u
# shellcheck disable=SC1091
source scripts/env.sh
set -u

focus-vqa --model models/miniatures/llava \
  --image test/data/sample/frame.jpg \
  --question "What shape is the red object?" \
  --max-steps 4 "$@"
