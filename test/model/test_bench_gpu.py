"""scripts/gpu_bench.py without a GPU: its message, and its logic on a tiny configuration."""

import contextlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_bench.py"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_bench_says_clearly_that_it_needs_a_gpu():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stderr and "--tiny --device cpu" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_gpu_bench_logic_on_a_tiny_configuration_prints_every_method_and_the_prefix_cost(miniature_root, tmp_path):
    gpu_bench = load_script()
    out = io.StringIO()
    report = tmp_path / "t.json"
    with contextlib.redirect_stdout(out):
        rc = gpu_bench.main(
            [
                "--tiny",
                "--device",
                "cpu",
                "--repeats",
                "1",
                "--frame",
                "1280",
                "720",
                "--processor",
                str(miniature_root / "llava"),
                "--json",
                str(report),
            ]
        )
    text = out.getvalue()
    assert rc == 0, text
    for method in ("vanilla", "focus", "zoom"):
        assert f"sdpa               {method:9} first (prefill)" in text
        assert f"sdpa               {method:9} second (cached)" in text
    assert "on the cached prefix" in text
    import json

    rows = json.loads(report.read_text())["rows"]
    first = {r["method"]: r for r in rows if r["question"] == "first"}
    second = {r["method"]: r for r in rows if r["question"] == "second"}
    # the second question on a frame skips exactly the prefix prefill
    assert second["vanilla"]["forward_passes"] == first["vanilla"]["forward_passes"] - 1
    # fixed step counts: zoom pops 4 nodes, never stopping early
    assert first["zoom"]["forward_passes"] > first["focus"]["forward_passes"] > first["vanilla"]["forward_passes"]
