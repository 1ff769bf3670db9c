"""``search.max_targets`` on the embedded model: a question naming more objects searches the first
ones only, and the result says which were left out."""

from pathlib import Path

import pytest

from focus_ros.core.config import EMBEDDED_MODEL, build_configs, search_with
from focus_ros.core.models import load_adapter
from focus_ros.core.pipeline import FocusPipeline
from focus_ros.eval.scenes import make_scene

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_torch_thread")
COLOURS = ("red", "blue", "green", "yellow", "purple", "white", "black")
SEVEN = f"Where are the {', the '.join(f'{c} object' for c in COLOURS[:-1])} and the {COLOURS[-1]} object?"


@pytest.fixture(scope="module")
def pipe():
    model, search = build_configs(
        {"model.path": str(REPO / EMBEDDED_MODEL), "model.device": "cpu", "search.target_extraction": "rule"}
    )
    return FocusPipeline(load_adapter(model), search)


@pytest.mark.parametrize("method", ["focus", "random", "zoom"])
def test_a_question_naming_seven_targets_searches_max_targets_and_notes_the_rest(pipe, method):
    scene = make_scene(4242, 0)
    pipe.search = search_with(pipe.search, {"search.max_targets": 3, "search.overrun": False})
    result = pipe.run(scene.image, SEVEN, method=method)
    assert result.targets == [f"{c} object" for c in COLOURS]  # every target the question names
    assert [t.phrase for t in result.target_results] == [f"{c} object" for c in COLOURS[:3]]
    assert {r.target for r in result.regions} <= set(result.targets[:3])
    (note,) = result.notes
    assert "names 7 targets; searched the first 3 (search.max_targets 3)" in note
    assert note.endswith("not: yellow object, purple object, white object, black object")
    assert result.answer


def test_only_the_searched_targets_cost_relevance_and_verification_passes(pipe):
    """Expected: with max_targets 2 and max_steps 3, two relevance maps and at most 6 verified crops;
    with the cap above the question's 7 targets, 7 results and no note."""
    scene = make_scene(4242, 1)
    pipe.search = search_with(pipe.search, {"search.max_targets": 2, "search.overrun": False, "search.max_steps": 3})
    capped = pipe.run(scene.image, SEVEN)
    assert sorted(capped.relevance_maps) == ["blue object", "red object"]
    assert len([r for r in capped.regions if r.confidence >= 0.0]) <= 2 * 3
    pipe.search = search_with(pipe.search, {"search.max_targets": 16})
    whole = pipe.run(scene.image, SEVEN)
    assert len(whole.target_results) == 7 and whole.notes == []
