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
# Each core tier runs beside a ROS run: its tests use one torch thread (test/conftest.py) and the
# node tests leave most of the second core idle while they wait on DDS, so the two overlap well.
if [[ -z "$DISTRO" && -z "$CORE_PY" && $# -eq 0 ]]; then
  t0=$SECONDS
  logs="$(mktemp -d "${TMPDIR:-/tmp}/focus_ros_core.XXXXXX")"
  trap 'rm -rf "$logs"' EXIT
  core_beside() {  # $1: Python version of the core tier; $2: ROS distro run in the foreground
    bash scripts/setup.sh --python "$1" >"$logs/setup-$1.log" 2>&1 || { cat "$logs/setup-$1.log"; return 1; }
    bash scripts/setup.sh --distro "$2" || return 1
    bash "$0" --python "$1" >"$logs/$1.log" 2>&1 & local core=$!
    local rc_ros=0 rc_core=0
    bash "$0" --distro "$2" || rc_ros=$?
    wait "$core" || rc_core=$?
    cat "$logs/$1.log"
    if (( rc_ros || rc_core )); then
      echo "[test] FAILED: ROS 2 $2 (exit $rc_ros) / core tier on Python $1 (exit $rc_core)" >&2
      return 1
    fi
  }
  core_beside 3.10 kilted
  core_beside 3.12 jazzy
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
