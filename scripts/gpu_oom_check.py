#!/usr/bin/env python3
"""Running out of GPU memory, on a CUDA device without ROS (the core path the node's handler calls).

    python scripts/gpu_oom_check.py [--model DIR]     # default: the LLaVA miniature, built if missing

The node's own test (test/ros/test_reliability_faults.py, CUDA case) needs rclpy and this package's
built interfaces; a lent GPU machine has neither. This script runs the same sequence on the
pipeline the node owns: answer once on CUDA, fill the GPU with another tensor, drop the cached
prefix so the next question must allocate, ask again, and check that what the pipeline raises is
recognised as out-of-memory (``is_out_of_memory``, what the node tests to answer "out of memory"
instead of "internal error"), that ``release_memory`` leaves little reserved beyond what is
allocated, and that the next question is answered once the memory is back. Exit code 0 when all
hold, 1 when one does not, 2 without a CUDA device.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from focus_ros.core.config import build_configs  # noqa: E402
from focus_ros.core.pipeline import FocusPipeline, is_out_of_memory  # noqa: E402

QUESTION = "What colour is the red cup?"
SEARCH = {"search.target_extraction": "rule", "search.max_steps": 1, "search.overrun": False}
SLACK = 256 * 2**20  # reserved beyond allocated after release_memory: at most this


def _fill_gpu() -> list[torch.Tensor]:
    """Allocate until CUDA refuses: big chunks first, then ever smaller ones."""
    hog = []
    for chunk in (256 * 2**20, 2**20, 2**16, 512):
        while True:
            try:
                hog.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                break
    return hog


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model directory (default: the LLaVA miniature)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        print("gpu_oom_check: no CUDA device", file=sys.stderr)
        return 2
    model = args.model
    if model is None:
        model = REPO / "models" / "miniatures" / "llava"
        if not (model.parent / ".complete").is_file():
            from focus_ros.training.miniatures import build_miniature

            model = build_miniature("llava", Path(tempfile.mkdtemp()) / "llava")
    pipeline = FocusPipeline.from_configs(*build_configs({"model.path": str(model), "model.device": "cuda", **SEARCH}))
    frame = np.random.default_rng(71).integers(0, 256, (960, 1280, 3), dtype=np.uint8)
    checks: list[tuple[str, bool, str]] = []
    first = pipeline.run(frame, QUESTION, frame_key=1)
    checks.append(("answers on CUDA", bool(first.answer), repr(first.answer)))
    hog = _fill_gpu()
    pipeline.clear_cache()  # the next prefill must allocate
    caught = None
    try:
        pipeline.run(frame, QUESTION, frame_key=1)
    except Exception as exc:  # noqa: BLE001 - what it is is the point
        caught = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        oom = is_out_of_memory(exc)
    else:
        oom = False
    checks.append(("a question on a full GPU raises out-of-memory", oom, caught or "nothing raised"))
    pipeline.release_memory()  # as the node does, outside the except block
    spare = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    checks.append(("release_memory empties the CUDA cache", spare < SLACK, f"reserved - allocated = {spare} B"))
    hog.clear()
    again = pipeline.run(frame, QUESTION, frame_key=1)
    checks.append(("the next question is answered", again.answer == first.answer, repr(again.answer)))
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}  ({detail})")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
