"""``focus-bench`` end to end on the LLaVA miniature, and its answer matching."""

import contextlib
import io
import json

import cv2
import pytest
import torch

from focus_ros.cli.bench import main as focus_bench
from focus_ros.cli.bench import build_parser
from focus_ros.core.bench import (ALL_BUT_COLOR, ORACLE, BenchItem, box_hit, is_correct, normalise_answer, oracle_box,
                                  run_bench)
from focus_ros.core.config import build_configs
from focus_ros.core.geometry import Box
from focus_ros.core.pipeline import METHODS, FocusPipeline
from focus_ros.core.scenes import SceneSpec, make_scene

# small budgets keep the run short; one thread: the miniature is no faster on two, and a shared
# CPU slows spinning OpenMP threads down badly
FAST = ["--max-steps", "2", "--set", "search.overrun=false", "--set", "search.target_extraction=rule",
        "--set", "search.max_new_tokens=4", "--set", "zoom.max_steps=2", "--no-progress"]


@contextlib.contextmanager
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bench_run(miniature_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), one_thread():
        rc = focus_bench(["--model", str(miniature_root / "llava"), "--n", "4", "--seed", "0", "--out", str(out),
                          "--short-side", "1080", "1200", *FAST])
    return rc, buf.getvalue(), out


def test_bench_on_four_scenes_prints_the_table_per_method_and_question_type(bench_run):
    rc, stdout, out = bench_run
    assert rc == 0, stdout
    for method in METHODS:
        assert any(line.startswith(method) for line in stdout.splitlines()), method
    for qtype in ("shape", "exists", "count", "color", ALL_BUT_COLOR):
        assert qtype in stdout
    assert "accuracy" in stdout and "passes" in stdout and "prefilled" in stdout and "seconds" in stdout


def test_bench_writes_results_json_with_every_answer_of_every_method(bench_run):
    _, _, out = bench_run
    data = json.loads((out / "results.json").read_text())
    questions = data["questions"]
    assert len(questions) >= 4 * 4 and len({q["image"] for q in questions}) == 4
    for q in questions:
        assert set(q["results"]) == set(METHODS)
        for r in q["results"].values():
            assert {"answer", "correct", "forward_passes", "tokens_prefilled", "seconds", "bbox"} <= set(r)
            assert r["forward_passes"] >= 1 and r["seconds"] > 0
    for method in METHODS:
        s = data["summary"][method][ALL_BUT_COLOR]
        assert 0.0 <= s["accuracy"] <= 1.0 and s["n"] == sum(q["type"] != "color" for q in questions)
    # costs follow the algorithms: vanilla is the cheapest, the zoom tree the most expensive
    passes = {m: data["summary"][m][ALL_BUT_COLOR]["forward_passes"] for m in METHODS}
    assert passes["vanilla"] < passes["attention"] < passes["focus"] < passes["zoom"]
    lines = (out / "answers.jsonl").read_text().splitlines()
    assert len(lines) == len(questions) * len(METHODS)


def test_bench_draws_accuracy_against_forward_passes(bench_run):
    _, _, out = bench_run
    png = out / "accuracy_vs_passes.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 300


def test_bench_reads_scenes_written_before_and_answers_them_the_same_way(bench_run, miniature_root, tmp_path, capsys):
    _, _, out = bench_run
    with one_thread():
        rc = focus_bench(["--model", str(miniature_root / "llava"), "--scenes", str(out / "scenes"),
                          "--methods", "vanilla", "--types", "shape", "exists", "--out", str(tmp_path), *FAST])
    assert rc == 0
    again = json.loads((tmp_path / "results.json").read_text())["questions"]
    first = {q["id"]: q for q in json.loads((out / "results.json").read_text())["questions"]}
    assert again and all(q["type"] in ("shape", "exists") for q in again)
    for q in again:
        assert q["results"]["vanilla"]["answer"] == first[q["id"]]["results"]["vanilla"]["answer"]


def test_bench_reports_a_missing_scene_folder_in_one_line(tmp_path, capsys, miniature_root):
    rc = focus_bench(["--model", str(miniature_root / "llava"), "--scenes", str(tmp_path / "none"),
                      "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "no questions file" in err and "Traceback" not in err


@pytest.mark.parametrize("qtype,reply,word", [
    ("shape", "It is a Red circle.", "circle"),
    ("shape", "diamond", "diamond"),
    ("count", "There are two.", "2"),
    ("count", "3", "3"),
    ("exists", "Yes, there is.", "yes"),
    ("relation", "On the left side.", "left"),
    ("color", "The star is purple", "purple"),
    ("color", "", ""),
])
def test_answers_are_normalised_to_the_word_the_question_expects(qtype, reply, word):
    assert normalise_answer(reply, qtype) == word


def test_a_reply_is_correct_only_with_the_expected_word():
    item = BenchItem("x.jpg", "What shape is the red object?", "star", "shape")
    assert is_correct(item, "A red star.") and not is_correct(item, "A circle.")


def test_box_hit_is_the_gold_centre_inside_the_answer_box():
    assert box_hit([0, 0, 100, 100], [[40, 40, 60, 60]]) is True
    assert box_hit([0, 0, 30, 30], [[40, 40, 60, 60]]) is False
    assert box_hit([0, 0, 30, 30], []) is None


def test_scene_questions_become_multiple_choice_over_their_answer_words():
    from focus_ros.core.bench import as_multiple_choice
    from focus_ros.core.methods.answer import parse_options

    item = BenchItem("x.jpg", "What shape is the red object?", "star", "shape")
    (mc,) = as_multiple_choice([item])
    choices = parse_options(mc.question)
    assert choices.stem == item.question and choices.options == list(mc.options) and "star" in mc.options
    assert is_correct(mc, "star", mc.answer_letter) and not is_correct(mc, "circle", "A" if mc.answer_letter != "A"
                                                                       else "B")


@pytest.mark.parametrize("answer_view", ["crop", "global+crop"])
def test_the_oracle_answers_from_a_crop_around_the_gold_box(miniature_root, answer_view):
    model, search = build_configs({"model.path": str(miniature_root / "llava"), "search.max_new_tokens": 4,
                                   "search.answer_view": answer_view})
    pipeline = FocusPipeline.from_configs(model, search)
    scene = make_scene(0, 0, SceneSpec(short_side=(1080, 1200)))
    items = [BenchItem(f"scene-{scene.index}", q.question, q.answer, q.type, q.boxes, id=f"q{i}")
             for i, q in enumerate(scene.questions) if q.boxes][:2]
    assert items
    with one_thread():
        records = run_bench(pipeline, items, [ORACLE], progress=False, loader=lambda _: scene.image, warmup=False)
    assert len(records) == len(items)
    for rec, item in zip(records, items):
        assert rec["method"] == ORACLE and "error" not in rec, rec
        assert rec["forward_passes"] >= 1
        assert rec["tokens_prefilled"] > 0 and rec["seconds"] > 0 and rec["answer"] is not None
        assert rec["box_hit"] is True       # the bbox contains the gold box centre
        gx0, gy0, gx1, gy1 = item.boxes[0]
        assert Box(*rec["bbox"]).contains_point((gx0 + gx1) / 2, (gy0 + gy1) / 2)
        assert rec["bbox"] == oracle_box(item.boxes, scene.width, scene.height).as_list()
    if answer_view == "global+crop":    # the frame prefix is prefilled once, then reused
        assert [r["prefix_cached"] for r in records] == [False] + [True] * (len(records) - 1)
        assert records[0]["forward_passes"] > records[-1]["forward_passes"]


def test_the_oracle_box_is_four_times_the_gold_box_clamped_to_the_frame_or_the_whole_frame():
    assert oracle_box([[90, 90, 110, 100]], 1000, 800).as_list() == [60, 55, 140, 135]   # 4 x 20 = 80 square
    assert oracle_box([[0, 0, 10, 10]], 1000, 800).as_list() == [0, 0, 40, 40]          # shifted into the frame
    assert oracle_box([[0, 0, 500, 300]], 1000, 800).as_list() == [0, 0, 1000, 800]     # clamped to the frame
    assert oracle_box([], 640, 480).as_list() == [0, 0, 640, 480]


def test_the_oracle_is_a_benchmark_method_not_a_pipeline_method():
    assert ORACLE not in METHODS
    assert build_parser().parse_args(["--methods", "focus", "oracle"]).methods == ["focus", "oracle"]
    assert build_parser().parse_args([]).methods == list(METHODS)
