"""The KV cache's name in transformers model calls and outputs.

transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old keyword still works there, with a
deprecation warning, until 5.40). Releases before it use the old name only, and 5.20 is the newest
release that installs on Python 3.10 (JetPack 6's interpreter), so the adapters ask here which name
the installed release uses.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def cache_keyword() -> str:
    """``cache`` or ``past_key_values``: the installed transformers' name for the KV cache."""
    from transformers.modeling_outputs import BaseModelOutputWithPast

    return "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


def cache_kwargs(kv_cache: Any) -> dict[str, Any]:
    """The keyword argument that hands ``kv_cache`` to a model call."""
    return {cache_keyword(): kv_cache}


def output_cache(outputs: Any) -> Any:
    """The KV cache of a model call's outputs."""
    return getattr(outputs, cache_keyword())


__all__ = ["cache_keyword", "cache_kwargs", "output_cache"]
