"""LLaVA-1.5 (``LlavaForConditionalGeneration``): pad-to-square, one fixed visual grid."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..geometry import GridMapping, pad_to_square_mapping
from .base import VLMAdapter, image_token_id, image_token_positions
from .preprocess import LLAVA_PRESHRINK, centre_on_square, shrink_and_pad_square, square_side


def expand_to_square(image: np.ndarray, fill: tuple[int, int, int]) -> np.ndarray:
    """LLaVA-1.5's ``expand2square``: centre the image on a square of the processor's mean colour."""
    h, w = image.shape[:2]
    return image if h == w else centre_on_square(image, max(h, w), fill)


class LlavaAdapter(VLMAdapter):
    """LLaVA-1.5: ``USER: <image>\\n{question} ASSISTANT:``; 24x24 grid over the padded square."""

    family = "llava"
    model_class = "LlavaForConditionalGeneration"

    def image_placeholder(self) -> str:
        return f"{self.processor.image_token}\n"

    def prefix_text(self) -> str:
        return f"USER: {self.image_placeholder()}"

    def question_text(self, question: str) -> str:
        return f"{question.strip()} ASSISTANT:"

    def text_prompt(self, user_text: str) -> str:
        return f"USER: {user_text.strip()} ASSISTANT:"

    def pad_fill(self) -> tuple[int, int, int]:
        """The colour LLaVA pads images with (the processor's mean): tiles past a frame's border too."""
        mean = getattr(self.processor.image_processor, "image_mean", None) or (0.5, 0.5, 0.5)
        return tuple(int(round(255 * m)) for m in mean[:3])

    # Shrink with OpenCV to twice the processor's input square before it sees the image
    # (preprocess.py); False: the processor alone, as before (the equivalence tests' reference).
    preshrink = True

    def processor_image(self, image: np.ndarray) -> np.ndarray:
        """The image as :meth:`image_inputs` hands it to the processor: padded to a square, shrunk first."""
        image, fill = image[..., :3], self.pad_fill()
        side = square_side(self.processor.image_processor) if self.preshrink else None
        square = shrink_and_pad_square(image, LLAVA_PRESHRINK * side, fill) if side else None
        return expand_to_square(image, fill) if square is None else square

    def image_inputs(self, image: np.ndarray, text: str, add_special_tokens: bool) -> dict:
        # The HF processor resizes + centre-crops; LLaVA-1.5 was trained on padded squares.
        return super().image_inputs(self.processor_image(image), text, add_special_tokens)

    def _grid(
        self, input_ids: torch.Tensor, inputs: dict, image_size: tuple[int, int]
    ) -> tuple[np.ndarray, GridMapping]:
        pos = image_token_positions(input_ids, image_token_id(self.model.config))
        side = int(round(math.sqrt(len(pos))))
        if side * side != len(pos):
            raise ValueError(f"LLaVA image tokens ({len(pos)}) do not form a square grid")
        w, h = image_size
        return pos.reshape(side, side), pad_to_square_mapping(w, h, side)
