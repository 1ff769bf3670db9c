"""``focus-bench`` end to end on the LLaVA miniature, and its answer matching."""

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
import torch

from focus_ros.cli.bench import build_parser
from focus_ros.cli.bench import main as focus_bench
from focus_ros.core.config import SearchConfig, build_configs, search_with
from focus_ros.core.geometry import Box, GridMapping
from focus_ros.core.methods import METHODS
from focus_ros.core.pipeline import FocusPipeline
from focus_ros.core.results import FocusResult
from focus_ros.eval.bench import (
    ALL_BUT_COLOR,
    FOUND,
    ORACLE,
    OUTRANKED,
    UNPROPOSED,
    UNVERIFIED,
    WHERE,
    BenchItem,
    box_hit,
    diagnose,
    format_diagnosis,
    gold_cell_rank,
    growth_stops,
    is_correct,
    normalise_answer,
    oracle_box,
    run_bench,
    sweep_grid,
    target_share,
    where_found,
)
from focus_ros.eval.scenes import SceneSpec, make_scene

# small budgets keep the run short; one thread: the miniature is no faster on two, and a shared
# CPU slows spinning OpenMP threads down badly
FAST = [
    "--max-steps",
    "2",
    "--set",
    "search.overrun=false",
    "--set",
    "search.target_extraction=rule",
    "--set",
    "search.max_new_tokens=4",
    "--set",
    "zoom.max_steps=2",
    "--no-progress",
]


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
        rc = focus_bench(
            [
                "--model",
                str(miniature_root / "llava"),
                "--n",
                "4",
                "--seed",
                "0",
                "--out",
                str(out),
                "--short-side",
                "1080",
                "1200",
                *FAST,
            ]
        )
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


def test_bench_records_each_method_s_candidate_regions_and_where_its_box_stands_against_the_gold_box(bench_run):
    _, stdout, out = bench_run
    data = json.loads((out / "results.json").read_text())
    gold = {q["id"]: q["boxes"] for q in data["questions"]}
    for method in ("focus", "random"):
        rows = data["diagnosis"][method]
        counted = [(q["id"], q["results"][method]) for q in data["questions"] if q["type"] != "color" and q["boxes"]]
        assert all(r["regions"] for _, r in counted)  # every searching answer kept its candidates
        assert sum(v["n"] for v in rows["where"].values()) == len(counted)
        assert rows["where"][FOUND]["n"] == sum(bool(r["box_hit"]) for _, r in counted)
        assert sum(v["n"] for v in rows["share"].values()) == rows["where"][FOUND]["n"]
        assert sum(v["n"] for v in rows["frame"].values()) == len(counted)  # every frame's size was kept
        assert sum(v["n"] * v["found"] for v in rows["frame"].values() if v["n"]) == pytest.approx(
            rows["where"][FOUND]["n"]
        )
        for qid, r in counted:
            if not r["box_hit"] and where_found(r, gold[qid]) == UNPROPOSED:
                assert not any(box_hit(g["bbox"], gold[qid]) for g in r["regions"])
    focus = [q["results"]["focus"] for q in data["questions"] if q["type"] != "color" and q["boxes"]]
    assert all(isinstance(r["map_rank"], int) and r["map_rank"] >= 0 for r in focus)  # FOCUS always has a map
    assert all(q["results"]["random"]["map_rank"] is None for q in data["questions"])  # random windows have none
    assert "answer box" in stdout and FOUND in stdout and "map rank" in stdout


def test_the_gold_cell_rank_counts_the_relevance_map_cells_that_score_above_the_target_s_cell():
    mapping = GridMapping((0, 100, 200, 300, 400), (0, 100, 200, 300, 400), 400, 400)  # 4 x 4 cells of 100 px
    rel = np.arange(16, dtype=float).reshape(4, 4)  # cell (3, 3) is the maximum
    result = FocusResult("q", "a", "focus", relevance_maps={"red": rel}, relevance_mapping=mapping)
    assert gold_cell_rank(result, [[310, 310, 330, 330]]) == 0
    assert gold_cell_rank(result, [[10, 10, 30, 30]]) == 15  # the map's minimum
    assert gold_cell_rank(result, [[10, 10, 30, 30], [210, 310, 230, 330]]) == 1  # the better of two: cell (3, 2)
    assert gold_cell_rank(result, []) is None
    assert gold_cell_rank(FocusResult("q", "a", "random"), [[10, 10, 30, 30]]) is None


def test_where_the_answer_box_stands_is_read_off_the_regions_the_method_proposed_and_verified():
    gold = [[100, 100, 120, 120]]  # centre (110, 110)
    holds, elsewhere = [0, 0, 200, 200], [500, 500, 700, 700]

    def rec(bbox, regions):
        return {
            "bbox": bbox,
            "box_hit": box_hit(bbox, gold),
            "regions": [{"bbox": b, "confidence": c, "relevance": 1.0} for b, c in regions],
        }

    assert where_found(rec(holds, [(holds, 0.9)]), gold) == FOUND
    assert where_found(rec(elsewhere, [(elsewhere, 0.9), (holds, 0.2)]), gold) == OUTRANKED
    assert where_found(rec(elsewhere, [(elsewhere, 0.9), (holds, -1.0)]), gold) == UNVERIFIED
    assert where_found(rec(elsewhere, [(elsewhere, 0.9)]), gold) == UNPROPOSED
    assert where_found(rec(elsewhere, []), gold) is None  # nothing recorded: not guessed
    assert where_found(rec(holds, [(holds, 0.9)]), []) is None  # no gold box
    assert target_share(holds, gold) == pytest.approx(0.1) and target_share(elsewhere, gold) is None


def test_the_diagnosis_counts_each_question_once_with_its_accuracy_and_splits_hits_by_the_target_s_share():
    items = [
        BenchItem(f"{i}.jpg", "What shape is the red object?", "star", "shape", boxes=[[0, 0, 10, 10]], id=str(i))
        for i in range(5)
    ]
    items.append(BenchItem("c.jpg", "What color is the star?", "red", "color", boxes=[[0, 0, 10, 10]], id="c"))
    box = {"bbox": [0, 0, 80, 80], "confidence": 0.9, "relevance": 1.0}  # target 1/8 of its side
    tight = {"bbox": [0, 0, 20, 20], "confidence": 0.9, "relevance": 1.0}  # 1/2
    away = {"bbox": [50, 50, 90, 90], "confidence": 0.8, "relevance": 1.0}

    def rec(i, bbox, regions, correct):
        return {
            "method": "focus",
            "id": str(i),
            "type": "shape",
            "correct": correct,
            "bbox": bbox,
            "box_hit": box_hit(bbox, items[0].boxes),
            "regions": regions,
            "image_size": [1600, 900],
        }

    records = [
        {**rec(0, box["bbox"], [box], True), "map_rank": 0},
        {**rec(1, tight["bbox"], [tight], True), "map_rank": 2},
        rec(2, tight["bbox"], [tight], False),
        rec(3, away["bbox"], [away, box], False),
        rec(4, away["bbox"], [away], True),
        {**rec("c", box["bbox"], [box], True), "type": "color"},  # not an all* question
        {"method": "focus", "id": "4", "type": "shape", "error": "x", "correct": False},
    ]
    d = diagnose(items, records)["focus"]
    assert {k: v["n"] for k, v in d["where"].items()} == {FOUND: 3, OUTRANKED: 1, UNVERIFIED: 0, UNPROPOSED: 1}
    assert d["where"][FOUND]["accuracy"] == pytest.approx(2 / 3) and d["where"][UNVERIFIED]["accuracy"] is None
    assert d["where"][FOUND]["map_rank"] == 1.0 and d["where"][UNPROPOSED]["map_rank"] is None  # median of 0, 2
    assert d["share"]["1/8-1/6"] == {"n": 1, "accuracy": 1.0, "found": 1.0, "map_rank": 0.0}
    assert d["share"][">= 1/2"] == {"n": 2, "accuracy": 0.5, "found": 1.0, "map_rank": 2.0}
    # a 10 px target in a 1600 px frame is 1/160 of its side; question 4 comes from a 500 px frame (1/50)
    records[4]["image_size"] = [500, 300]
    d = diagnose(items, records)["focus"]
    assert d["frame"]["0-1/100"] == {"n": 4, "accuracy": 0.5, "found": 0.75, "map_rank": 1.0}
    assert d["frame"]["1/50-1/32"] == {"n": 1, "accuracy": 1.0, "found": 0.0, "map_rank": None}
    table = format_diagnosis({"focus": d})
    assert "target 0-1/100 of the frame's side" in table
    assert list(WHERE)[1] in table and "target 1/8-1/6 of its side" in table and UNVERIFIED not in table


def test_bench_draws_accuracy_against_forward_passes(bench_run):
    _, _, out = bench_run
    png = out / "accuracy_vs_passes.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 300


def test_bench_reads_scenes_written_before_and_answers_them_the_same_way(bench_run, miniature_root, tmp_path, capsys):
    _, _, out = bench_run
    with one_thread():
        rc = focus_bench(
            [
                "--model",
                str(miniature_root / "llava"),
                "--scenes",
                str(out / "scenes"),
                "--methods",
                "vanilla",
                "--types",
                "shape",
                "exists",
                "--out",
                str(tmp_path),
                *FAST,
            ]
        )
    assert rc == 0
    again = json.loads((tmp_path / "results.json").read_text())["questions"]
    first = {q["id"]: q for q in json.loads((out / "results.json").read_text())["questions"]}
    assert again and all(q["type"] in ("shape", "exists") for q in again)
    for q in again:
        assert q["results"]["vanilla"]["answer"] == first[q["id"]]["results"]["vanilla"]["answer"]


def test_a_sweep_answers_the_questions_once_per_combination_of_search_settings_and_names_the_best(
    bench_run, miniature_root, tmp_path, capsys
):
    _, _, out = bench_run
    with one_thread():
        rc = focus_bench(
            [
                "--model",
                str(miniature_root / "llava"),
                "--scenes",
                str(out / "scenes"),
                "--methods",
                "focus",
                "vanilla",
                "--types",
                "shape",
                "--limit",
                "2",
                "--out",
                str(tmp_path),
                *FAST,
                "--set",
                "search.s_min=1",
                "--set",
                "search.s_max=2",
                "--sweep",
                "search.max_steps=1,2",
                "--sweep",
                "search.s_min=1,3",
            ]
        )
    captured = capsys.readouterr()
    stdout = captured.out
    assert rc == 0, captured.err
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["settings"] for r in data["runs"]] == [
        {"search.max_steps": "1", "search.s_min": "1"},
        {"search.max_steps": "1", "search.s_min": "3"},
        {"search.max_steps": "2", "search.s_min": "1"},
        {"search.max_steps": "2", "search.s_min": "3"},
    ]
    ran = [r for r in data["runs"] if "summary" in r]
    skipped = [r for r in data["runs"] if "skipped" in r]
    assert len(ran) == 2 and len(skipped) == 2 and all("s_max" in r["skipped"] for r in skipped)  # 3 > s_max 2
    assert [(r["search"]["max_steps"], r["search"]["s_min"], r["search"]["s_max"]) for r in ran] == [
        (1, 1, 2),
        (2, 1, 2),
    ]
    for r in ran:  # each combination answered every question with each method
        assert {m: r["summary"][m]["shape"]["n"] for m in ("focus", "vanilla")} == {"focus": 2, "vanilla": 2}
    assert data["best_by"] == "focus" and data["best"] in (0, 2)
    rows = [line for line in stdout.splitlines() if line.strip().startswith(("1 ", "2 "))]
    assert len(rows) == 4 and sum("skipped" in line for line in rows) == 2
    assert sum(line.endswith("*") for line in rows) == 1 and "best (focus, '*'): --set search.max_steps=" in stdout
    assert not (tmp_path / "results.json").exists()  # a sweep writes its own file


def test_sweep_settings_combine_in_order_and_refuse_what_a_loaded_model_cannot_change():
    assert sweep_grid(["search.s_min=1,2", "search.s_max=3"]) == [
        {"search.s_min": "1", "search.s_max": "3"},
        {"search.s_min": "2", "search.s_max": "3"},
    ]
    for bad, why in (
        (["model.dtype=float16,float32"], "only search"),
        (["search.s_min"], "expected"),
        (["search.s_min=1", "search.s_min=2"], "twice"),
        (["search.s_min="], "expected"),
    ):
        with pytest.raises(ValueError, match=why):
            sweep_grid(bad)
    with pytest.raises(ValueError, match="unknown"):
        search_with(SearchConfig(), {"search.nope": "1"})
    assert search_with(SearchConfig(), {"search.s_min": "2", "search.overrun": "false"}).s_min == 2


def test_bench_reports_a_missing_scene_folder_in_one_line(tmp_path, capsys, miniature_root):
    rc = focus_bench(
        [
            "--model",
            str(miniature_root / "llava"),
            "--scenes",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "no questions file" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "qtype,reply,word",
    [
        ("shape", "It is a Red circle.", "circle"),
        ("shape", "diamond", "diamond"),
        ("count", "There are two.", "2"),
        ("count", "3", "3"),
        ("exists", "Yes, there is.", "yes"),
        ("relation", "On the left side.", "left"),
        ("color", "The star is purple", "purple"),
        ("color", "", ""),
    ],
)
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
    from focus_ros.core.methods.answer import parse_options
    from focus_ros.eval.bench import as_multiple_choice

    item = BenchItem("x.jpg", "What shape is the red object?", "star", "shape")
    (mc,) = as_multiple_choice([item])
    choices = parse_options(mc.question)
    assert choices.stem == item.question and choices.options == list(mc.options) and "star" in mc.options
    assert is_correct(mc, "star", mc.answer_letter) and not is_correct(
        mc, "circle", "A" if mc.answer_letter != "A" else "B"
    )


@pytest.mark.parametrize("answer_view", ["crop", "global+crop"])
def test_the_oracle_answers_from_a_crop_around_the_gold_box(miniature_root, answer_view):
    model, search = build_configs(
        {"model.path": str(miniature_root / "llava"), "search.max_new_tokens": 4, "search.answer_view": answer_view}
    )
    pipeline = FocusPipeline.from_configs(model, search)
    scene = make_scene(0, 0, SceneSpec(short_side=(1080, 1200)))
    items = [
        BenchItem(f"scene-{scene.index}", q.question, q.answer, q.type, q.boxes, id=f"q{i}")
        for i, q in enumerate(scene.questions)
        if q.boxes
    ][:2]
    assert items
    with one_thread():
        records = run_bench(pipeline, items, [ORACLE], progress=False, loader=lambda _: scene.image, warmup=False)
    assert len(records) == len(items)
    for rec, item in zip(records, items):
        assert rec["method"] == ORACLE and "error" not in rec, rec
        assert rec["forward_passes"] >= 1
        assert rec["tokens_prefilled"] > 0 and rec["seconds"] > 0 and rec["answer"] is not None
        assert rec["box_hit"] is True  # the bbox contains the gold box centre
        gx0, gy0, gx1, gy1 = item.boxes[0]
        assert Box(*rec["bbox"]).contains_point((gx0 + gx1) / 2, (gy0 + gy1) / 2)
        assert rec["bbox"] == oracle_box(item.boxes, scene.width, scene.height).as_list()
    if answer_view == "global+crop":  # the frame prefix is prefilled once, then reused
        assert [r["prefix_cached"] for r in records] == [False] + [True] * (len(records) - 1)
        assert records[0]["forward_passes"] > records[-1]["forward_passes"]


def test_the_oracle_box_is_four_times_the_gold_box_clamped_to_the_frame_or_the_whole_frame():
    assert oracle_box([[90, 90, 110, 100]], 1000, 800).as_list() == [60, 55, 140, 135]  # 4 x 20 = 80 square
    assert oracle_box([[0, 0, 10, 10]], 1000, 800).as_list() == [0, 0, 40, 40]  # shifted into the frame
    assert oracle_box([[0, 0, 500, 300]], 1000, 800).as_list() == [0, 0, 1000, 800]  # clamped to the frame
    assert oracle_box([], 640, 480).as_list() == [0, 0, 640, 480]


def test_the_oracle_is_a_benchmark_method_not_a_pipeline_method():
    assert ORACLE not in METHODS
    assert build_parser().parse_args(["--methods", "focus", "oracle"]).methods == ["focus", "oracle"]
    assert build_parser().parse_args([]).methods == list(METHODS)


def test_growth_stops_counts_proposals_that_stopped_before_s_max():
    records = [
        {"method": "focus", "regions": [{"cells": [0, 0, 1, 1]}, {"cells": [2, 2, 7, 7]}, {"cells": [3, 3, 5, 6]}]},
        {"method": "focus", "regions": []},
        {"method": "vanilla"},
        {"method": "random", "regions": [{"cells": [0, 0, 0, 0]}]},
    ]
    got = growth_stops(records, s_max=5)
    assert got == {"focus": {"proposals": 3, "below_s_max": 2, "sides": {1: 1, 3: 1, 5: 1}}}
