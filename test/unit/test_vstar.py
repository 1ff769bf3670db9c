"""The V* Bench reader on a fixture in V* Bench's published layout (test/data/vstar)."""

import json
from pathlib import Path

import pytest

from focus_ros.core.methods.answer import parse_options
from focus_ros.eval.bench import is_correct
from focus_ros.eval.vstar import format_question, load_vstar

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "vstar"


def test_reader_finds_every_annotated_image_with_category_as_type():
    items = load_vstar(FIXTURE)
    assert [it.id for it in items] == [
        "direct_attributes/sa_10001",
        "direct_attributes/sa_10002",
        "relative_position/sa_20001",
    ]
    assert [it.type for it in items] == ["direct_attributes", "direct_attributes", "relative_position"]
    assert all(Path(it.image).is_file() and it.image.endswith(".jpg") for it in items)


def test_the_first_annotated_option_is_the_answer_and_options_are_shown_in_a_seeded_order():
    for it in load_vstar(FIXTURE):
        ann = json.loads((FIXTURE / (it.id + ".json")).read_text())
        assert it.answer == ann["options"][0]
        assert sorted(it.options) == sorted(ann["options"])
        choices = parse_options(it.question)  # what every method sees
        assert choices.stem == ann["question"] and choices.options == it.options
        assert it.options[ord(it.answer_letter) - ord("A")] == it.answer
    assert [it.options for it in load_vstar(FIXTURE)] == [it.options for it in load_vstar(FIXTURE)]
    orders = {
        tuple(it.options)
        for seed in range(6)
        for it in load_vstar(FIXTURE, shuffle_seed=seed)
        if it.id.endswith("10001")
    }
    assert len(orders) > 1  # the right answer is not always (A)


def test_boxes_are_converted_from_xywh_to_corners():
    item = load_vstar(FIXTURE)[2]
    ann = json.loads((FIXTURE / "relative_position" / "sa_20001.json").read_text())
    assert item.boxes == [[x, y, x + w, y + h] for x, y, w, h in ann["bbox"]]


def test_multiple_choice_answers_are_scored_by_the_chosen_letter():
    item = load_vstar(FIXTURE)[0]
    assert is_correct(item, "", item.answer_letter)
    wrong = next(letter for letter in "ABCD" if letter != item.answer_letter)
    assert not is_correct(item, item.answer, wrong)
    assert is_correct(item, item.answer.upper() + ".")  # free text matched on the option's words


def test_question_format_matches_v_star_bench():
    assert format_question("What is it?", ["a cat", "a dog"]) == "What is it?\n(A) a cat\n(B) a dog"


def test_reader_rejects_folders_without_annotations(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_vstar(tmp_path / "missing")
    (tmp_path / "direct_attributes").mkdir()
    with pytest.raises(ValueError, match="no V\\* Bench annotations"):
        load_vstar(tmp_path)
