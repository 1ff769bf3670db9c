"""Relevance against an obviously-correct reference, target parsing, and configuration."""

import math

import numpy as np
import pytest
import torch

from focus_ros.core.config import build_configs, parameter_table, search_defaults
from focus_ros.core.relevance import layer_indices, relevance_from_values
from focus_ros.core.targets import (
    TYPE_ALL,
    TYPE_SINGLE,
    Target,
    extraction_prompt,
    parse_targets,
    question_type,
    targets_from_question,
)


def reference_relevance(layers, target_pos, image_pos):
    """Loop-by-loop reading of the method: cosine per head, summed, shifted, row-normalised,
    summed over layers, product over target tokens, then the median mapped to 0 and the peak to 1."""
    per_token = []
    for t in target_pos:
        acc = [0.0] * len(image_pos)
        for v in layers:  # v: [H, S, D]
            heads, seq, _ = v.shape
            row = []
            for j in range(seq):
                s = 0.0
                for h in range(heads):
                    a, b = v[h, t].double(), v[h, j].double()
                    s += float(a @ b / (a.norm() * b.norm()))
                row.append((s + heads) / (2 * heads))
            total = sum(row)
            for k, j in enumerate(image_pos):
                acc[k] += row[j] / total
        s = sum(acc)
        per_token.append([x / s for x in acc])
    prod = [math.prod(tok[k] for tok in per_token) for k in range(len(image_pos))]
    peak, floor = max(prod), float(np.median(prod))
    return np.array([min(max((p - floor) / (peak - floor), 0.0), 1.0) for p in prod])


def test_relevance_matches_the_reference_on_small_tensors():
    g = torch.Generator().manual_seed(0)
    layers = [torch.randn(3, 12, 5, generator=g) for _ in range(2)]
    image_pos = torch.tensor([1, 2, 3, 4, 5, 6])
    target_pos = [9, 10]
    got = relevance_from_values(layers, target_pos, image_pos)
    want = reference_relevance(layers, target_pos, image_pos.tolist())
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got.max() == pytest.approx(1.0)


def test_image_token_equal_to_target_value_is_most_relevant():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(2, 10, 8, generator=g)
    v[:, 4] = v[:, 8] * 3.0  # same direction as the target token in every head
    rel = relevance_from_values([v], [8], torch.arange(0, 6))
    assert int(np.argmax(rel)) == 4


def test_relevance_needs_target_tokens():
    with pytest.raises(ValueError):
        relevance_from_values([torch.randn(1, 4, 2)], [], torch.arange(2))


def test_layer_range_accepts_fractions_and_indices():
    assert layer_indices(32, 0.4375, 1.0) == list(range(14, 32))
    assert layer_indices(4, 0.5, 1.0) == [2, 3]
    assert layer_indices(32, 14, 32) == list(range(14, 32))
    assert layer_indices(4, 0.99, 1.0) == [3]


@pytest.mark.parametrize(
    "text,expected",
    [
        (" red object", [Target("red object")]),
        (" the red object and the blue object.", [Target("red object"), Target("blue object")]),
        (" dog, cat and a bird", [Target("dog"), Target("cat"), Target("bird")]),
        (" all red objects", [Target("red objects", TYPE_ALL)]),
        (" all the birds and the tree", [Target("birds", TYPE_ALL), Target("tree")]),
        ("So I need the information about the following objects: woman's bag\nQuestion: next", [Target("woman's bag")]),
        (" none", []),
        ("", []),
        (" red object and red object", [Target("red object")]),
        (" \x1c\x02#$%", []),
    ],
)
def test_target_parsing_handles_the_prompt_phrasings(text, expected):
    assert parse_targets(text) == expected


@pytest.mark.parametrize(
    "question,expected,qtype",
    [
        ("What shape is the red object?", [Target("red object")], TYPE_SINGLE),
        ("How many blue objects are there?", [Target("blue objects", TYPE_ALL)], TYPE_ALL),
        (
            "Is the red object to the left or right of the green object?",
            [Target("red object"), Target("green object")],
            TYPE_SINGLE,
        ),
        ("Is there a yellow object in the image?", [Target("yellow object")], TYPE_SINGLE),
        ("What color is the star?", [Target("star")], TYPE_SINGLE),
    ],
)
def test_rule_based_targets_from_benchmark_questions(question, expected, qtype):
    targets = targets_from_question(question)
    assert targets == expected
    assert question_type(question, targets) == qtype


def test_extraction_prompt_ends_where_the_model_continues():
    p = extraction_prompt("What shape is the red object?")
    assert p.endswith("So I need the information about the following objects:")
    assert p.count("Question:") == 4


def test_family_defaults_and_overrides():
    assert search_defaults("llava").layer_start == pytest.approx(14 / 32)
    assert search_defaults("llava_onevision").answer_view == "global+crop"
    model, search = build_configs({"model.path": "./x", "model.family": "qwen2_5_vl", "search.max_steps": "3"})
    assert search.max_steps == 3 and search.answer_view == "global+crop"
    assert "search.s_max" in parameter_table()


@pytest.mark.parametrize(
    "values,message",
    [
        ({"model.path": "./x", "model.family": "llava", "search.s_min": 5, "search.s_max": 3}, "s_max"),
        ({"model.path": "./x", "model.family": "llava", "search.nms_iou": 1.5}, "nms_iou"),
        ({"model.path": "./x", "model.family": "gpt"}, "model.family"),
        ({"model.path": "./x", "model.family": "llava", "search.bogus": 1}, "unknown"),
        ({"model.path": "", "model.family": "llava"}, "model.path"),
    ],
)
def test_invalid_settings_are_refused_with_the_reason(values, message):
    with pytest.raises(ValueError, match=message):
        build_configs(values)
