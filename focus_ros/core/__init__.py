"""ROS-free core of focus_ros (never imports rclpy): FOCUS on transformers VLMs.

Heavy modules (torch, transformers) load only when a pipeline or adapter is used, so geometry
and configuration stay cheap to import.
"""

from .config import FAMILIES, ModelConfig, SearchConfig, build_configs, search_defaults

__all__ = [
    "FAMILIES",
    "ModelConfig",
    "SearchConfig",
    "build_configs",
    "search_defaults",
    "FocusPipeline",
    "FocusResult",
]


def __getattr__(name: str):
    if name == "FocusPipeline":
        from .pipeline import FocusPipeline

        return FocusPipeline
    if name == "FocusResult":
        from .results import FocusResult

        return FocusResult
    raise AttributeError(name)
