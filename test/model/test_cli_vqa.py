"""``focus-vqa`` end to end on each miniature, as a user runs it (a subprocess)."""

import json
import shutil
import subprocess

import numpy as np
import pytest

FAMILIES = ("llava", "llava_onevision", "qwen2_5_vl")


def focus_vqa(*args, timeout=240):
    exe = shutil.which("focus-vqa")
    assert exe, "focus-vqa is not installed (pip install -e .)"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_prints_valid_json_with_a_box_inside_the_image(miniature_root, sample_image_path, family, tmp_path):
    dump = tmp_path / "rel.npy"
    proc = focus_vqa(
        "--model",
        miniature_root / family,
        "--image",
        sample_image_path,
        "--question",
        "What shape is the red object?",
        "--json",
        "--max-steps",
        "2",
        "--dump-relevance",
        dump,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("answer", "targets", "bbox", "confidence", "regions", "forward_passes", "timings"):
        assert key in out
    x0, y0, x1, y1 = out["bbox"]
    assert 0 <= x0 < x1 <= 1920 and 0 <= y0 < y1 <= 1080
    assert out["forward_passes"] >= 4 and out["timings"]["total"] > 0
    rel = np.load(dump)
    assert rel.ndim == 2 and rel.dtype == np.float32 and np.isclose(rel.max(), 1.0)


def test_cli_batch_answers_every_line_in_order_and_reuses_the_frame(miniature_root, sample_image_path, tmp_path):
    batch = tmp_path / "q.jsonl"
    lines = [
        {"image": str(sample_image_path), "question": "Is there a red object in the image?"},
        {"image": str(sample_image_path), "question": "What shape is the blue object?"},
        {"image": str(tmp_path / "missing.png"), "question": "What?"},
    ]
    batch.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    proc = focus_vqa(
        "--model",
        miniature_root / "llava",
        "--batch",
        batch,
        "--max-steps",
        "1",
        "--set",
        "search.target_extraction=rule",
    )
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(rows) == 3
    assert rows[0]["question"] == lines[0]["question"] and rows[1]["question"] == lines[1]["question"]
    assert rows[0]["prefix_cached"] is False and rows[1]["prefix_cached"] is True
    assert "image not found" in rows[2]["error"]
    assert proc.returncode == 1  # one line failed


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "/nonexistent/model", "--question", "What?"], "model path does not exist"),
        (["--model", "{mini}", "--question", "What?", "--image", "/nonexistent.png"], "image not found"),
        (["--model", "{mini}", "--question", "   "], "question is empty"),
        (["--model", "{mini}", "--question", "What?", "--set", "search.s_max=0"], "s_max"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(miniature_root, sample_image_path, args, message):
    args = [a.replace("{mini}", str(miniature_root / "llava")) for a in args]
    if "--image" not in args:
        args += ["--image", str(sample_image_path)]
    proc = focus_vqa(*args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_unreadable_image_file_is_an_error(miniature_root, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    proc = focus_vqa("--model", miniature_root / "llava", "--image", bad, "--question", "What?")
    assert proc.returncode != 0 and "cannot read image" in proc.stderr and "Traceback" not in proc.stderr
