"""Shared fixtures: offline hub, the random-weight miniatures, a sample frame."""

import os
from pathlib import Path

import pytest

# Tests never touch a model hub: everything loads from directories the project builds.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGE = REPO / "test" / "data" / "sample" / "frame.jpg"


@pytest.fixture(scope="session")
def miniature_root(tmp_path_factory) -> Path:
    """The three miniatures: the set-up script's copy, or built now into a temporary folder."""
    root = REPO / "models" / "miniatures"
    if (root / ".complete").is_file():
        return root
    from focus_ros.core.miniatures import build_all

    out = tmp_path_factory.mktemp("miniatures")
    build_all(out)
    return out


@pytest.fixture(scope="session")
def sample_image_path() -> Path:
    assert SAMPLE_IMAGE.is_file(), f"bundled sample image missing: {SAMPLE_IMAGE}"
    return SAMPLE_IMAGE
