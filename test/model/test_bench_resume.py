"""``focus-bench`` keeps every answer as it is produced and ``--resume`` finishes an interrupted run
with the numbers an uninterrupted one gives (on the LLaVA miniature, two synthetic scenes)."""

import contextlib
import io
import json
import logging
import shutil

import pytest

from focus_ros.cli.bench import main as focus_bench
from focus_ros.eval.scenes import SceneSpec, write_scenes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METHODS = ["vanilla", "focus", "random"]
# small budgets keep the runs short (as test_bench.py)
FAST = [
    "--max-steps",
    "2",
    "--set",
    "search.overrun=false",
    "--set",
    "search.target_extraction=rule",
    "--set",
    "search.max_new_tokens=4",
    "--no-progress",
]


def bench(miniature_root, scenes, out, *extra):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = focus_bench(
            [
                "--model",
                str(miniature_root / "llava"),
                "--scenes",
                str(scenes),
                "--methods",
                *METHODS,
                "--out",
                str(out),
                *FAST,
                *extra,
            ]
        )
    return rc, stdout.getvalue(), stderr.getvalue()


def numbers(out):
    """results.json without what differs between two runs of the same answers: wall-clock times
    and the settings block (command line, wall time)."""
    data = json.loads((out / "results.json").read_text())
    summary = {
        m: {t: {k: v for k, v in s.items() if k != "seconds"} for t, s in ts.items()}
        for m, ts in data["summary"].items()
    }
    questions = [
        {
            **q,
            "results": {
                m: {k: v for k, v in r.items() if k not in ("seconds", "timings")} for m, r in q["results"].items()
            },
        }
        for q in data["questions"]
    ]
    return summary, data["diagnosis"], questions


def table(stdout):
    """The printed per-method table's rows, less the seconds column."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("method") and "prefilled" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("all*:"))
    return [line.rsplit(None, 1)[0] for line in lines[start + 2 : end]]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scenes(tmp_path_factory.mktemp("scenes"), 2, 3, SceneSpec(short_side=(1080, 1200))).parent


@pytest.fixture(scope="module")
def full_run(miniature_root, scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    rc, stdout, stderr = bench(miniature_root, scenes, out)
    assert rc == 0, stdout + stderr
    return out, stdout


def test_every_answer_is_a_whole_line_of_answers_jsonl_with_a_run_manifest_beside_it(full_run):
    out, _ = full_run
    lines = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    questions = json.loads((out / "results.json").read_text())["questions"]
    assert sorted((a["method"], a["id"]) for a in lines) == sorted((m, q["id"]) for m in METHODS for q in questions)
    assert all({"question", "gold", "correct", "forward_passes", "tokens_prefilled"} <= set(a) for a in lines)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["types"] is None and manifest["source"]["scenes"] and manifest["search"]["max_steps"] == 2


def test_a_run_stopped_after_a_few_questions_and_resumed_gives_the_numbers_of_an_uninterrupted_run(
    full_run, miniature_root, scenes, tmp_path
):
    rc, _, _ = bench(miniature_root, scenes, tmp_path, "--limit", "3")  # stops inside the first frame
    assert rc == 0
    assert len((tmp_path / "answers.jsonl").read_text().splitlines()) == 3 * len(METHODS)
    rc, stdout, stderr = bench(miniature_root, scenes, tmp_path, "--resume")
    assert rc == 0, stdout + stderr
    assert numbers(tmp_path) == numbers(full_run[0])
    assert f"({3 * len(METHODS)} answers from before --resume)" in stdout
    assert table(stdout) == table(full_run[1])  # the printed table too (but for its seconds)
    assert len((tmp_path / "answers.jsonl").read_text().splitlines()) == len(
        (full_run[0] / "answers.jsonl").read_text().splitlines()
    )


def test_a_run_killed_mid_write_resumes_past_its_truncated_last_line_with_a_warning(
    full_run, miniature_root, scenes, tmp_path, caplog
):
    full = (full_run[0] / "answers.jsonl").read_text().splitlines(keepends=True)
    k = len(full) // 2 + 1  # inside the second method's questions
    (tmp_path / "answers.jsonl").write_text("".join(full[:k]) + full[k][: len(full[k]) // 2])
    shutil.copy(full_run[0] / "run.json", tmp_path / "run.json")
    with caplog.at_level(logging.WARNING, logger="focus_ros.eval.bench"):
        rc, stdout, stderr = bench(miniature_root, scenes, tmp_path, "--resume")
    assert rc == 0, stdout + stderr
    assert any("truncated last line" in r.getMessage() for r in caplog.records)
    lines = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]  # all whole again
    assert len(lines) == len(full)
    assert numbers(tmp_path) == numbers(full_run[0])


def test_resume_refuses_answers_of_another_run_and_says_what_differs(full_run, miniature_root, scenes, tmp_path):
    out = tmp_path / "other"
    shutil.copytree(full_run[0], out)
    before = (out / "answers.jsonl").read_bytes()
    rc, _, stderr = bench(miniature_root, scenes, out, "--resume", "--types", "shape")
    assert rc == 2 and "another run" in stderr and "types" in stderr and "Traceback" not in stderr
    rc, _, stderr = bench(miniature_root, scenes, out, "--resume", "--set", "search.max_new_tokens=5")
    assert rc == 2 and "search" in stderr
    assert (out / "answers.jsonl").read_bytes() == before  # nothing appended, nothing lost


def test_without_resume_a_folder_holding_answers_is_refused_naming_resume_or_a_new_out(
    full_run, miniature_root, scenes, tmp_path
):
    out = tmp_path / "again"
    shutil.copytree(full_run[0], out)
    before = (out / "answers.jsonl").read_bytes()
    rc, _, stderr = bench(miniature_root, scenes, out)
    assert rc == 2 and "--resume" in stderr and "--out" in stderr
    assert (out / "answers.jsonl").read_bytes() == before
