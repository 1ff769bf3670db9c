"""Per-model search settings: a model directory's focus_settings.json sits between the family's
paper defaults and explicit ``search.*`` keys."""

import json

import pytest

from focus_ros.core.config import (
    MODEL_SETTINGS_FILE,
    ModelConfig,
    build_configs,
    model_search_settings,
    search_defaults,
)


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    return tmp_path


def write_settings(model_dir, search):
    (model_dir / MODEL_SETTINGS_FILE).write_text(json.dumps({"search": search}))


def test_without_the_file_the_family_defaults_apply(model_dir):
    model, search = build_configs({"model.path": str(model_dir)})
    assert model.family == "llava"
    assert search == search_defaults("llava")
    assert model_search_settings(model) == {}


def test_the_files_values_are_used(model_dir):
    write_settings(model_dir, {"max_steps": 3, "answer_view": "global+crop", "smooth_sigma": 1})
    model, search = build_configs({"model.path": str(model_dir)})
    assert search.max_steps == 3 and search.answer_view == "global+crop"
    assert search.smooth_sigma == 1.0 and isinstance(search.smooth_sigma, float)
    assert search.top_k_anchors == search_defaults("llava").top_k_anchors  # the rest stays the family's
    assert model_search_settings(model) == {"max_steps": 3, "answer_view": "global+crop", "smooth_sigma": 1.0}


def test_explicit_search_keys_win_over_the_file(model_dir):
    write_settings(model_dir, {"max_steps": 3, "s_max": 5})
    _, search = build_configs({"model.path": str(model_dir), "search.max_steps": 8, "search.s_max": None})
    assert search.max_steps == 8 and search.s_max == 5


def test_an_unknown_key_in_the_file_is_an_error_naming_the_file(model_dir):
    write_settings(model_dir, {"max_stepz": 3})
    with pytest.raises(ValueError, match=MODEL_SETTINGS_FILE) as err:
        build_configs({"model.path": str(model_dir)})
    assert "max_stepz" in str(err.value)


def test_an_invalid_value_in_the_file_is_caught_by_validation(model_dir):
    write_settings(model_dir, {"s_min": 9, "s_max": 4})
    with pytest.raises(ValueError, match="s_max"):
        build_configs({"model.path": str(model_dir)})


def test_a_hub_id_has_no_settings_file():
    assert model_search_settings(ModelConfig(path="org/not-a-local-dir", family="llava")) == {}
