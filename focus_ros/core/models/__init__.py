"""Model adapters, one small class per family, chosen by the explicit ``model.family`` setting."""

from __future__ import annotations

from ..config import ModelConfig, resolve_family
from .base import Extension, ImagePrefix, Meter, VLMAdapter
from .llava import LlavaAdapter
from .llava_onevision import LlavaOnevisionAdapter
from .qwen2_5_vl import Qwen25VLAdapter

ADAPTERS: dict[str, type[VLMAdapter]] = {
    cls.family: cls for cls in (LlavaAdapter, LlavaOnevisionAdapter, Qwen25VLAdapter)
}


# The oldest transformers the core tier is tested with (pyproject.toml's lower bound; cache_names.py
# bridges the KV cache's rename in 5.24). Older releases would fail deep inside the first prefill.
MIN_TRANSFORMERS = "5.20.2"


def check_transformers(version: str | None = None) -> None:
    """Raise a clear error when ``version`` (default: the installed transformers) is older than the
    adapters need."""
    from packaging.version import Version

    if version is None:
        import transformers

        version = transformers.__version__
    if Version(version) < Version(MIN_TRANSFORMERS):
        raise RuntimeError(
            f"transformers {version} is too old: focus_ros needs >= {MIN_TRANSFORMERS} (see "
            "pyproject.toml; run scripts/setup.sh or pip install -e .)"
        )


def load_adapter(cfg: ModelConfig) -> VLMAdapter:
    """Load the checkpoint in ``cfg`` through the adapter of its family."""
    check_transformers()
    return ADAPTERS[resolve_family(cfg)].load(cfg)


__all__ = [
    "ADAPTERS",
    "MIN_TRANSFORMERS",
    "check_transformers",
    "load_adapter",
    "VLMAdapter",
    "ImagePrefix",
    "Extension",
    "Meter",
]
