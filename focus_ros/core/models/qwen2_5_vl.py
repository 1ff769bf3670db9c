"""Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``): dynamic resolution, 3-D rotary positions.

The image is resized to multiples of patch*merge pixels; each merged token covers a fixed block
of the resized image. Position ids are multimodal (temporal, height, width); text after the image
continues at ``index + rope_delta``. We pass position ids explicitly on every call so a cached
prefix never depends on the model's own stored ``rope_deltas`` (which another frame overwrites).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..geometry import GridMapping, resize_mapping
from .base import CropSample, ImagePrefix, VLMAdapter, image_token_id, image_token_positions
from .preprocess import shrink_for_qwen

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


class Qwen25VLAdapter(VLMAdapter):
    """``...<|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>...``."""

    family = "qwen2_5_vl"
    model_class = "Qwen2_5_VLForConditionalGeneration"
    cuda_dtype = "bfloat16"  # Qwen2.5-VL ships in bfloat16; its activations overflow float16

    def image_placeholder(self) -> str:
        return f"<|vision_start|>{self.processor.image_token}<|vision_end|>"

    def prefix_text(self) -> str:
        return f"{SYSTEM}<|im_start|>user\n{self.image_placeholder()}"

    def question_text(self, question: str) -> str:
        return f"{question.strip()}<|im_end|>\n<|im_start|>assistant\n"

    def text_prompt(self, user_text: str) -> str:
        return f"{SYSTEM}<|im_start|>user\n{user_text.strip()}<|im_end|>\n<|im_start|>assistant\n"

    # Shrink with OpenCV to the processor's smart_resize size before it sees the image
    # (preprocess.py); False: the processor alone, as before (the equivalence tests' reference).
    preshrink = True

    def processor_image(self, image: np.ndarray) -> np.ndarray:
        """The image as :meth:`image_inputs` hands it to the processor: at its smart_resize size."""
        image = image[..., :3]
        return shrink_for_qwen(self.processor.image_processor, image) if self.preshrink else image

    def image_inputs(self, image: np.ndarray, text: str, add_special_tokens: bool) -> dict:
        return super().image_inputs(self.processor_image(image), text, add_special_tokens)

    def _mm_types(self, input_ids: torch.Tensor) -> torch.Tensor:
        return (input_ids == image_token_id(self.model.config)).int()

    def _rope(self, input_ids: torch.Tensor, grids: torch.Tensor) -> tuple[torch.Tensor, int]:
        pos, delta = self.model.model.get_rope_index(input_ids, self._mm_types(input_ids), image_grid_thw=grids)
        return pos, int(delta.flatten()[0])

    def _prefix_state(self, input_ids: torch.Tensor, inputs: dict) -> dict:
        grids = inputs["image_grid_thw"]
        pos, delta = self._rope(input_ids, grids)
        return {"rope_delta": delta, "position_ids": pos, "ids": input_ids, "grids": grids}

    def _vision_kwargs(self, inputs: dict, state: dict, start: int) -> dict:
        kwargs = super()._vision_kwargs(inputs, state, start)
        kwargs.pop("mm_token_type_ids", None)
        kwargs["position_ids"] = state.pop("position_ids").to(self.device)
        return kwargs

    def _extension_vision_kwargs(self, prefix: ImagePrefix, ids: torch.Tensor, inputs: dict, state: dict) -> dict:
        # Positions of an image after the prefix depend on everything before it: compute them on
        # the whole sequence and keep the tail, then remember the new delta for decoding.
        full_ids = torch.cat([prefix.state["ids"], ids], dim=1)
        grids = torch.cat([prefix.state["grids"], inputs["image_grid_thw"]], dim=0)
        pos, delta = self._rope(full_ids, grids)
        state["rope_delta"] = delta
        state["position_ids"] = pos[:, :, prefix.length :]
        return self._vision_kwargs(inputs, state, prefix.length)

    def _batch_vision_kwargs(self, samples: list[CropSample], width: int) -> dict:
        # Each row's own 3-D positions: its prefix's (from its own image grid), then its text at
        # index + that row's rope delta, as extend() gives it; the right padding continues the text
        # positions and is never attended to by a real token.
        kwargs = super()._batch_vision_kwargs(samples, width)
        kwargs.pop("mm_token_type_ids", None)  # one per prefix, not per row; positions are explicit
        rows = []
        for sample in samples:
            prefix_pos = sample.state.pop("position_ids")
            length = prefix_pos.shape[-1]
            tail = torch.arange(length, width) + sample.state["rope_delta"]
            rows.append(torch.cat([prefix_pos, tail.view(1, 1, -1).expand(3, 1, -1).to(prefix_pos)], dim=2))
        kwargs["position_ids"] = torch.cat(rows, dim=1).to(self.device)
        return kwargs

    def _forward(self, input_ids: torch.Tensor, cache: Any, start: int, state: dict, vision: dict | None = None) -> Any:
        vision = dict(vision or {})
        if "position_ids" not in vision:
            n = input_ids.shape[1]
            text_pos = torch.arange(start, start + n) + state.get("rope_delta", 0)
            vision["position_ids"] = text_pos.view(1, 1, -1).expand(3, 1, -1).to(self.device)
        return super()._forward(input_ids, cache, start, state, vision)

    def _grid(
        self, input_ids: torch.Tensor, inputs: dict, image_size: tuple[int, int]
    ) -> tuple[np.ndarray, GridMapping]:
        w, h = image_size
        _, gh_p, gw_p = (int(x) for x in inputs["image_grid_thw"][0])
        merge = self.model.config.vision_config.spatial_merge_size
        patch = self.model.config.vision_config.patch_size
        gh, gw = gh_p // merge, gw_p // merge
        pos = image_token_positions(input_ids, image_token_id(self.model.config))
        if len(pos) != gh * gw:
            raise ValueError(f"Qwen2.5-VL layout mismatch: {len(pos)} image tokens for a {gh}x{gw} grid")
        return pos.reshape(gh, gw), resize_mapping(w, h, gw_p * patch, gh_p * patch, gh, gw)
