"""Cost bounds of the core settings: every integer search setting has a range, checked by the same
validation the node and the command-line tools use; a listed question gives one target per object."""

from pathlib import Path

import pytest

from focus_ros.core.config import (
    EMBEDDED_MODEL,
    MAX_VERIFY_BATCH,
    SEARCH_LIMITS,
    SearchConfig,
    build_configs,
    search_with,
)
from focus_ros.core.targets import Target, targets_from_question

REPO = Path(__file__).resolve().parents[2]
LIST_OF_SEVEN = (
    "Where are the red object, the blue object, the green object, the yellow object, the purple object, "
    "the white object and the black object?"
)


def test_max_targets_defaults_to_4_and_every_cost_setting_has_an_upper_bound():
    assert SearchConfig().max_targets == 4
    for name in ("max_targets", "max_steps", "max_overrun_steps", "top_k_anchors", "verify_batch", "max_grid_side"):
        assert name in SEARCH_LIMITS
    assert MAX_VERIFY_BATCH == SEARCH_LIMITS["verify_batch"][1]


@pytest.mark.parametrize("name", sorted(SEARCH_LIMITS))
def test_a_value_above_its_range_is_refused_naming_the_setting_and_the_range(name):
    low, high = SEARCH_LIMITS[name]
    SearchConfig(**{name: high, **({"s_max": high} if name == "s_min" else {})}).validate()  # the bound is allowed
    with pytest.raises(ValueError, match=rf"search\.{name} must be in \[{low}, {high}\], got {high + 1}"):
        search_with(SearchConfig(), {f"search.{name}": high + 1})
    with pytest.raises(ValueError, match=rf"search\.{name} must be in"):
        search_with(SearchConfig(), {f"search.{name}": low - 1})


def test_the_command_line_settings_are_bounded_like_the_node_parameters():
    with pytest.raises(ValueError, match=r"search\.max_steps must be in \[1, 512\], got 1000"):
        build_configs({"model.path": str(REPO / EMBEDDED_MODEL), "search.max_steps": 1000})


@pytest.mark.parametrize(
    "question,expected",
    [
        (LIST_OF_SEVEN, [f"{c} object" for c in ("red", "blue", "green", "yellow", "purple", "white", "black")]),
        ("What colour are the cup, the plate and the fork?", ["cup", "plate", "fork"]),
        ("Is there a cat and a dog in the image?", ["cat", "dog"]),
        # not a list of objects: the single-object rules as before
        ("What is the colour of the cup and the plate?", ["colour"]),
        ("Find the cup on the table and the plate near the sink.", ["cup"]),
        ("Where is the tiny screw?", ["tiny screw"]),
    ],
)
def test_the_rule_parser_gives_one_target_per_listed_object(question, expected):
    assert targets_from_question(question) == [Target(p) for p in expected]
