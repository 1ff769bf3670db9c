#!/usr/bin/env bash
# Regenerate the lock files in requirements/ from their .in files with uv (exact pins for set-up
# and CI; pyproject.toml keeps ranges). Run after changing pyproject.toml's dependencies or an .in
# file, then run scripts/test.sh for every distro and interpreter the locks serve. Versions already
# pinned are kept (uv prefers them); pass --upgrade to move everything to the newest allowed.
#   kilted.txt, jazzy.txt: Python 3.11 (the interpreter the ROS 2 wheels on PyPI are built for)
#   core.txt:              Python 3.10-3.12, one universal lock (ROS-free core tier)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV="${UV:-uv}"
if ! command -v "$UV" >/dev/null; then
  echo "[lock] uv not found: run scripts/setup.sh first (it installs uv into .venv) and source scripts/env.sh" >&2
  exit 1
fi
common=(--quiet --no-header "$@")
for distro in kilted jazzy; do
  "$UV" pip compile "${common[@]}" --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    "requirements/$distro.in" -o "requirements/$distro.txt"
done
"$UV" pip compile "${common[@]}" --universal --python-version 3.10 \
  requirements/core.in -o requirements/core.txt
echo "[lock] requirements/{kilted,jazzy,core}.txt written"
