"""The relevance map has contrast, so FOCUS's region rules mean what they say.

A synthetic KV cache: every image token of a known block of grid cells carries (a noisy copy of)
the target token's value vector, every other token a random one. Relevance read from those
values, proposals grown with the paper's rules, and the best region must be the block.
"""

import numpy as np
import pytest
import torch

from focus_ros.core.geometry import propose_regions
from focus_ros.core.relevance import relevance_from_values, with_contrast

GRID = 16
TEXT_BEFORE = 5  # system prompt tokens before the image
HEADS, DIM, LAYERS = 4, 32, 2


def synthetic_cache(r0: int, c0: int, k: int, seed: int = 0):
    """Values of LAYERS layers ([heads, seq, dim]) and the image / target token positions."""
    g = torch.Generator().manual_seed(seed)
    seq = TEXT_BEFORE + GRID * GRID + 6
    target = seq - 2  # "Is there a <target> in the image?" ...
    image_pos = torch.arange(TEXT_BEFORE, TEXT_BEFORE + GRID * GRID)
    layers = []
    for _ in range(LAYERS):
        v = torch.randn(HEADS, seq, DIM, generator=g)
        for r in range(r0, r0 + k):
            for c in range(c0, c0 + k):
                j = TEXT_BEFORE + r * GRID + c
                v[:, j] = v[:, target] + 0.3 * torch.randn(HEADS, DIM, generator=g)
        layers.append(v)
    return layers, [target], image_pos


def grown_region(k, r0, c0, s_min, s_max, contrast=0.5, seed=0):
    layers, target_pos, image_pos = synthetic_cache(r0, c0, k, seed)
    rel = relevance_from_values(layers, target_pos, image_pos, contrast_quantile=contrast)
    rel = rel.reshape(GRID, GRID)
    return rel, propose_regions(
        rel, top_k=20, min_distance=2, s_min=s_min, s_max=s_max, grow_threshold=0.5, nms_iou=0.3
    )[0]


PLACES = {
    "centred": lambda k: ((GRID - k) // 2, (GRID - k) // 2),
    "top-left corner": lambda k: (0, 0),
    "bottom border": lambda k: (GRID - k, 5),
    "right border": lambda k: (7, GRID - k),
}


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("k", range(1, 8))
@pytest.mark.parametrize("s_min", [1, 3])
def test_grown_region_equals_the_target_block_within_one_cell(k, place, s_min):
    r0, c0 = PLACES[place](k)
    _, g = grown_region(k, r0, c0, s_min=s_min, s_max=9)
    assert r0 <= g.anchor[0] < r0 + k and c0 <= g.anchor[1] < c0 + k, "best anchor outside the block"
    if k < s_min:  # a block smaller than the starting square: that square, holding the block
        assert (g.r1 - g.r0, g.c1 - g.c0) == (s_min, s_min)
        assert g.r0 <= r0 and g.c0 <= c0 and g.r1 >= r0 + k and g.c1 >= c0 + k
        return
    for got, want in ((g.r0, r0), (g.c0, c0), (g.r1, r0 + k), (g.c1, c0 + k)):
        assert abs(got - want) <= 1, f"region {(g.r0, g.c0, g.r1, g.c1)} vs block {(r0, c0, r0 + k, c0 + k)}"


def test_map_has_background_near_zero_and_the_target_at_one():
    rel, _ = grown_region(3, 6, 6, s_min=1, s_max=9)
    block = rel[6:9, 6:9]
    background = np.delete(rel.reshape(-1), [r * GRID + c for r in range(6, 9) for c in range(6, 9)])
    assert rel.max() == pytest.approx(1.0)
    assert block.min() > 0.5
    assert np.median(background) == 0.0 and np.quantile(background, 0.9) < 0.2


def test_without_contrast_every_region_grows_to_s_max():
    """The raw map keeps a typical cell near half the peak, so growth never stops: what contrast fixes."""
    rel, g = grown_region(2, 6, 6, s_min=1, s_max=7, contrast=None)
    assert np.median(rel) > 0.45
    assert (g.r1 - g.r0, g.c1 - g.c0) == (7, 7)


def test_contrast_keeps_the_order_of_cells_above_the_floor():
    rel = np.random.default_rng(3).random(200)
    out = with_contrast(rel, 0.5)
    above = rel > np.median(rel)
    assert np.array_equal(np.argsort(rel[above]), np.argsort(out[above]))
    assert out.max() == 1.0 and out.min() == 0.0
    np.testing.assert_allclose(with_contrast(rel, 0.0), (rel - rel.min()) / (rel.max() - rel.min()))


def test_flat_map_has_no_contrast_to_give():
    assert not with_contrast(np.full(10, 0.7), 0.5).any()
    with pytest.raises(ValueError):
        with_contrast(np.ones(3), 1.0)
