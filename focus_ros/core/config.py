"""Configuration dataclasses: one per component, paper defaults, one builder from flat mappings.

ROS parameters (``model.device``, ``search.max_steps`` ...) and CLI flags both end up as a flat
``{"group.name": value}`` mapping and go through :func:`build_configs`, so the node and the
command-line tools can never disagree on names, defaults or validation.

Search settings are layered: the family's paper defaults, then the model directory's own
``focus_settings.json`` (``{"search": {...}}``, see :func:`model_search_settings`), then explicit
``search.*`` keys.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

FAMILIES = ("llava", "llava_onevision", "qwen2_5_vl")

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
DTYPES = ("auto", "float32", "float16", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")
MODEL_SETTINGS_FILE = "focus_settings.json"  # per-model search settings, in a local model directory

# The embedded default model (trained in this repository by scripts/train_embedded_model.py).
EMBEDDED_MODEL = "models/embedded"


def default_model_path() -> str:
    """Where the embedded default model is: the installed package's share folder first
    (``share/focus_ros/models/embedded`` under a prefix of ``AMENT_PREFIX_PATH``, what the ament
    index lists), then this source checkout's, and only then the current directory's
    ``models/embedded``: a folder planted where the node happens to be started never replaces the
    model the package ships. Raises FileNotFoundError naming the places looked at."""
    roots = [Path(p) / "share" / "focus_ros" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    roots += [Path(__file__).resolve().parents[2], Path.cwd()]
    for root in roots:
        if (root / EMBEDDED_MODEL / "config.json").is_file():
            return str(root / EMBEDDED_MODEL)
    raise FileNotFoundError(
        f"no model given and the embedded default {EMBEDDED_MODEL} is not in {', '.join(str(r) for r in roots)}"
    )


def looks_like_path(path: str) -> bool:
    """True for a name written as a file-system path (absolute, ``./``, ``../``, ``~``): never a hub id."""
    return path.startswith((".", "~")) or os.path.isabs(path)


def is_hub_id(path: str) -> bool:
    """True when ``path`` would be fetched from a model hub: nothing exists there locally (``~``
    expanded) and it is not written as a path."""
    return bool(path) and not looks_like_path(path) and not os.path.exists(os.path.expanduser(path))


def download_refusal(path: str, allow_download: bool) -> str | None:
    """Why loading ``path`` is refused (None when it is not): a hub id needs ``model.allow_download``."""
    if allow_download or not is_hub_id(path):
        return None
    return (
        f"model.path {path!r} is no local directory, so it would be downloaded from a model hub, and downloads "
        "are off: give the path of a local copy, or allow the download with model.allow_download true "
        "(node: -p model.allow_download:=true, launch: allow_download:=true; command-line tools: "
        "--set model.allow_download=true) and pin model.revision to a commit hash"
    )


def hub_kwargs(model: ModelConfig) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments saying where ``model.path`` may come from.

    A local directory loads with ``local_files_only`` as configured (true by default: nothing is
    looked up on a hub). A hub id loads only with ``model.allow_download`` (else ValueError, see
    :func:`download_refusal`), and then downloads at ``model.revision``: allow_download is the
    user's explicit word for this load, so it overrides ``local_files_only``."""
    refusal = download_refusal(model.path, model.allow_download)
    if refusal:
        raise ValueError(refusal)
    if is_hub_id(model.path):
        return {"local_files_only": False, "revision": model.revision or None}
    return {"local_files_only": model.local_files_only}


# transformers' config.json ``model_type`` -> our family; reading the checkpoint's own declared
# architecture is explicit, unlike guessing from the path string.
_MODEL_TYPE_TO_FAMILY = {
    "llava": "llava",
    "llava_onevision": "llava_onevision",
    "qwen2_5_vl": "qwen2_5_vl",
}


@dataclass
class ModelConfig:
    """Which checkpoint to load and how."""

    path: str = ""  # local directory or hub id; required
    family: str = "auto"  # llava | llava_onevision | qwen2_5_vl | auto (config.json model_type)
    dtype: str = "auto"  # auto: on CUDA as the family ships (Qwen bfloat16, LLaVA float16), CPU float32
    device: str = "auto"  # auto: cuda when available, else cpu
    attn_implementation: str = "sdpa"  # FOCUS reads values, not attention weights, so sdpa/flash work
    local_files_only: bool = True  # a local load never looks anything up on a hub (allow_download overrides it)
    allow_download: bool = False  # a hub id is a download: only when asked for, never from a typo
    revision: str = ""  # hub revision of a download (a commit hash pins it); empty: the hub's default branch
    preshrink: bool = True  # OpenCV shrinks frames before the image processor: same answers, ~5x cheaper

    def __post_init__(self) -> None:
        # "~/models/x" is a directory: expanded before anything checks whether it exists or loads it
        self.path = os.path.expanduser(self.path)

    def validate(self) -> None:
        if not self.path:
            raise ValueError("model.path is empty: give a model directory or hub id")
        refusal = download_refusal(self.path, self.allow_download)
        if refusal:
            raise ValueError(refusal)
        _check_choice("model.family", self.family, FAMILIES + ("auto",))
        _check_choice("model.dtype", self.dtype, DTYPES)
        _check_choice("model.device", self.device, DEVICES)
        _check_choice("model.attn_implementation", self.attn_implementation, ATTN_IMPLEMENTATIONS)


# Ranges of the integer search settings (core validation and the node's parameter ranges alike).
# The upper bounds bound what one question can cost: each sits well above every per-model setting
# (config/models, focus_settings.json) and the tests' long searches, far below a runaway search.
SEARCH_LIMITS: dict[str, tuple[int, int]] = {
    "max_target_tokens": (1, 128),  # one sentence listing the targets; its decoding is not cancellable
    "max_targets": (1, 16),  # 16 objects in one question is a list, not a question
    "max_grid_side": (0, 256),  # cells; model grids are tens of cells a side
    "relevance_tiles": (1, 8),  # 8 tiles a side is 64 image prefixes a frame: beyond it, crop instead
    "top_k_anchors": (1, 512),  # LLaVA-1.5's 24x24 grid holds ~470 side-2 regions: 512 covers any cell
    "min_anchor_distance": (0, 256),  # cells
    "s_min": (1, 256),  # cells
    "s_max": (1, 256),  # cells
    "min_crop_side": (0, 16384),  # px
    "max_steps": (1, 512),  # crops verified per target (paper 4-8); with the overrun the bound of its cost
    "max_overrun_steps": (0, 64),  # the overrun only looks for a first Yes
    "verify_batch": (0, 64),  # crops in one forward: memory grows with it (0 means max_steps, capped too)
    "max_new_tokens": (1, 512),  # answer tokens; generating them is not cancellable
}
# Crops verified in one batched forward at most, whatever verify_batch and max_steps say: a batch
# holds every crop's KV cache at once.
MAX_VERIFY_BATCH = SEARCH_LIMITS["verify_batch"][1]


@dataclass
class SearchConfig:
    """FOCUS hyper-parameters (paper defaults for LLaVA-1.5; per-family overrides below)."""

    # step 1: target extraction
    target_extraction: str = "model"  # model: few-shot prompt as in the paper; rule: parse the question
    max_target_tokens: int = 24  # the answer is one short sentence
    # each target costs a relevance pass and up to max_steps + max_overrun_steps crops: 4 covers
    # relations ("A left of B") and short lists, and keeps a question's cost bounded
    max_targets: int = 4
    # step 2: relevance from cached value vectors
    layer_start: float = 0.4375  # paper reads layers 14..32 of LLaVA-1.5-7B's 32 (14/32)
    layer_end: float = 1.0  # exclusive end; values <= 1 are fractions of depth, larger ones indices
    smooth_sigma: float = 0.0  # LLaVA's 24x24 grid is coarse already; OneVision smooths its fine grid
    max_grid_side: int = 0  # 0: keep the model's grid; OneVision pools to about LLaVA's 24 cells
    contrast_quantile: float = 0.5  # map this quantile of the image tokens to 0: the median is background
    #                                      (a small target covers few tokens); < 0: raw map / peak, no contrast
    # 1: the relevance of the model's own view of the frame (the paper). N > 1: of N square tiles along
    # the frame's long side, each prefilled as an image of its own and their maps joined (a grid N
    # times finer, as OneVision's local crops give it): for single-view models whose view makes small
    # targets smaller than a patch. Costs one image prefill a tile, once per frame.
    relevance_tiles: int = 1
    # step 3: region proposals
    top_k_anchors: int = 20  # paper: k around 15-30
    min_anchor_distance: int = 2  # paper: anchors at least 2-3 cells apart
    s_min: int = 3  # paper: start squares of 3 cells
    s_max: int = 7  # paper: grow up to 5-9 cells
    grow_threshold: float = 0.5  # paper's "0.5 of the max": a growth step must add cells at least this relevant
    nms_iou: float = 0.3  # paper: drop overlaps with IoU > 0.3
    crop_margin: float = 0.0  # extra context around a region, fraction of its size
    min_crop_side: int = 0  # never verify crops smaller than this (px); 0: no minimum
    # step 4: verification and answer
    max_steps: int = 6  # paper: check 4-8 candidates per question
    overrun: bool = True  # paper's "overrun": keep checking until a Yes
    max_overrun_steps: int = 6  # bound on the overrun so a question always ends
    verify_batch: int = 0  # crops per batched forward; 0: all first max_steps at once (they always run); 1: one by one
    exist_threshold: float = 0.5  # Yes beats No
    type2_threshold: float = 0.6  # paper: keep every box with c > ~0.6 for "all X" targets
    far_apart_area_ratio: float = 4.0  # union > 4x the boxes' area: paste crops onto one canvas
    answer_view: str = "crop"  # LLaVA-1.5 answers from the crop; OneVision/Qwen from global + crop
    max_new_tokens: int = 16  # answers are a word or a short phrase
    seed: int = 0  # the random-window baseline's generator

    def validate(self) -> None:
        _check_choice("search.target_extraction", self.target_extraction, ("model", "rule"))
        _check_choice("search.answer_view", self.answer_view, ("crop", "global+crop"))
        for name, (low, high) in SEARCH_LIMITS.items():
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"search.{name} must be in [{low}, {high}], got {getattr(self, name)}")
        if self.s_max < self.s_min:
            raise ValueError(f"search.s_max ({self.s_max}) must be >= search.s_min ({self.s_min})")
        for name in ("grow_threshold", "nms_iou", "exist_threshold", "type2_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"search.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.layer_start < 0 or self.layer_end <= 0:
            raise ValueError("search.layer_start must be >= 0 and search.layer_end > 0")
        if self.contrast_quantile >= 1.0:
            raise ValueError(f"search.contrast_quantile must be < 1 (negative: off), got {self.contrast_quantile}")
        if self.smooth_sigma < 0 or self.crop_margin < 0 or self.far_apart_area_ratio < 1:
            raise ValueError("search.smooth_sigma and crop_margin must be >= 0, far_apart_area_ratio >= 1")


def check_tiles(search: SearchConfig, family: str) -> None:
    """Refuse ``search.relevance_tiles`` > 1 for a family without one square grid per image."""
    if search.relevance_tiles > 1 and family != "llava":
        raise ValueError(
            f"search.relevance_tiles {search.relevance_tiles} needs a model with one square grid per image "
            f"(model_family llava); {family} reads its own high-resolution views: set it to 1"
        )


# Per-family overrides of SearchConfig, each with its reason.
FAMILY_SEARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "llava": {},  # the class defaults are the paper's LLaVA-1.5 settings
    "llava_onevision": {
        "layer_start": 0.5,  # later half of the Qwen2 LM (the paper reads the last 25-60% of layers)
        "smooth_sigma": 1.0,  # paper smooths OneVision's fine local-crop grid with a Gaussian
        "max_grid_side": 24,  # and down-samples it so region sizes in cells stay comparable
        "answer_view": "global+crop",  # paper: OneVision answers from the global view plus crops
        "max_steps": 4,  # paper reports ~7.6 passes on V* for OneVision
    },
    "qwen2_5_vl": {
        "layer_start": 0.5,  # later half of the LM (the paper reads the last 25-60% of layers)
        "max_grid_side": 32,  # dynamic resolution can give long grids; pool very long ones
        "answer_view": "global+crop",  # paper: Qwen2.5-VL answers from the global view plus crops
    },
}


def search_defaults(family: str) -> SearchConfig:
    """The paper's defaults for one model family."""
    _check_choice("model.family", family, FAMILIES)
    return replace(SearchConfig(), **FAMILY_SEARCH_DEFAULTS[family])


def resolve_family(model: ModelConfig) -> str:
    """The configured family, or for ``auto`` the ``model_type`` the checkpoint declares in its
    config.json (read locally, or through transformers' cache / hub for a hub id)."""
    if model.family != "auto":
        return model.family
    cfg_file = Path(model.path) / "config.json"
    if cfg_file.is_file():
        model_type = json.loads(cfg_file.read_text()).get("model_type", "")
    else:
        try:
            from transformers import AutoConfig

            model_type = AutoConfig.from_pretrained(model.path, **hub_kwargs(model)).model_type
        except Exception as exc:  # OSError, ValueError, hub errors: all mean "cannot tell"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(
                f"model.family is 'auto' but the config of {model.path!r} cannot be read ({first}); "
                f"check the path or set model.family to one of {FAMILIES}"
            ) from exc
    if model_type not in _MODEL_TYPE_TO_FAMILY:
        raise ValueError(f"unsupported model_type {model_type!r} in {model.path!r}; supported: {FAMILIES}")
    return _MODEL_TYPE_TO_FAMILY[model_type]


def model_search_settings(model: ModelConfig) -> dict:
    """The ``search`` mapping of ``focus_settings.json`` in a local model directory, coerced to
    SearchConfig's types; ``{}`` when ``model.path`` is no local directory or has no such file.
    Unknown keys (or a malformed file) raise ValueError naming the file."""
    settings_file = Path(model.path) / MODEL_SETTINGS_FILE if model.path else None
    if settings_file is None or not settings_file.is_file():
        return {}
    try:
        data = json.loads(settings_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{settings_file}: cannot read model settings ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f'{settings_file}: expected an object like {{"search": {{...}}}}')
    extra = sorted(k for k in data if k not in ("search", "why"))  # "why": the reason, for people
    if extra:
        raise ValueError(f"{settings_file}: unknown keys {', '.join(extra)} (only 'search' and 'why' are allowed)")
    search = data.get("search", {})
    if not isinstance(search, dict):
        raise ValueError(f"{settings_file}: 'search' must be an object of SearchConfig settings")
    defaults = {f.name: f.default for f in fields(SearchConfig)}
    unknown = sorted(k for k in search if k not in defaults)
    if unknown:
        raise ValueError(f"{settings_file}: unknown search settings: {', '.join(unknown)}")
    out = {}
    for k, v in search.items():
        try:
            out[k] = _coerce(v, defaults[k], f"search.{k}")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{settings_file}: {exc}") from exc
    return out


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _coerce(value: Any, default: Any, name: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{name} must be a boolean, got {value!r}")
        return bool(value)
    if isinstance(default, int):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        return float(value)
    return str(value)


def parameter_table() -> dict[str, tuple[Any, type]]:
    """Every ``group.name`` setting with its default and type (what the node declares)."""
    table: dict[str, tuple[Any, type]] = {}
    for group, cls in (("model", ModelConfig), ("search", SearchConfig)):
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            table[f"{group}.{f.name}"] = (default, type(default))
    return table


def search_with(search: SearchConfig, values: Mapping[str, Any]) -> SearchConfig:
    """``search`` with ``{"search.NAME": value}`` settings applied, each coerced to its field's type,
    then validated: ValueError on an unknown name, a bad value or an invalid combination."""
    defaults = {f"search.{f.name}": f.default for f in fields(SearchConfig)}
    unknown = sorted(k for k in values if k not in defaults)
    if unknown:
        raise ValueError(f"unknown search settings: {', '.join(unknown)}")
    out = replace(search, **{k.split(".", 1)[1]: _coerce(v, defaults[k], k) for k, v in values.items()})
    out.validate()
    return out


def build_configs(values: Mapping[str, Any]) -> tuple[ModelConfig, SearchConfig]:
    """Build and validate both configs from ``{"model.path": ..., "search.max_steps": ...}``.

    Search settings start from the family's paper defaults, then the model directory's
    ``focus_settings.json`` (:func:`model_search_settings`); only keys present (and not None)
    override them. Unknown keys are an error so that typos do not pass silently.
    """
    known = parameter_table()
    unknown = sorted(k for k in values if k not in known)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(unknown)}")
    model_kwargs = {
        k.split(".", 1)[1]: _coerce(v, known[k][0], k)
        for k, v in values.items()
        if k.startswith("model.") and v is not None
    }
    model = ModelConfig(**model_kwargs)
    model.validate()
    family = resolve_family(model)
    model = replace(model, family=family)
    search_kwargs = {
        k.split(".", 1)[1]: _coerce(v, known[k][0], k)
        for k, v in values.items()
        if k.startswith("search.") and v is not None
    }
    search = replace(search_defaults(family), **{**model_search_settings(model), **search_kwargs})
    search.validate()
    return model, search


__all__ = [
    "EMBEDDED_MODEL",
    "default_model_path",
    "looks_like_path",
    "is_hub_id",
    "download_refusal",
    "hub_kwargs",
    "FAMILIES",
    "ModelConfig",
    "SearchConfig",
    "SEARCH_LIMITS",
    "MAX_VERIFY_BATCH",
    "FAMILY_SEARCH_DEFAULTS",
    "search_defaults",
    "resolve_family",
    "build_configs",
    "search_with",
    "parameter_table",
    "MODEL_SETTINGS_FILE",
    "model_search_settings",
]
