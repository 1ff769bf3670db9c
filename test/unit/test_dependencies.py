"""The library declares ranges, not pins, and installing it keeps the torch already there (a Jetson's
NVIDIA build, a workstation's CUDA build): exact pins live only in the lock files in requirements/."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
LOCKS = sorted((REPO / "requirements").glob("*.txt"))


def test_the_library_declares_ranges_with_a_lower_bound_and_no_exact_pins():
    # The pip/uv install's metadata (colcon's egg-info of the ROS build declares no requirements).
    declared = [d.requires for d in metadata.distributions() if d.metadata["Name"] == "focus-ros" and d.requires]
    assert declared, "focus-ros is not installed with its metadata: run scripts/setup.sh"
    requirements = [Requirement(r) for r in declared[0]]
    assert any(r.name == "torch" for r in requirements)
    for req in requirements:
        operators = {spec.operator for spec in req.specifier}
        assert not operators & {"==", "==="}, f"{req} is an exact pin: pins belong in requirements/*.txt"
        assert operators & {">=", "~="}, f"{req} has no lower bound: declare the oldest version tested"


def test_every_lock_file_pins_every_package_exactly():
    assert {p.name for p in LOCKS} >= {"kilted.txt", "jazzy.txt", "core.txt", "bootstrap.txt"}
    for lock in LOCKS:
        for line in lock.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line == "-e .":
                continue
            spec = line.split(";", 1)[0].strip()
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", spec), f"{lock.name}: {line!r} is not a pin"


def test_pip_install_of_the_package_keeps_the_installed_torch(tmp_path):
    """The dry run resolves against what is installed (no index): torch, already there and inside
    the declared range, is not in the list of what pip would install."""
    torch_version = metadata.version("torch")
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation"]
    cmd += ["--disable-pip-version-check", "--quiet", "--report", str(report), str(REPO)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if run.returncode != 0 and "No module named pip" in run.stderr:
        pytest.fail(f"pip is missing from {sys.prefix}: the set-up creates venvs with `python -m venv`")
    assert run.returncode == 0, run.stderr[-2000:]
    installs = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert set(installs) == {"focus-ros"}, f"pip would also install {installs} next to torch {torch_version}"
    assert metadata.version("torch") == torch_version
