"""Reader for V* Bench (Wu & Xie 2023, "V*: Guided Visual Search as a Core Mechanism in Multimodal
LLMs") in its published layout, for users who have the data:

    ROOT/direct_attributes/sa_4690.jpg   + sa_4690.json
    ROOT/relative_position/sa_1234.jpg   + sa_1234.json

Each annotation JSON holds ``question``, ``options`` (the correct option FIRST, as V* Bench's own
evaluation assumes), ``target_object`` (names) and ``bbox`` (one ``[x, y, w, h]`` per target, source
pixels). Options are shown in an order shuffled deterministically per image (so a model with a
bias for "(A)" gains nothing) and written into the question the way V* Bench writes them,
``"...?\\n(A) red\\n(B) blue..."``; every method then answers by comparing option likelihoods.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from .items import BenchItem, format_question

CATEGORIES = ("direct_attributes", "relative_position")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def _image_for(annotation: Path) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = annotation.with_suffix(suffix)
        if p.is_file():
            return p
    return None


def load_vstar(root: str | Path, shuffle_seed: int = 0) -> list[BenchItem]:
    """Every annotated image of every category folder under ``root`` (sorted, deterministic)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"V* Bench folder not found: {root}")
    folders = [root / c for c in CATEGORIES if (root / c).is_dir()]
    folders += sorted(p for p in root.iterdir() if p.is_dir() and p.name not in CATEGORIES and any(p.glob("*.json")))
    items: list[BenchItem] = []
    for folder in folders:
        for ann_path in sorted(folder.glob("*.json")):
            image = _image_for(ann_path)
            if image is None:
                continue
            try:
                ann = json.loads(ann_path.read_text())
                question, options = str(ann["question"]), [str(o) for o in ann["options"]]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{ann_path}: not a V* Bench annotation ({exc})") from exc
            if len(options) < 2:
                raise ValueError(f"{ann_path}: needs at least two options")
            rng = np.random.default_rng([shuffle_seed, zlib.crc32(f"{folder.name}/{ann_path.stem}".encode())])
            shown = [options[i] for i in rng.permutation(len(options))]
            boxes = [
                [float(x), float(y), float(x) + float(w), float(y) + float(h)] for x, y, w, h in ann.get("bbox", [])
            ]
            items.append(
                BenchItem(
                    str(image.resolve()),
                    format_question(question, shown),
                    options[0],
                    folder.name,
                    boxes,
                    shown,
                    f"{folder.name}/{ann_path.stem}",
                )
            )
    if not items:
        raise ValueError(f"no V* Bench annotations (image + .json) under {root}")
    return items


__all__ = ["CATEGORIES", "load_vstar", "format_question"]
