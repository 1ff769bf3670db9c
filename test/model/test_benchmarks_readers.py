"""The HR-Bench and MME-RealWorld readers on fixtures in their published layouts (test/data/hrbench,
test/data/mme_realworld), their errors on malformed input, and ``focus-bench`` answering each fixture
with the embedded model."""

import base64
import contextlib
import csv
import io
import json
import shutil
import sys
from pathlib import Path

import cv2
import pytest

from focus_ros.cli.bench import main as focus_bench
from focus_ros.core.config import default_model_path
from focus_ros.core.methods import METHODS
from focus_ros.core.methods.answer import parse_options
from focus_ros.eval.bench import is_correct
from focus_ros.eval.benchmarks import load_hrbench, load_mme_realworld

DATA = Path(__file__).resolve().parents[1] / "data"
HRBENCH = DATA / "hrbench"
MME = DATA / "mme_realworld"
MME_JSON = MME / "MME-RealWorld-Lite" / "data" / "MME-RealWorld-Lite.json"
MME_TSV = MME / "MME-RealWorld-Base64" / "mme_realworld_lite.tsv"
# the embedded model is no faster on two threads, and a shared CPU slows spinning OpenMP threads down badly
pytestmark = pytest.mark.usefixtures("one_torch_thread")
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


def tsv_rows(path: Path) -> list[dict[str, str]]:
    """The fixture's rows as the csv module reads them, independently of the reader under test."""
    csv.field_size_limit(2**31 - 1)
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def write_tsv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def letters(options) -> list[str]:
    return [chr(ord("A") + i) for i in range(len(options))]


# ----------------------------------------------------------------------------- HR-Bench
def test_hrbench_rows_become_questions_with_their_published_options_gold_letter_and_category(tmp_path):
    rows = tsv_rows(HRBENCH / "hr_bench_4k.tsv")
    items = load_hrbench(HRBENCH / "hr_bench_4k.tsv", tmp_path)
    assert [it.id for it in items] == [f"hr_bench_4k/{r['index']}" for r in rows]
    for it, row in zip(items, rows):
        assert it.type == f"hr_bench_4k/{row['category']}"
        assert it.options == [row[c] for c in "ABCD"]  # published order, not shuffled
        assert it.answer_letter == row["answer"] and it.answer == row[row["answer"]]
        choices = parse_options(it.question)  # what every method sees
        assert choices.stem == row["question"] and choices.options == it.options
        assert is_correct(it, "", row["answer"])
        assert not is_correct(it, "", next(x for x in "ABCD" if x != row["answer"]))
    assert {it.type for it in items} == {"hr_bench_4k/single", "hr_bench_4k/cross"}


def test_hrbench_rows_of_one_image_share_one_decoded_file_holding_the_published_bytes(tmp_path):
    rows = tsv_rows(HRBENCH / "hr_bench_4k.tsv")
    items = load_hrbench(HRBENCH / "hr_bench_4k.tsv", tmp_path / "images")
    for it, row in zip(items, rows):
        assert Path(it.image).parent == (tmp_path / "images").resolve()
        assert Path(it.image).read_bytes() == base64.b64decode(row["image"])
        assert cv2.imread(it.image) is not None
    # each question's cycles are consecutive rows on one image: one file, one frame prefix
    assert items[0].image == items[1].image != items[2].image == items[3].image
    assert len(list((tmp_path / "images").iterdir())) == 2
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}
    again = load_hrbench(HRBENCH / "hr_bench_4k.tsv", tmp_path / "images")
    assert [it.image for it in again] == [it.image for it in items]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()} == before  # not rewritten


def test_a_hrbench_folder_reads_each_version_with_its_own_types(tmp_path):
    items = load_hrbench(HRBENCH, tmp_path)
    assert [it.id.split("/")[0] for it in items] == ["hr_bench_4k"] * 4 + ["hr_bench_8k"] * 2
    assert {it.type for it in items} == {"hr_bench_4k/single", "hr_bench_4k/cross", "hr_bench_8k/single"}


def test_a_limit_stops_reading_and_decoding_after_that_many_questions(tmp_path):
    items = load_hrbench(HRBENCH, tmp_path, limit=3)
    assert [it.id for it in items] == ["hr_bench_4k/0", "hr_bench_4k/1", "hr_bench_4k/2"]
    assert len(list(tmp_path.iterdir())) == 2  # hr_bench_8k's image never decoded


def test_an_image_cell_holding_a_row_index_uses_that_row_s_image(tmp_path):
    rows = tsv_rows(HRBENCH / "hr_bench_4k.tsv")
    rows[1]["image"] = rows[0]["index"]  # how VLMEvalKit writes a repeated image
    items = load_hrbench(write_tsv(tmp_path / "hr_bench_4k.tsv", rows), tmp_path / "images")
    assert items[1].image == items[0].image
    rows[1]["image"] = "77"
    with pytest.raises(ValueError, match="refers to row index 77"):
        load_hrbench(write_tsv(tmp_path / "hr_bench_4k.tsv", rows), tmp_path / "images")


@pytest.mark.parametrize(
    "change,error",
    [
        (lambda rows: [{k: v for k, v in r.items() if k != "answer"} for r in rows], "missing column.*answer"),
        (
            lambda rows: [{**r, "image": "not base64!" if i == 2 else r["image"]} for i, r in enumerate(rows)],
            r"hr_bench_4k.tsv:4: the image is not valid base64",
        ),
        (
            lambda rows: [{**r, "image": base64.b64encode(b"plain text").decode()} for r in rows],
            "not a JPEG, PNG, WebP, BMP or TIFF",
        ),
        (lambda rows: [{**r, "answer": "E"} for r in rows], "the answer 'E' is not one of the options' letters ABCD"),
        (lambda rows: [{**r, "C": "", "D": "", "B": ""} for r in rows], "at least two"),
        (lambda rows: [{**r, "question": " "} for r in rows], "empty 'question'"),
        (lambda rows: [rows[0], rows[0]], "index 0 appears twice"),
    ],
)
def test_malformed_hrbench_tables_are_refused_naming_file_line_and_fault(tmp_path, change, error):
    path = write_tsv(tmp_path / "hr_bench_4k.tsv", change(tsv_rows(HRBENCH / "hr_bench_4k.tsv")))
    with pytest.raises(ValueError, match=error):
        load_hrbench(path, tmp_path / "images")


def test_a_row_with_a_field_too_many_or_a_missing_source_is_refused(tmp_path):
    text = (HRBENCH / "hr_bench_4k.tsv").read_text().splitlines()
    (tmp_path / "hr_bench_4k.tsv").write_text("\n".join([text[0], text[1] + "\textra"]) + "\n")
    with pytest.raises(ValueError, match=r":2: 11 fields where the header has 10"):
        load_hrbench(tmp_path / "hr_bench_4k.tsv", tmp_path / "images")
    with pytest.raises(FileNotFoundError, match="HR-Bench not found"):
        load_hrbench(tmp_path / "missing.tsv", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no HR-Bench table"):
        load_hrbench(tmp_path / "empty", tmp_path)


def test_a_question_whose_text_hides_its_options_from_the_parser_is_named_in_a_warning(tmp_path, caplog):
    rows = tsv_rows(HRBENCH / "hr_bench_4k.tsv")
    rows[2]["question"] = "Is (B) the blue object left of (A) the white one?"
    with caplog.at_level("WARNING", logger="focus_ros.eval.benchmarks"):
        items = load_hrbench(write_tsv(tmp_path / "hr_bench_4k.tsv", rows), tmp_path / "images")
    assert len(items) == 4
    assert "1 question(s) whose options parse_options does not find" in caplog.text and "hr_bench_4k/2" in caplog.text


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def test_parquet_without_pyarrow_is_refused_naming_pyarrow_and_the_tsv(tmp_path, monkeypatch):
    for name in ("pyarrow", "pyarrow.parquet"):  # as if not installed: importing it fails
        monkeypatch.setitem(sys.modules, name, None)
    (tmp_path / "hr_bench_4k.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportError, match=r"pyarrow.*\.tsv"):
        load_hrbench(tmp_path / "hr_bench_4k.parquet", tmp_path / "images")
    assert load_hrbench(HRBENCH, tmp_path / "images")  # a folder falls back to the TSVs


@pytest.mark.skipif(not _has_pyarrow(), reason="needs pyarrow")
def test_parquet_holds_the_same_questions_as_the_tsv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = tsv_rows(HRBENCH / "hr_bench_4k.tsv")
    for r in rows:
        r["index"] = int(r["index"])
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "hr_bench_4k.parquet")
    from_parquet = load_hrbench(tmp_path / "hr_bench_4k.parquet", tmp_path / "a")
    from_tsv = load_hrbench(HRBENCH / "hr_bench_4k.tsv", tmp_path / "b")
    assert [(it.id, it.question, it.answer, it.type) for it in from_parquet] == [
        (it.id, it.question, it.answer, it.type) for it in from_tsv
    ]
    assert [Path(it.image).read_bytes() for it in from_parquet] == [Path(it.image).read_bytes() for it in from_tsv]


# ----------------------------------------------------------------------------- MME-RealWorld
def test_mme_realworld_entries_become_questions_with_their_letters_gold_and_task_subtask():
    entries = json.loads(MME_JSON.read_text())
    items = load_mme_realworld(MME / "MME-RealWorld-Lite")  # the folder data.zip unpacks to
    assert [it.id for it in items] == [e["Question_id"] for e in entries]
    for it, e in zip(items, entries):
        assert it.type == f"{e['Task']}/{e['Subtask']}"
        assert [f"({x}) {o}" for x, o in zip(letters(it.options), it.options)] == e["Answer choices"]
        assert it.answer_letter == e["Ground truth"]
        assert it.image == str((MME_JSON.parent / "imgs" / e["Image"]).resolve())
        choices = parse_options(it.question)
        assert choices.stem == e["Text"] and choices.options == it.options and len(it.options) == 5
    assert load_mme_realworld(MME_JSON) == items  # the file itself: the same


def test_the_base64_table_holds_the_same_questions_as_the_json_with_its_images(tmp_path):
    rows = tsv_rows(MME_TSV)
    from_json = load_mme_realworld(MME_JSON)
    from_tsv = load_mme_realworld(MME / "MME-RealWorld-Base64", tmp_path)
    assert [it.id for it in from_tsv] == [f"mme_realworld_lite/{r['index']}" for r in rows]
    assert [it.type for it in from_tsv] == [r["category"] for r in rows]
    assert [(it.question, it.options, it.answer_letter, it.type) for it in from_tsv] == [
        (it.question, it.options, it.answer_letter, it.type) for it in from_json
    ]
    assert [Path(it.image).read_bytes() for it in from_tsv] == [Path(it.image).read_bytes() for it in from_json]
    assert from_tsv[0].image == from_tsv[1].image  # one image, one decoded file


def test_the_base64_json_chunks_are_read_as_the_table(tmp_path):
    rows = tsv_rows(MME_TSV)
    for r in rows:
        r["multi-choice options"] = eval(r["multi-choice options"])  # a list in JSON, not its repr
    chunk = tmp_path / "MME_RealWorld_base64_0.json"
    chunk.write_text(json.dumps(rows))
    items = load_mme_realworld(chunk, tmp_path / "images")
    assert [(it.question, it.answer_letter) for it in items] == [
        (it.question, it.answer_letter) for it in load_mme_realworld(MME_JSON)
    ]


@pytest.mark.skipif(not _has_pyarrow(), reason="needs pyarrow")
def test_the_lmms_eval_parquet_shards_of_a_dataset_folder_are_read_as_one_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = tsv_rows(MME_TSV)
    for r in rows:
        r["index"], r["bytes"] = int(r["index"]), r.pop("image")
        r["multi-choice options"] = eval(r["multi-choice options"])
    shards = tmp_path / "MME-RealWorld-lite-lmms-eval" / "data"
    shards.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows[:2]), shards / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:]), shards / "train-00001-of-00002.parquet")
    items = load_mme_realworld(shards.parent, tmp_path / "images")
    assert [it.id for it in items] == [f"MME-RealWorld-lite-lmms-eval/{r['index']}" for r in rows]
    assert [(it.question, it.answer_letter, it.type) for it in items] == [
        (it.question, it.answer_letter, it.type) for it in load_mme_realworld(MME_JSON)
    ]


def test_the_full_set_s_json_finds_its_images_in_the_folder_beside_it(tmp_path):
    shutil.copytree(MME_JSON.parent / "imgs", tmp_path, dirs_exist_ok=True)
    shutil.copy(MME_JSON, tmp_path / "MME_RealWorld.json")
    items = load_mme_realworld(tmp_path)
    assert all(Path(it.image).is_relative_to(tmp_path.resolve()) and Path(it.image).is_file() for it in items)


def _mme_copy(tmp_path: Path, edit) -> Path:
    entries = json.loads(MME_JSON.read_text())
    edit(entries)
    shutil.copytree(MME_JSON.parent / "imgs", tmp_path / "imgs")
    path = tmp_path / "MME-RealWorld-Lite.json"
    path.write_text(json.dumps(entries))
    return path


@pytest.mark.parametrize(
    "edit,error",
    [
        (lambda es: es[1].pop("Ground truth"), "entry 1: missing Ground truth"),
        (
            lambda es: es[0].update({"Answer choices": ["(B) 1", "(A) 2"]}),
            r"option 1 is '\(B\) 1', expected \"\(A\) ...\"",
        ),
        (lambda es: es[0].update({"Answer choices": "(A) 1 (B) 2"}), "options are not a list"),
        (lambda es: es[2].update({"Ground truth": "F"}), "'F' is not one of the options' letters ABCDE"),
        (lambda es: es.__setitem__(0, "text"), "entry 0: not an object"),
    ],
)
def test_malformed_mme_realworld_entries_are_refused_naming_the_entry_and_fault(tmp_path, edit, error):
    with pytest.raises(ValueError, match=error):
        load_mme_realworld(_mme_copy(tmp_path, edit))


def test_a_missing_image_file_is_reported_with_where_it_was_looked_for(tmp_path):
    path = _mme_copy(tmp_path, lambda es: es[2].update({"Image": "remote_sensing/gone.jpg"}))
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) not found, e.g. remote_sensing/gone.jpg.*imgs"):
        load_mme_realworld(path)


def test_malformed_mme_realworld_sources_are_refused(tmp_path):
    rows = tsv_rows(MME_TSV)
    bad = write_tsv(
        tmp_path / "mme_realworld_lite.tsv", [{k: v for k, v in r.items() if k != "category"} for r in rows]
    )
    with pytest.raises(ValueError, match="missing column.*category"):
        load_mme_realworld(bad, tmp_path / "images")
    with pytest.raises(ValueError, match="holds its images as base64: pass image_dir"):
        load_mme_realworld(MME_TSV)
    (tmp_path / "two").mkdir()
    for name in ("MME_RealWorld.json", "MME_RealWorld_CN.json"):
        shutil.copy(MME_JSON, tmp_path / "two" / name)
    with pytest.raises(ValueError, match="several MME-RealWorld annotation files"):
        load_mme_realworld(tmp_path / "two")
    (tmp_path / "notjson.json").write_text("{nope")
    with pytest.raises(ValueError, match="not JSON"):
        load_mme_realworld(tmp_path / "notjson.json")
    with pytest.raises(FileNotFoundError):
        load_mme_realworld(tmp_path / "missing")


# ----------------------------------------------------------------------------- focus-bench
@pytest.mark.parametrize(
    "flag,source",
    [("--hrbench", HRBENCH), ("--mme-realworld", MME / "MME-RealWorld-Lite"), ("--mme-realworld", MME_TSV)],
)
def test_focus_bench_answers_every_question_of_each_benchmark_once_per_method_with_one_of_its_letters(
    tmp_path, flag, source
):
    reader = load_hrbench if flag == "--hrbench" else load_mme_realworld
    expected = reader(source, tmp_path / "expected")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = focus_bench([flag, str(source), "--out", str(tmp_path / "out"), *FAST])
    assert rc == 0, buf.getvalue()
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert Path(data["config"]["model"]) == Path(default_model_path())  # the embedded model
    assert [q["id"] for q in data["questions"]] == [it.id for it in expected]
    for q in data["questions"]:
        assert sorted(q["results"]) == sorted(METHODS)
        for method, r in q["results"].items():
            assert "error" not in r, (q["id"], method, r)
            assert r["choice"] in letters(q["options"]), (q["id"], method, r)
            assert r["answer"] == q["options"][ord(r["choice"]) - ord("A")]
    answers = [json.loads(line) for line in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]
    assert sorted((a["method"], a["id"]) for a in answers) == sorted((m, it.id) for m in METHODS for it in expected)
    for qtype in {it.type for it in expected}:  # the per-category rows of the table
        assert qtype in buf.getvalue()


def test_focus_bench_limit_decodes_only_the_images_of_the_questions_it_asks(tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        rc = focus_bench(
            ["--hrbench", str(HRBENCH), "--limit", "2", "--methods", "vanilla", "--out", str(tmp_path), *FAST]
        )
    assert rc == 0
    assert len(json.loads((tmp_path / "results.json").read_text())["questions"]) == 2
    assert len(list((tmp_path / "images").iterdir())) == 1


def test_focus_bench_reports_a_malformed_benchmark_in_one_line(tmp_path, capsys):
    rows = tsv_rows(HRBENCH / "hr_bench_4k.tsv")
    bad = write_tsv(tmp_path / "hr_bench_4k.tsv", [{**r, "image": "%%%"} for r in rows])
    rc = focus_bench(["--hrbench", str(bad), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "not valid base64" in err and "Traceback" not in err
