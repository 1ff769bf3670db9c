# Source me (bash): activates the venv and the colcon workspace of this repo for one ROS 2 distro.
#   source scripts/env.sh            Kilted: .venv + install/
#   source scripts/env.sh jazzy      Jazzy:  .venv-jazzy + install-jazzy/  (or FOCUS_DISTRO=jazzy)
# Run scripts/setup.sh [--distro jazzy] first. Safe to source more than once and under `set -u`.

_focus_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case $- in *u*) _focus_had_u=1 ;; *) _focus_had_u=0 ;; esac
set +u

_focus_distro="${1:-${FOCUS_DISTRO:-kilted}}"
case "$_focus_distro" in
  kilted) _focus_suffix="" ;;
  jazzy) _focus_suffix="-jazzy" ;;
  *) echo "[env] ERROR: unknown distro '$_focus_distro' (kilted or jazzy)" >&2; _focus_suffix="-unknown" ;;
esac

if [[ -f "$_focus_root/.venv$_focus_suffix/bin/activate" ]]; then
  # Leave another environment of this repo first, so the two distros never mix on one path.
  if [[ -n "${VIRTUAL_ENV:-}" ]] && declare -F deactivate >/dev/null; then deactivate; fi
  # shellcheck disable=SC1090
  source "$_focus_root/.venv$_focus_suffix/bin/activate"
  # The ROS wheels live in the venv prefix; install*/setup.bash prepends this workspace.
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
  export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
  unset COLCON_PREFIX_PATH
  # Drop this repo's other workspace (install*/) from the search paths an earlier source set.
  for _focus_var in PYTHONPATH LD_LIBRARY_PATH PATH; do
    _focus_val="$(printf '%s' "${!_focus_var:-}" | tr ':' '\n' | { grep -v "^$_focus_root/install" || true; } | paste -sd: -)"
    if [[ -n "$_focus_val" ]]; then export "$_focus_var=$_focus_val"; else unset "$_focus_var"; fi
  done
  export FOCUS_DISTRO="$_focus_distro"
  export ROS_DISTRO="$_focus_distro"  # as a ROS install's setup script does
  if [[ -f "$_focus_root/install$_focus_suffix/setup.bash" ]]; then
    # shellcheck disable=SC1090
    source "$_focus_root/install$_focus_suffix/setup.bash"
  else
    echo "[env] WARNING: $_focus_root/install$_focus_suffix/setup.bash missing; run scripts/setup.sh --distro $_focus_distro" >&2
  fi
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  # Do not put the current/script directory first on sys.path: from the repo root it would
  # make the source focus_ros/ (which has no generated msg/srv/action) shadow the installed
  # one for `python -c ...` and `python -m pytest`.
  export PYTHONSAFEPATH=1
else
  echo "[env] ERROR: $_focus_root/.venv$_focus_suffix missing; run scripts/setup.sh --distro $_focus_distro" >&2
fi

if [[ $_focus_had_u == 1 ]]; then set -u; fi
unset _focus_root _focus_had_u _focus_distro _focus_suffix _focus_var _focus_val
