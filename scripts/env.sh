# Source me (bash): activates the venv and the colcon workspace of this repo.
#   source scripts/env.sh
# Run scripts/setup.sh first. Safe to source more than once and under `set -u`.

_focus_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case $- in *u*) _focus_had_u=1 ;; *) _focus_had_u=0 ;; esac
set +u

if [[ -f "$_focus_root/.venv/bin/activate" ]]; then
  # shellcheck disable=SC1091
  source "$_focus_root/.venv/bin/activate"
  # The ROS wheels live in the venv prefix; install/setup.bash prepends this workspace.
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
  export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
  if [[ -f "$_focus_root/install/setup.bash" ]]; then
    # shellcheck disable=SC1091
    source "$_focus_root/install/setup.bash"
  else
    echo "[env] WARNING: $_focus_root/install/setup.bash missing; run scripts/setup.sh" >&2
  fi
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  # Do not put the current/script directory first on sys.path: from the repo root it would
  # make the source focus_ros/ (which has no generated msg/srv/action) shadow the installed
  # one for `python -c ...` and `python -m pytest`.
  export PYTHONSAFEPATH=1
else
  echo "[env] ERROR: $_focus_root/.venv missing; run scripts/setup.sh" >&2
fi

if [[ $_focus_had_u == 1 ]]; then set -u; fi
unset _focus_root _focus_had_u
