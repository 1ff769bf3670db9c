"""LLaVA-OneVision (``LlavaOnevisionForConditionalGeneration``): any-res tiling.

The sequence holds the squashed base view (tile_side^2 tokens) followed by the local crops'
tokens in an aspect-preserving grid, unpadded, possibly interpolated down ("anyres_max_9"), with a
newline token after every row. FOCUS reads the local grid: it is the high-resolution view.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..geometry import GridMapping, affine_edges
from .base import VLMAdapter, image_token_id, image_token_positions
from .preprocess import area_resize, onevision_fit


class LlavaOnevisionAdapter(VLMAdapter):
    """``<|im_start|>user\\n<image>\\n{question}<|im_end|>\\n<|im_start|>assistant\\n``."""

    family = "llava_onevision"
    model_class = "LlavaOnevisionForConditionalGeneration"

    def image_placeholder(self) -> str:
        return f"{self.processor.image_token}\n"

    def prefix_text(self) -> str:
        return f"<|im_start|>user\n{self.image_placeholder()}"

    def question_text(self, question: str) -> str:
        return f"{question.strip()}<|im_end|>\n<|im_start|>assistant\n"

    def text_prompt(self, user_text: str) -> str:
        return f"<|im_start|>user\n{user_text.strip()}<|im_end|>\n<|im_start|>assistant\n"

    # Shrink with OpenCV to the processor's any-res fit before it sees the image (preprocess.py);
    # False: the processor alone, as before (the equivalence tests' reference).
    preshrink = True

    def image_inputs(self, image: np.ndarray, text: str, add_special_tokens: bool) -> dict:
        return super().image_inputs(self.processor_image(image), text, add_special_tokens)

    def processor_image(self, image: np.ndarray) -> np.ndarray:
        """The image as :meth:`image_inputs` hands it to the processor: area-resized to the size
        the processor fits it to inside its best any-res resolution, when that shrinks both sides,
        the squashed base view still shrinks, and the processor lays the result out exactly as the
        original (same resolution, fit, unpadded tiles and so the same tokens); otherwise unchanged.
        The processor then only pads and tiles the local view, and shrinks the base view from far
        fewer pixels."""
        image = image[..., :3]
        ip = self.processor.image_processor
        pinpoints = getattr(ip, "image_grid_pinpoints", None)
        if not self.preshrink or not getattr(ip, "do_resize", False) or not pinpoints:
            return image
        h, w = image.shape[:2]
        best, (fh, fw) = onevision_fit(pinpoints, h, w)
        base_h, base_w = getattr(ip.size, "height", None) or 0, getattr(ip.size, "width", None) or 0
        if (fh, fw) == (h, w) or fh > h or fw > w or fh < base_h or fw < base_w:
            return image
        if onevision_fit(pinpoints, fh, fw) != (best, (fh, fw)):
            return image
        before, after = self.local_layout(w, h), self.local_layout(fw, fh)
        same = all(np.array_equal(a, b) for a, b in zip(before[:4], after[:4]))
        return area_resize(image, fw, fh) if same else image

    def local_layout(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray, int, int, tuple, tuple]:
        """Rows/cols of the full tile grid that survive unpadding, the interpolated grid size, and
        the source-pixel edges of the full tile grid. Uses transformers' own layout functions."""
        from transformers.image_processing_utils import select_best_resolution
        from transformers.models.llava_onevision.modeling_llava_onevision import (
            get_anyres_image_grid_shape,
            unpad_image,
        )

        cfg = self.model.config
        tile_px = cfg.vision_config.image_size
        side = tile_px // cfg.vision_config.patch_size
        n_h, n_w = get_anyres_image_grid_shape((height, width), cfg.image_grid_pinpoints, tile_px)
        full_h, full_w = n_h * side, n_w * side
        # The processor resizes into the best resolution keeping the aspect ratio (ceil), then pads
        # centrally (transformers.image_processing_utils.get_patch_output_size / _get_padding_size).
        best_h, best_w = select_best_resolution((height, width), cfg.image_grid_pinpoints)
        sw, sh = best_w / width, best_h / height
        if sw < sh:
            new_w, new_h = best_w, min(math.ceil(height * sw), best_h)
        else:
            new_h, new_w = best_h, min(math.ceil(width * sh), best_w)
        pad_x, pad_y = (best_w - new_w) // 2, (best_h - new_h) // 2
        x_edges = affine_edges(full_w, best_w, pad_x, width, new_w)
        y_edges = affine_edges(full_h, best_h, pad_y, height, new_h)
        # Which rows/cols unpadding keeps: run the model's own unpad on index tensors.
        rows = torch.arange(full_h).view(1, full_h, 1).expand(1, full_h, full_w)
        cols = torch.arange(full_w).view(1, 1, full_w).expand(1, full_h, full_w)
        size = torch.tensor([height, width])
        kept_rows = unpad_image(rows, size)[0, :, 0].numpy()
        kept_cols = unpad_image(cols, size)[0, 0, :].numpy()
        cur_h, cur_w = len(kept_rows), len(kept_cols)
        max_tiles = int(str(getattr(cfg, "vision_aspect_ratio", "anyres_max_9")).removeprefix("anyres_max_"))
        ratio = math.sqrt(cur_h * cur_w / (max_tiles * side**2))
        out_h, out_w = (int(cur_h // ratio), int(cur_w // ratio)) if ratio > 1.1 else (cur_h, cur_w)
        return kept_rows, kept_cols, out_h, out_w, x_edges, y_edges

    def _grid(
        self, input_ids: torch.Tensor, inputs: dict, image_size: tuple[int, int]
    ) -> tuple[np.ndarray, GridMapping]:
        w, h = image_size
        pos = image_token_positions(input_ids, image_token_id(self.model.config))
        side = self.model.config.vision_config.image_size // self.model.config.vision_config.patch_size
        kept_rows, kept_cols, gh, gw, x_edges, y_edges = self.local_layout(w, h)
        n_local = gh * (gw + 1)  # one newline token closes every row
        if len(pos) != side * side + n_local:
            raise ValueError(
                f"OneVision layout mismatch: {len(pos)} image tokens, expected {side * side} base + {n_local} local"
            )
        local = pos[side * side :].reshape(gh, gw + 1)[:, :gw]
        # The kept rows/cols span this source extent; an interpolated grid spans it evenly.
        x0, x1 = x_edges[kept_cols[0]], x_edges[kept_cols[-1] + 1]
        y0, y1 = y_edges[kept_rows[0]], y_edges[kept_rows[-1] + 1]
        if (gh, gw) == (len(kept_rows), len(kept_cols)):
            xe = tuple(x_edges[kept_cols[0] : kept_cols[-1] + 2])
            ye = tuple(y_edges[kept_rows[0] : kept_rows[-1] + 2])
        else:
            xe = tuple(np.linspace(x0, x1, gw + 1).tolist())
            ye = tuple(np.linspace(y0, y1, gh + 1).tolist())
        return local, GridMapping(xe, ye, w, h)
