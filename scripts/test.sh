#!/usr/bin/env bash
# Set up (idempotent), check lint and formatting, then run the test suite with plain `pytest`
# (arguments are passed through). Fails when ruff or pytest fails and also when pytest collects
# no tests (exit 5). One tier alone: scripts/test.sh test/unit (or test/model, test/ros, test/e2e;
# `-m unit` works too).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

set +u
# shellcheck disable=SC1091
source scripts/env.sh
set -u

# Private ROS graph and logs for this run (ROS_DOMAIN_ID must be 0..232).
export ROS_DOMAIN_ID="${FOCUS_TEST_ROS_DOMAIN_ID:-$(( $$ % 100 + 100 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
tmp="$(mktemp -d "${TMPDIR:-/tmp}/focus_ros_test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export ROS_HOME="$tmp/ros_home"
export ROS_LOG_DIR="$tmp/ros_log"
mkdir -p "$ROS_HOME" "$ROS_LOG_DIR"

# Lint and format first: a violation fails the run like a failing test (config: pyproject.toml).
echo "[test] ruff check + ruff format --check"
ruff check .
ruff format --check .

echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_HOME=$ROS_HOME"
# Plain `pytest`, not `python -m pytest`: the latter puts the source focus_ros/ (without the
# generated msg/srv/action modules) first on sys.path.
rc=0
pytest "$@" || rc=$?
if (( rc == 5 )); then
  echo "[test] ERROR: pytest collected no tests (exit 5); treating this as a failure." >&2
  exit 5
elif (( rc != 0 )); then
  echo "[test] FAILED: pytest exited with $rc" >&2
  exit "$rc"
fi
echo "[test] all tests passed"
