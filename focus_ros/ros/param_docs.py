"""Descriptions, ranges and choices of the core's ``model.*`` and ``search.*`` node parameters.

Names, defaults and types come from :func:`focus_ros.core.config.parameter_table`;
:mod:`focus_ros.ros.params` turns these tables into parameter descriptors.
"""

from __future__ import annotations

from typing import Any

from ..core.config import ATTN_IMPLEMENTATIONS, DEVICES, DTYPES, FAMILIES

MODEL_DOCS: dict[str, tuple[str, tuple[str, ...]]] = {
    "model.path": ("model directory ('~' expanded) or hub id (needs allow_download); empty: the embedded model", ()),
    "model.family": ("adapter: auto reads model_type from the checkpoint's config.json", FAMILIES + ("auto",)),
    "model.dtype": (
        "weights dtype: auto = on CUDA as the family ships (Qwen2.5-VL bfloat16, LLaVA float16), float32 on CPU",
        DTYPES,
    ),
    "model.device": ("auto = cuda when available, else cpu", DEVICES),
    "model.attn_implementation": (
        "attention kernel; FOCUS reads cached values, never attention weights",
        ATTN_IMPLEMENTATIONS,
    ),
    "model.local_files_only": ("load a local directory without any hub look-up (allow_download overrides it)", ()),
    "model.allow_download": ("allow a hub id as model.path, downloaded at model.revision; false: refused", ()),
    "model.revision": ("hub revision of a download; a commit hash pins it (empty: the default branch)", ()),
    "model.preshrink": (
        "shrink frames with OpenCV before the image processor (same answers, far cheaper); "
        "false: the processor alone, as transformers does",
        (),
    ),
}

# search.* : (description, low, high, choices). Defaults are the LLaVA-1.5 paper settings;
# other families start from their own (FAMILY_SEARCH_DEFAULTS) unless a value is set. The integer
# settings' ranges are the core's SEARCH_LIMITS (the same bounds as the command-line tools).
SEARCH_DOCS: dict[str, tuple[str, Any, Any, tuple[str, ...]]] = {
    "target_extraction": (
        "step 1: model = few-shot prompt as in the paper; rule = parse the question (no model pass)",
        None,
        None,
        ("model", "rule"),
    ),
    "max_target_tokens": ("step 1: tokens the model may write when listing targets", None, None, ()),
    "max_targets": ("step 1: targets searched per question; the rest are left out, the answer says so", None, None, ()),
    "layer_start": (
        "step 2: first layer whose cached values are read; <= 1 a fraction of depth, else an index",
        0.0,
        1000.0,
        (),
    ),
    "layer_end": ("step 2: end layer (exclusive); <= 1 a fraction of depth, else an index", 0.0, 1000.0, ()),
    "smooth_sigma": ("step 2: Gaussian smoothing of the relevance grid, cells (0: none)", 0.0, 100.0, ()),
    "max_grid_side": ("step 2: pool relevance grids longer than this many cells (0: never)", None, None, ()),
    "relevance_tiles": (
        "step 2: relevance on N tiles along the long side (1: one view)",
        None,
        None,
        (),
    ),
    "contrast_quantile": (
        "step 2: this quantile of the image tokens maps to 0 and the peak to 1 "
        "(0.5: the median; 0: min-max; negative: no contrast)",
        -1.0,
        0.99,
        (),
    ),
    "top_k_anchors": ("step 3: anchors taken from the relevance map", None, None, ()),
    "min_anchor_distance": ("step 3: cells between anchors", None, None, ()),
    "s_min": ("step 3: starting side of a region, cells", None, None, ()),
    "s_max": ("step 3: largest side of a region, cells (>= s_min)", None, None, ()),
    "grow_threshold": (
        "step 3: grow a region while the cells each step adds have mean relevance >= this x the maximum",
        0.0,
        1.0,
        (),
    ),
    "nms_iou": ("step 3: drop regions overlapping a better one by more than this IoU", 0.0, 1.0, ()),
    "crop_margin": ("step 3: extra context around each region, fraction of its size", 0.0, 10.0, ()),
    "min_crop_side": ("step 3: never verify crops smaller than this, px (0: no minimum)", None, None, ()),
    "max_steps": ("step 4: candidates verified per target", None, None, ()),
    "overrun": ("step 4: keep verifying past max_steps until a Yes (the paper's overrun)", None, None, ()),
    "max_overrun_steps": ("step 4: bound on the overrun", None, None, ()),
    "verify_batch": (
        "step 4: crops verified per batched forward (same confidences as one at a time); 0: all of the "
        "first max_steps at once (at most 64 a forward), 1: one at a time",
        None,
        None,
        (),
    ),
    "exist_threshold": ("step 4: existence probability that counts as Yes", 0.0, 1.0, ()),
    "type2_threshold": ("step 4: keep every region above this for 'all X' questions", 0.0, 1.0, ()),
    "far_apart_area_ratio": (
        "answer: paste crops on one canvas when their union is this many times their area",
        1.0,
        1000.0,
        (),
    ),
    "answer_view": ("answer: crop, or global+crop (the whole frame and the crop)", None, None, ("crop", "global+crop")),
    "max_new_tokens": ("answer: tokens generated at most", None, None, ()),
    "seed": ("random generator seed (random-window baseline)", 0, 2**31 - 1, ()),
}


__all__ = ["MODEL_DOCS", "SEARCH_DOCS"]
