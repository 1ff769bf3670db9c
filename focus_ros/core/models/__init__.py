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


def load_adapter(cfg: ModelConfig) -> VLMAdapter:
    """Load the checkpoint in ``cfg`` through the adapter of its family."""
    return ADAPTERS[resolve_family(cfg)].load(cfg)


__all__ = ["ADAPTERS", "load_adapter", "VLMAdapter", "ImagePrefix", "Extension", "Meter"]
