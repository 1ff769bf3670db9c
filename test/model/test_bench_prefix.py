"""``focus-bench-prefix``: the benchmark contract's JSON and the stage profile, as a user runs it;
and the model-stage seconds every result carries (``FocusResult.timings["model.*"]``)."""

import json
import shutil
import subprocess

import pytest

from focus_ros.core.config import ModelConfig, search_defaults
from focus_ros.core.pipeline import FocusPipeline

CELLS = {"first", "second_same_target", "second_other_target"}
MODEL_STAGES = ("model.preprocess", "model.prefill", "model.extend", "model.generate")


def bench_prefix(*args, timeout=300):
    exe = shutil.which("focus-bench-prefix")
    assert exe, "focus-bench-prefix is not installed (pip install -e .)"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_bench_writes_seconds_and_passes_of_each_question_per_method(sample_image_path, tmp_path):
    out = tmp_path / "bench.json"
    proc = bench_prefix(
        "--image",
        sample_image_path,
        "--methods",
        "vanilla",
        "focus",
        "--repeats",
        "1",
        "--json",
        out,
        "--verify-crops",
        2,
    )
    assert proc.returncode == 0, proc.stderr
    table = json.loads(out.read_text())
    assert set(table) == {"vanilla", "focus"}
    for cells in table.values():
        assert set(cells) == CELLS
        for cell in cells.values():
            assert cell["seconds"] > 0 and cell["passes"] >= 1 and cell["reused_passes"] >= 0
            stages = cell["stages"]
            assert sum(stages[k] for k in MODEL_STAGES) <= stages["total"] + 1e-3
    vanilla = table["vanilla"]
    assert vanilla["first"]["passes"] == 2  # frame prefix + question
    assert vanilla["second_same_target"]["passes"] == vanilla["second_other_target"]["passes"] == 1  # cached
    focus = table["focus"]
    assert focus["first"]["stages"]["model.preprocess"] > 0 and focus["first"]["stages"]["verify"] > 0
    # the same target on the same frame: its relevance map and crop confidences are reused
    assert focus["second_same_target"]["reused_passes"] > 0
    assert focus["second_same_target"]["passes"] < focus["first"]["passes"]
    # the profile names every stage, and both same-target questions got the same targets
    for stage in ("targets", "relevance", "proposals", "verify", "answer", *MODEL_STAGES):
        assert stage in proc.stdout
    assert "extracted other targets" not in proc.stdout
    # and what bounds a first FOCUS question: the frame, then the crops one at a time and batched
    bound = proc.stdout.split("What bounds a first FOCUS question")[1].splitlines()[1:4]
    names = ("frame prefix and one question", "2 crops, one at a time", "2 crops, one batched forward")
    assert [line[: len(n)] for line, n in zip(bound, names)] == list(names)
    assert all(float(line.split()[-1]) > 0 for line in bound)


@pytest.mark.parametrize("family", ("llava", "llava_onevision", "qwen2_5_vl"))
def test_result_timings_carry_the_seconds_of_each_kind_of_model_call(miniature_root, family):
    import numpy as np

    model = ModelConfig(path=str(miniature_root / family))
    pipe = FocusPipeline.from_configs(model, search_defaults(family))
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    r = pipe.run(image, "What shape is the red object?", method="focus")
    for key in MODEL_STAGES:
        assert r.timings[key] > 0, key
    # model calls run inside the pipeline's stages: together never longer than the question
    assert sum(r.timings[k] for k in MODEL_STAGES) <= r.timings["total"]
    assert r.to_dict()["timings"]["model.prefill"] > 0


def test_gpu_bench_times_the_verify_stage_one_at_a_time_and_batched(miniature_root, tmp_path):
    import contextlib
    import importlib.util
    import io
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "gpu_bench.py"
    spec = importlib.util.spec_from_file_location("gpu_bench", script)
    gpu_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_bench)
    report = tmp_path / "t.json"
    out = io.StringIO()
    args = [
        "--tiny",
        "--device",
        "cpu",
        "--repeats",
        "1",
        "--frame",
        "960",
        "540",
        "--methods",
        "vanilla",
        "--verify-crops",
        "3",
        "--stages",
        "--processor",
        str(miniature_root / "llava"),
        "--json",
        str(report),
    ]
    with contextlib.redirect_stdout(out):
        assert gpu_bench.main(args) == 0, out.getvalue()
    text = out.getvalue()
    assert "verify stage, 3 crops" in text and "(search.verify_batch 1)" in text
    assert "model.preprocess" in text  # --stages
    (verify,) = json.loads(report.read_text())["verify"]
    assert verify["crops"] == 3 and verify["one_at_a_time_seconds"] > 0 and verify["batched_seconds"] > 0
    assert verify["max_confidence_diff"] <= 1e-4  # batching changes the time, not the confidences
