"""Shared pieces of the command-line tools: model flags, config building, image loading."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ..core.config import ATTN_IMPLEMENTATIONS, DEVICES, DTYPES, FAMILIES, build_configs


class CliError(Exception):
    """An error reported to the user as one line on stderr, without a traceback."""


def add_model_flags(parser: argparse.ArgumentParser, require_model: bool = True) -> None:
    """The ``model.*`` and common ``search.*`` flags every tool shares."""
    parser.add_argument(
        "--model", required=False, help="model directory or hub id (default: the embedded model, models/embedded)"
    )
    parser.add_argument(
        "--model-family",
        choices=FAMILIES + ("auto",),
        default="auto",
        help="adapter to use (auto: the model_type in the checkpoint's config.json)",
    )
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--dtype", choices=DTYPES, default="auto")
    parser.add_argument("--attn-implementation", choices=ATTN_IMPLEMENTATIONS, default="sdpa")
    parser.add_argument("--max-steps", type=int, default=None, help="candidates verified per target")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="GROUP.NAME=VALUE",
        help="any other setting, e.g. --set search.s_max=9 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def configs_from_args(args: argparse.Namespace):
    """``(ModelConfig, SearchConfig)`` from the shared flags; a clear error when invalid. No
    ``--model``: the embedded default model."""
    if not args.model:
        from ..core.config import default_model_path

        try:
            args.model = default_model_path()
        except FileNotFoundError as exc:
            raise CliError(f"{exc} (pass --model)") from exc
    values = {
        "model.path": args.model,
        "model.family": args.model_family,
        "model.device": args.device,
        "model.dtype": args.dtype,
        "model.attn_implementation": args.attn_implementation,
        "search.max_steps": args.max_steps,
    }
    for item in args.set:
        if "=" not in item:
            raise CliError(f"--set expects GROUP.NAME=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        values[key.strip()] = value.strip()
    if args.model and not Path(args.model).expanduser().exists() and args.model.startswith(("/", ".", "~")):
        raise CliError(f"model path does not exist: {args.model}")
    try:
        return build_configs(values)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars on stderr


def load_image(path: str | Path) -> np.ndarray:
    """RGB uint8 array of an image file (any format OpenCV reads); CliError when unreadable."""
    import cv2

    p = Path(path).expanduser()
    if not p.is_file():
        raise CliError(f"image not found: {p}")
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CliError(f"cannot read image: {p}")
    return np.ascontiguousarray(bgr[..., ::-1])


def load_pipeline(args: argparse.Namespace):
    """Build the configs and load the model; CliError on any loading failure."""
    from ..core.pipeline import FocusPipeline

    model_cfg, search_cfg = configs_from_args(args)
    try:
        return FocusPipeline.from_configs(model_cfg, search_cfg)
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"cannot load model {args.model!r}: {first}") from exc
