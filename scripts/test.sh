#!/usr/bin/env bash
# Set up (idempotent), check lint and formatting, then run the tests with plain `pytest`.
#
#   scripts/test.sh                   everything CI runs: the whole suite on Kilted, the ROS tiers on
#                                     Jazzy, and the ROS-free core tier on Python 3.10 and 3.12
#   scripts/test.sh --distro kilted   the whole suite on Kilted (.venv, install/)
#   scripts/test.sh --distro jazzy    the ROS tiers (test/ros, test/e2e) on Jazzy (.venv-jazzy, install-jazzy/)
#   scripts/test.sh --python 3.10     the core tier (test/unit, test/model) on Python 3.10 without ROS
#   scripts/test.sh [--distro D] ARGS pytest ARGS instead of the default selection, e.g.
#                                     scripts/test.sh test/unit  or  scripts/test.sh -m unit
#
# Fails when ruff or pytest fails and also when pytest collects no tests (exit 5).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DISTRO=""
CORE_PY=""
while (( $# )); do
  case "$1" in
    --distro) DISTRO="${2:-}"; shift 2 ;;
    --distro=*) DISTRO="${1#*=}"; shift ;;
    --python) CORE_PY="${2:-}"; shift 2 ;;
    --python=*) CORE_PY="${1#*=}"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) break ;;
  esac
done

# --- the CI matrix: no environment named and no pytest arguments ------------------------------
# Two lanes, one per core. The ROS runs go one after the other (Kilted's whole suite, then Jazzy's
# node tiers): never two node suites at once. The ROS-free core tiers (3.10, then 3.12) run beside
# them; their tests use one torch thread (test/conftest.py). The first environment of each lane is
# set up before either starts, as both would build the shared miniature models.
if [[ -z "$DISTRO" && -z "$CORE_PY" && $# -eq 0 ]]; then
  t0=$SECONDS
  # One thread per process for torch (OpenMP) and OpenCV, node processes the tests start included:
  # both default to a thread per core, and OpenMP's spin-waiting threads of two lanes would then
  # take turns on the same two cores.
  export OMP_NUM_THREADS=1 OPENCV_FOR_THREADS_NUM=1
  logs="$(mktemp -d "${TMPDIR:-/tmp}/focus_ros_core.XXXXXX")"
  trap 'rm -rf "$logs"' EXIT
  bash scripts/setup.sh --distro kilted
  bash scripts/setup.sh --python 3.10 >"$logs/setup-3.10.log" 2>&1 || { cat "$logs/setup-3.10.log"; exit 1; }
  ( bash "$0" --python 3.10 && bash "$0" --python 3.12 ) >"$logs/core.log" 2>&1 &
  core=$!
  rc_kilted=0 rc_jazzy=0 rc_core=0
  bash "$0" --distro kilted || rc_kilted=$?
  bash "$0" --distro jazzy || rc_jazzy=$?
  wait "$core" || rc_core=$?
  cat "$logs/core.log"
  if (( rc_kilted || rc_jazzy || rc_core )); then
    echo "[test] FAILED: Kilted (exit $rc_kilted), Jazzy (exit $rc_jazzy), core tiers 3.10 + 3.12 (exit $rc_core)" >&2
    exit 1
  fi
  echo "[test] all environments passed: Kilted, Jazzy, Python 3.10 and 3.12 core ($(( SECONDS - t0 )) s)"
  exit 0
fi

if [[ -n "$CORE_PY" ]]; then
  [[ -z "$DISTRO" ]] || { echo "[test] ERROR: --python and --distro exclude each other" >&2; exit 2; }
  bash scripts/setup.sh --python "$CORE_PY"
  set +u
  # shellcheck disable=SC1090
  source "$ROOT/.venv-py$CORE_PY/bin/activate"
  set -u
  export PYTHONSAFEPATH=1
  label="core tier, Python $CORE_PY"
  (( $# )) || set -- test/unit test/model
else
  DISTRO="${DISTRO:-kilted}"
  bash scripts/setup.sh --distro "$DISTRO"
  set +u
  # shellcheck disable=SC1091
  source scripts/env.sh "$DISTRO"
  set -u
  label="ROS 2 $DISTRO"
  if [[ "$DISTRO" != kilted && $# -eq 0 ]]; then
    set -- test/ros test/e2e
  fi
fi

# Private ROS graph and logs for this run (ROS_DOMAIN_ID must be 0..232).
export ROS_DOMAIN_ID="${FOCUS_TEST_ROS_DOMAIN_ID:-$(( $$ % 100 + 100 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
tmp="$(mktemp -d "${TMPDIR:-/tmp}/focus_ros_test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export ROS_HOME="$tmp/ros_home"
export ROS_LOG_DIR="$tmp/ros_log"
mkdir -p "$ROS_HOME" "$ROS_LOG_DIR"

# Lint and format first: a violation fails the run like a failing test (config: pyproject.toml).
echo "[test] $label: ruff check + ruff format --check"
ruff check .
ruff format --check .

echo "[test] $label: ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_HOME=$ROS_HOME"
# Plain `pytest`, not `python -m pytest`: the latter puts the source focus_ros/ (without the
# generated msg/srv/action modules) first on sys.path.
rc=0
pytest "$@" || rc=$?
if (( rc == 5 )); then
  echo "[test] ERROR: $label: pytest collected no tests (exit 5); treating this as a failure." >&2
  exit 5
elif (( rc != 0 )); then
  echo "[test] FAILED: $label: pytest exited with $rc" >&2
  exit "$rc"
fi
echo "[test] $label: all tests passed"
