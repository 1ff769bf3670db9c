"""FOCUS step 2: object relevance maps from the similarities of cached VALUE vectors.

For a layer l with value vectors V (heads x seq x dim):
  1. L2-normalise every head's value vector (so a head's dot product is a cosine in [-1, 1]);
  2. S[t, j] = sum over heads of cos(v_t, v_j)                 -> in [-H, H];
  3. shift into [0, 1]: S' = (S + H) / 2H                       -> non-negative (our choice: the
     affine map of the cosine range, which keeps the ordering and needs no per-row statistics);
  4. row-normalise over the whole cached sequence: M = S' / sum_j S'[t, j].
The relevance of image token j for target token t is sum over layers of M^l[t, j]. A target of
several tokens takes the element-wise product of its tokens' maps (in log space, to avoid
underflow). The map is finally scaled so its maximum is 1.

Values carry no rotary position encoding (keys do), and they are in the KV cache anyway, so this
never needs attention weights and works with sdpa and flash attention.
"""

from __future__ import annotations

from typing import Sequence

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


def token_relevance(values: torch.Tensor, target_pos: Sequence[int],
                    image_pos: torch.Tensor) -> torch.Tensor:
    """One layer's ``M[t, image]`` for every target token t.

    ``values``: [heads, seq, dim] (one batch element of a cache layer's values).
    Returns [len(target_pos), len(image_pos)], float32.
    """
    v = torch.nn.functional.normalize(values.float(), dim=-1)
    heads = v.shape[0]
    rows = v[:, list(target_pos), :]                          # [H, T, D]
    sim = torch.einsum("htd,hsd->ts", rows, v)                # [T, seq], summed over heads
    shifted = (sim + heads) / (2.0 * heads)
    m = shifted / shifted.sum(dim=-1, keepdim=True)
    return m[:, image_pos.to(m.device)]


def relevance_from_values(layer_values: Sequence[torch.Tensor], target_pos: Sequence[int],
                          image_pos: torch.Tensor) -> np.ndarray:
    """Relevance of each image token (order of ``image_pos``) for the target; max scaled to 1.

    ``layer_values``: one [heads, seq, dim] tensor per layer to sum over.
    """
    if not target_pos:
        raise ValueError("target has no tokens")
    total = None
    for values in layer_values:
        m = token_relevance(values, target_pos, image_pos)
        total = m if total is None else total + m
    per_token = total / total.sum(dim=-1, keepdim=True)       # each token's map sums to 1
    log_map = torch.log(per_token.clamp_min(1e-30)).sum(dim=0)
    rel = torch.exp(log_map - log_map.max())
    return rel.double().cpu().numpy()
