"""FOCUS step 2: object relevance maps from the similarities of cached VALUE vectors.

For a layer l with value vectors V (heads x seq x dim):
  1. L2-normalise every head's value vector (so a head's dot product is a cosine in [-1, 1]);
  2. S[t, j] = sum over heads of cos(v_t, v_j)                 -> in [-H, H];
  3. shift into [0, 1]: S' = (S + H) / 2H                       -> non-negative (our choice: the
     affine map of the cosine range, which keeps the ordering and needs no per-row statistics);
  4. row-normalise over the whole cached sequence: M = S' / sum_j S'[t, j].
The relevance of image token j for target token t is sum over layers of M^l[t, j]. A target of
several tokens takes the element-wise product of its tokens' maps (in log space, to avoid
underflow).

Contrast: after steps 3-4 every entry is (1 + C_j) / sum, so the raw map is ~(1 + C_j)/(1 + C_max)
and no cell falls below about half of the peak: the paper's "0.5 of the max" rules would then
never stop. The final map is therefore rescaled over the image tokens so the *background* sits at
0 and the peak at 1: ``rel = clip((r - q) / (max - q), 0, 1)`` with ``q`` the ``contrast_quantile``
of the image tokens (default the median: a small target covers far fewer than half of the tokens,
so the median is background). ``contrast_quantile = 0`` is plain min-max scaling; ``None`` keeps
the raw map scaled to a maximum of 1. Every setting keeps the order of the cells above ``q``.

Values carry no rotary position encoding (keys do), and they are in the KV cache anyway, so this
never needs attention weights and works with sdpa and flash attention.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def layer_indices(num_layers: int, start: float, end: float) -> list[int]:
    """Layers to read: values <= 1 are fractions of depth, larger values layer indices (end exclusive)."""

    def pos(x: float) -> int:
        return int(round(x * num_layers)) if x <= 1.0 else int(x)

    lo, hi = pos(start), pos(end)
    lo, hi = max(0, min(lo, num_layers - 1)), max(1, min(hi, num_layers))
    if hi <= lo:
        hi = lo + 1
    return list(range(lo, hi))


def token_relevance(values: torch.Tensor, target_pos: Sequence[int], image_pos: torch.Tensor) -> torch.Tensor:
    """One layer's ``M[t, image]`` for every target token t.

    ``values``: [heads, seq, dim] (one batch element of a cache layer's values).
    Returns [len(target_pos), len(image_pos)], float32.
    """
    v = torch.nn.functional.normalize(values.float(), dim=-1)
    heads = v.shape[0]
    rows = v[:, list(target_pos), :]  # [H, T, D]
    sim = torch.einsum("htd,hsd->ts", rows, v)  # [T, seq], summed over heads
    shifted = (sim + heads) / (2.0 * heads)
    m = shifted / shifted.sum(dim=-1, keepdim=True)
    return m[:, image_pos.to(m.device)]


def with_contrast(rel: np.ndarray, quantile: float | None) -> np.ndarray:
    """``rel`` rescaled so its ``quantile`` (the background level) maps to 0 and its peak to 1,
    clipped to [0, 1]; ``None``: only divided by the peak. A flat map becomes all zeros."""
    rel = np.asarray(rel, dtype=np.float64)
    peak = float(rel.max())
    if quantile is None:
        return rel / peak if peak > 0 else np.zeros_like(rel)
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f"contrast quantile must be in [0, 1), got {quantile}")
    floor = float(np.quantile(rel, quantile))
    if peak - floor <= 1e-12 * max(abs(peak), 1.0):
        return np.zeros_like(rel)
    return np.clip((rel - floor) / (peak - floor), 0.0, 1.0)


def log_relevance(
    layer_values: Sequence[torch.Tensor], target_pos: Sequence[int], image_pos: torch.Tensor
) -> np.ndarray:
    """The log of the raw relevance of each image token (order of ``image_pos``): each target
    token's map summed over layers and normalised to sum 1 over the image tokens, then multiplied
    over the target's tokens. Maps of equally many image tokens (the tiles of
    ``search.relevance_tiles``) are on one scale and can be joined before the contrast.

    ``layer_values``: one [heads, seq, dim] tensor per layer to sum over.
    """
    if not target_pos:
        raise ValueError("target has no tokens")
    total = None
    for values in layer_values:
        m = token_relevance(values, target_pos, image_pos)
        total = m if total is None else total + m
    per_token = total / total.sum(dim=-1, keepdim=True)  # each token's map sums to 1
    return torch.log(per_token.clamp_min(1e-30)).sum(dim=0).double().cpu().numpy()


def from_log(log_map: np.ndarray, contrast_quantile: float | None) -> np.ndarray:
    """A :func:`log_relevance` map (or several joined) as relevance in [0, 1]: peak 1 and the
    contrast of :func:`with_contrast`."""
    log_map = np.asarray(log_map, dtype=np.float64)
    return with_contrast(np.exp(log_map - log_map.max()), contrast_quantile)


def relevance_from_values(
    layer_values: Sequence[torch.Tensor],
    target_pos: Sequence[int],
    image_pos: torch.Tensor,
    contrast_quantile: float | None = 0.5,
) -> np.ndarray:
    """Relevance of each image token (order of ``image_pos``) for the target, in [0, 1] with the
    contrast of :func:`with_contrast` (peak 1, background 0).

    ``layer_values``: one [heads, seq, dim] tensor per layer to sum over.
    """
    return from_log(log_relevance(layer_values, target_pos, image_pos), contrast_quantile)
