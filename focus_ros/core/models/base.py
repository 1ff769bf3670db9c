"""The one small interface FOCUS needs from a multimodal LLM, and its shared implementation.

An adapter can: prefill an image prefix once (:meth:`VLMAdapter.prefill_image`), extend that
cached prefix with text (:meth:`VLMAdapter.extend`) or with text plus another image, read the
value vectors of the cache, map the visual-token grid to source pixels, score Yes/No, and decode.
Each family (LLaVA-1.5, LLaVA-OneVision, Qwen2.5-VL) only says how its prompt looks, how an image
becomes tokens, and where those tokens sit on its grid.
"""

from __future__ import annotations

import copy
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..config import ModelConfig, hub_kwargs, is_hub_id
from ..geometry import GridMapping
from .cache_names import cache_keyword, cache_kwargs, output_cache

LOG = logging.getLogger(__name__)


@dataclass
class Meter:
    """Cost of one question: model calls on new prompt tokens, tokens prefilled, decode steps."""

    forward_passes: int = 0
    tokens_prefilled: int = 0
    generated_tokens: int = 0
    reused_passes: int = 0  # passes a memo (frame or model level) saved: not run, not in forward_passes
    # wall seconds of the model calls by kind: "preprocess" (image processor), "prefill" (an image
    # prefix), "extend" (text, or text + image, after a prefix), "generate" (greedy decoding)
    seconds: dict[str, float] = field(default_factory=dict)

    def prefill(self, tokens: int) -> None:
        self.forward_passes += 1
        self.tokens_prefilled += tokens

    def lap(self, stage: str, since: float) -> float:
        """Add the time since ``since`` (a ``time.perf_counter()`` reading) to ``stage``; returns now."""
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since
        return now


@dataclass
class ImagePrefix:
    """A prefilled image prefix (system prompt + image tokens) with its KV cache.

    Never mutated after creation: every extension works on a fork of ``cache``.
    """

    cache: Any
    input_ids: torch.Tensor  # [1, L] ids of the prefix
    grid_positions: np.ndarray  # [gh, gw] sequence index of each visual-grid token
    mapping: GridMapping  # grid cell -> source pixels
    image_size: tuple[int, int]  # (width, height) of the source image
    state: dict = field(default_factory=dict)  # family specifics (Qwen: rope delta, mm types)
    seconds: float = 0.0

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[1])


@dataclass
class Extension:
    """A prefix extended by some tokens: logits of the last token and the grown (forked) cache."""

    cache: Any
    logits: torch.Tensor  # [vocab] next-token logits after the last new token
    input_ids: torch.Tensor  # [1, n] the new tokens
    start: int  # sequence index of the first new token
    offsets: list[tuple[int, int]]  # character span of each new text token (for target lookup)
    text: str
    state: dict = field(default_factory=dict)
    outputs: Any = None  # the model call's raw outputs (all logits / attention weights
    # when the caller asked for them through ``model_kwargs``)

    @property
    def end(self) -> int:
        return self.start + int(self.input_ids.shape[1])


@dataclass
class CropSample:
    """One image of a batch: its prefix ids, processor inputs (pixels, sizes), family state, size."""

    prefix_ids: torch.Tensor  # [1, P] the image prefix's ids (no padding)
    inputs: dict  # processor outputs other than ids / mask
    state: dict  # as an ImagePrefix's state
    image_size: tuple[int, int]  # (width, height) of the image


@dataclass
class CropBatch:
    """Images prefilled together, each as its own prefix followed by the same text, in one forward
    (:meth:`VLMAdapter.existence_batch`): P(Yes) per image and the shared, right-padded KV cache,
    from which :meth:`VLMAdapter.batch_prefix` slices one image's prefix."""

    confidences: list[float]
    cache: Any  # per layer [B, heads, longest row, head_dim]
    samples: list[CropSample]


def fork_cache(cache: Any) -> Any:
    """A copy of a DynamicCache that shares the prefix tensors.

    DynamicLayer.update grows a layer with ``torch.cat`` (a new tensor), never in place, so
    layer objects copied shallowly can be extended without touching the original: zero-copy
    until new tokens arrive.
    """
    new = copy.copy(cache)
    new.layers = [copy.copy(layer) for layer in cache.layers]
    return new


def resolve_device_dtype(cfg: ModelConfig, cuda_dtype: str = "float16") -> tuple[str, torch.dtype]:
    """The device and dtype ``model.device`` / ``model.dtype`` ask for. ``auto`` dtype: float32 on the
    CPU; on CUDA the family's ``cuda_dtype`` (how its checkpoints ship), bfloat16 falling back to
    float16 on a GPU without bfloat16."""
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device is 'cuda' but torch sees no CUDA device")
    if cfg.dtype == "auto":
        dtype = getattr(torch, cuda_dtype) if device == "cuda" else torch.float32
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            LOG.warning("this GPU has no bfloat16: loading in float16 (may overflow for this model)")
            dtype = torch.float16
    else:
        dtype = getattr(torch, cfg.dtype)
    return device, dtype


# Weight files that are pickles: unpickling runs whatever code the file names.
PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def check_safetensors_only(path: str) -> None:
    """ValueError when the local directory ``path`` holds pickled weights and no ``*.safetensors``
    (transformers would only say it found no model.safetensors); hub ids are left to
    ``use_safetensors=True``, which refuses a repository without them."""
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(f.name for pattern in PICKLED_WEIGHTS for f in folder.glob(pattern))
    if pickled:
        raise ValueError(
            f"{path} holds pickled weights only ({', '.join(pickled)}) and no .safetensors: refused, "
            "loading a pickle can run code; convert the checkpoint to safetensors (save_pretrained "
            "writes them) and load that"
        )


class VLMAdapter(ABC):
    """Shared implementation; subclasses fill in the family-specific hooks."""

    family: ClassVar[str]
    model_class: ClassVar[str]  # transformers class name, imported lazily
    cuda_dtype: ClassVar[str] = "float16"  # model.dtype auto on CUDA: how the family's checkpoints ship
    preshrink: bool = False  # a family with an OpenCV pre-shrink (preprocess.py) sets it; model.preshrink can veto
    # Profilers set this: on CUDA every timed model stage then waits for its kernels, so Meter.seconds
    # holds GPU time, not launch time (off by default: the wait costs the CPU/GPU overlap).
    sync_timings: bool = False

    def __init__(self, model: Any, processor: Any, config: ModelConfig):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.config = config
        # the family's OpenCV pre-shrink (preprocess.py) unless the config asks for the processor alone
        self.preshrink = type(self).preshrink and config.preshrink
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self._yes_ids = self._single_token_ids(("Yes", " Yes", "yes", " yes"))
        self._no_ids = self._single_token_ids(("No", " No", "no", " no"))
        if not self._yes_ids or not self._no_ids:
            raise ValueError("the tokenizer has no single-token 'Yes'/'No': existence scores are undefined")
        self._stop_ids = self._stop_token_ids()

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, cfg: ModelConfig) -> VLMAdapter:
        """Load model and processor with ``from_pretrained`` (local directory or hub id)."""
        import transformers

        device, dtype = resolve_device_dtype(cfg, cls.cuda_dtype)
        model_cls = getattr(transformers, cls.model_class)
        where = hub_kwargs(cfg)  # ValueError for a hub id without model.allow_download
        if is_hub_id(cfg.path) and not cfg.revision:
            LOG.warning("downloading %s at the hub's default branch: pin model.revision to a commit hash", cfg.path)
        check_safetensors_only(cfg.path)
        try:
            processor = transformers.AutoProcessor.from_pretrained(cfg.path, **where)
            # safetensors only: a pickled checkpoint (pytorch_model.bin) can run code while it loads
            model = model_cls.from_pretrained(
                cfg.path,
                dtype=dtype,
                attn_implementation=cfg.attn_implementation,
                use_safetensors=True,
                **where,
            )
        except ImportError as exc:  # e.g. flash_attention_2 requested but flash-attn missing
            raise RuntimeError(f"cannot load {cfg.path!r} with attention {cfg.attn_implementation!r}: {exc}") from exc
        model.to(device).eval()
        LOG.info(
            "loaded %s (%s) on %s as %s, attention %s", cfg.path, cls.family, device, dtype, cfg.attn_implementation
        )
        return cls(model, processor, cfg)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.get_text_config().num_hidden_layers)

    @property
    def name(self) -> str:
        return str(self.config.path)

    # ----------------------------------------------------------------- family hooks
    @abstractmethod
    def prefix_text(self) -> str:
        """Prompt text up to and including the image placeholder."""

    @abstractmethod
    def image_placeholder(self) -> str:
        """The text that stands for one image in a prompt."""

    def crop_question_text(self, question: str) -> str:
        """Text that adds a second image (a crop) and then asks ``question``: "global view + crop"."""
        return self.image_placeholder() + self.question_text(question)

    @abstractmethod
    def question_text(self, question: str) -> str:
        """Text after the image: the user's question and the assistant header."""

    @abstractmethod
    def text_prompt(self, user_text: str) -> str:
        """A text-only user turn followed by the assistant header."""

    def image_inputs(self, image: np.ndarray, text: str, add_special_tokens: bool) -> dict:
        """Processor inputs (input_ids, pixels, sizes) for ``text`` containing one image placeholder."""
        inputs = self.processor(
            images=np.ascontiguousarray(image[..., :3]),
            text=text,
            return_tensors="pt",
            add_special_tokens=add_special_tokens,
        )
        return dict(inputs)

    @abstractmethod
    def _grid(
        self, input_ids: torch.Tensor, inputs: dict, image_size: tuple[int, int]
    ) -> tuple[np.ndarray, GridMapping]:
        """Sequence positions of the visual grid tokens and their mapping to source pixels."""

    def existence_text(self, target: str) -> str:
        """The existence prompt (also the prompt whose values give the target's relevance)."""
        return self.question_text(f"Is there a {target} in the image? Answer the question using a single word.")

    # ----------------------------------------------------------------- model calls
    def _forward(self, input_ids: torch.Tensor, cache: Any, start: int, state: dict, vision: dict | None = None) -> Any:
        """Run the model on new tokens at sequence index ``start``; returns its outputs (``.cache``,
        ``.logits`` of the last token unless ``vision`` asks for ``logits_to_keep=0``)."""
        kwargs = dict(vision or {})
        kwargs.setdefault("logits_to_keep", 1)
        out = self.model(input_ids=input_ids.to(self.device), use_cache=True, **cache_kwargs(cache), **kwargs)
        if cache_keyword() != "cache":
            out.cache = output_cache(out)  # the adapters read ``.cache`` under either release's name
        return out

    @torch.inference_mode()
    def prefill_image(self, image: np.ndarray, meter: Meter | None = None) -> ImagePrefix:
        """Encode ``image`` (H x W x 3 uint8 RGB) and prefill the prompt up to the image tokens."""
        t0 = time.perf_counter()
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8 RGB, got shape {image.shape} dtype {image.dtype}")
        h, w = image.shape[:2]
        inputs = self.image_inputs(image, self.prefix_text(), add_special_tokens=True)
        t1 = self._timed(meter, "preprocess", t0)
        input_ids = inputs.pop("input_ids")
        inputs.pop("attention_mask", None)
        state = self._prefix_state(input_ids, inputs)
        cache = self._forward(input_ids, None, 0, state, vision=self._vision_kwargs(inputs, state, 0)).cache
        grid_positions, mapping = self._grid(input_ids, inputs, (w, h))
        if meter:
            meter.prefill(int(input_ids.shape[1]))
            self._timed(meter, "prefill", t1)
        return ImagePrefix(
            cache=cache,
            input_ids=input_ids,
            grid_positions=grid_positions,
            mapping=mapping,
            image_size=(w, h),
            state=state,
            seconds=time.perf_counter() - t0,
        )

    def _prefix_state(self, input_ids: torch.Tensor, inputs: dict) -> dict:
        return {}

    def _vision_kwargs(self, inputs: dict, state: dict, start: int) -> dict:
        """Keyword arguments that carry pixels into the model call."""
        return {
            k: (v.to(self.device, self.dtype) if k.startswith("pixel_values") else v.to(self.device))
            for k, v in inputs.items()
            if isinstance(v, torch.Tensor)
        }

    def _tokenize(self, text: str) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = torch.tensor([enc["input_ids"]], dtype=torch.long)
        return ids, [tuple(o) for o in enc["offset_mapping"]]

    @torch.inference_mode()
    def extend(
        self, prefix: ImagePrefix | Extension | None, text: str, meter: Meter | None = None, **model_kwargs: Any
    ) -> Extension:
        """Prefill ``text`` after a cached prefix (forked, never modified), or alone if ``prefix`` is None.

        ``model_kwargs`` go to the model call (e.g. ``logits_to_keep=0`` for every token's logits);
        the raw outputs are kept in ``Extension.outputs``."""
        t0 = time.perf_counter()
        ids, offsets = self._tokenize(text)
        if ids.shape[1] == 0:
            raise ValueError("nothing to extend with: empty text")
        if prefix is None:
            cache, start, state = None, 0, {}
        else:
            cache = fork_cache(prefix.cache)
            start = prefix.length if isinstance(prefix, ImagePrefix) else prefix.end
            state = dict(prefix.state)
        out = self._forward(ids, cache, start, state, vision=model_kwargs)
        if meter:
            meter.prefill(int(ids.shape[1]))
            self._timed(meter, "extend", t0)
        return Extension(
            cache=out.cache,
            logits=out.logits[0, -1].float(),
            input_ids=ids,
            start=start,
            offsets=offsets,
            text=text,
            state=state,
            outputs=out if model_kwargs else None,
        )

    @torch.inference_mode()
    def extend_with_image(
        self, prefix: ImagePrefix, image: np.ndarray, text: str, meter: Meter | None = None
    ) -> Extension:
        """Extend a cached prefix with a second image (e.g. a crop) and text: "global view + crop"."""
        t0 = time.perf_counter()
        inputs = self.image_inputs(image, text, add_special_tokens=False)
        t1 = self._timed(meter, "preprocess", t0)
        ids = inputs.pop("input_ids")
        inputs.pop("attention_mask", None)
        state = dict(prefix.state)
        start = prefix.length
        vision = self._extension_vision_kwargs(prefix, ids, inputs, state)
        out = self._forward(ids, fork_cache(prefix.cache), start, state, vision=vision)
        if meter:
            meter.prefill(int(ids.shape[1]))
            self._timed(meter, "extend", t1)
        return Extension(
            cache=out.cache,
            logits=out.logits[0, -1].float(),
            input_ids=ids,
            start=start,
            offsets=[],
            text=text,
            state=state,
        )

    def _extension_vision_kwargs(self, prefix: ImagePrefix, ids: torch.Tensor, inputs: dict, state: dict) -> dict:
        return self._vision_kwargs(inputs, state, prefix.length)

    # ----------------------------------------------------------------- batched existence prompts
    @torch.inference_mode()
    def existence_batch(self, images: list[np.ndarray], text: str, meter: Meter | None = None) -> CropBatch:
        """P(Yes) after ``text`` for each image shown alone, all images in ONE forward: the same
        numbers as :meth:`prefill_image` then :meth:`extend` one image at a time.

        Each row is the image's own prefix followed by ``text`` (tokenised apart, as :meth:`extend`
        does). Rows of different lengths (any-res tiles, dynamic resolution) are padded on the right,
        after the text, by repeating their last token: under the causal mask no real token sees a later
        one, so no attention mask is needed, positions start at 0 in every row as in a prefill of one
        image, a row's first P cached tokens are exactly its prefix's cache, and the logits are read at
        each row's own last token. Families with their own positions (Qwen2.5-VL's 3-D rope) fill
        them per row in :meth:`_batch_vision_kwargs`.

        The meter counts what one-at-a-time verification counts (per image: the prefix, then the
        text), so a question's passes and tokens do not depend on how its crops were batched."""
        if not images:
            raise ValueError("existence_batch needs at least one image")
        t0 = time.perf_counter()
        text_ids, _ = self._tokenize(text)
        if text_ids.shape[1] == 0:
            raise ValueError("nothing to extend with: empty text")
        samples, rows = [], []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"image must be HxWx3 uint8 RGB, got shape {image.shape} dtype {image.dtype}")
            inputs = self.image_inputs(image, self.prefix_text(), add_special_tokens=True)
            prefix_ids = inputs.pop("input_ids")
            inputs.pop("attention_mask", None)
            state = self._prefix_state(prefix_ids, inputs)
            samples.append(CropSample(prefix_ids, inputs, state, (int(image.shape[1]), int(image.shape[0]))))
            rows.append(torch.cat([prefix_ids, text_ids], dim=1))
        t1 = self._timed(meter, "preprocess", t0)
        lengths = [int(r.shape[1]) for r in rows]
        width = max(lengths)
        ids = torch.cat([torch.cat([r, r[:, -1:].expand(1, width - r.shape[1])], dim=1) for r in rows])
        vision = self._batch_vision_kwargs(samples, width)
        # Logits at every row's last real token: the distinct last positions, kept for all rows (a
        # 1-D logits_to_keep; per-row 2-D positions exist only from transformers 5.24 on), then each
        # row reads its own column. At most one column per crop, so the vocabulary-wide rows stay few.
        keep = sorted({n - 1 for n in lengths})
        vision["logits_to_keep"] = torch.tensor(keep, device=self.device)
        out = self._forward(ids, None, 0, {}, vision=vision)
        if meter:
            for sample in samples:
                meter.prefill(int(sample.prefix_ids.shape[1]))
                meter.prefill(int(text_ids.shape[1]))
            self._timed(meter, "prefill", t1)  # crop prefixes and their prompts: one forward
        column = {pos: j for j, pos in enumerate(keep)}
        confidences = [self.yes_probability(out.logits[i, column[n - 1]].float()) for i, n in enumerate(lengths)]
        return CropBatch(confidences=confidences, cache=out.cache, samples=samples)

    def _batch_vision_kwargs(self, samples: list[CropSample], width: int) -> dict:
        """The samples' processor inputs stacked along the batch: tensors concatenated on dim 0,
        shorter ones zero-padded in their other dims first (OneVision's tile count differs per image:
        the model reads only the tiles its ``image_sizes`` entry implies, as for the processor's own
        padded batches)."""
        stacked = {}
        for key, first in samples[0].inputs.items():
            if not isinstance(first, torch.Tensor):
                continue
            parts = [s.inputs[key] for s in samples]
            if first.dim() > 1:
                shape = [max(p.shape[d] for p in parts) for d in range(1, first.dim())]
                parts = [_zero_pad(p, shape) for p in parts]
            stacked[key] = torch.cat(parts, dim=0)
        return {
            k: (v.to(self.device, self.dtype) if k.startswith("pixel_values") else v.to(self.device))
            for k, v in stacked.items()
        }

    def batch_prefix(self, batch: CropBatch, index: int) -> ImagePrefix:
        """Image ``index``'s prefix sliced out of a batch's cache (copied, so the batch can go): the
        same cache a :meth:`prefill_image` of that image builds, with no model call."""
        sample = batch.samples[index]
        length = int(sample.prefix_ids.shape[1])
        cache = fork_cache(batch.cache)
        for layer in cache.layers:
            layer.keys = layer.keys[index : index + 1, :, :length].clone()
            layer.values = layer.values[index : index + 1, :, :length].clone()
        grid_positions, mapping = self._grid(sample.prefix_ids, sample.inputs, sample.image_size)
        return ImagePrefix(
            cache=cache,
            input_ids=sample.prefix_ids,
            grid_positions=grid_positions,
            mapping=mapping,
            image_size=sample.image_size,
            state=dict(sample.state),
        )

    def yes_probability(self, logits: torch.Tensor) -> float:
        """softmax(logit_Yes, logit_No)[Yes], each the best of its single-token spellings."""
        yes = logits[self._yes_ids].max()
        no = logits[self._no_ids].max()
        return float(torch.sigmoid(yes - no))

    @torch.inference_mode()
    def decode(self, ext: Extension, max_new_tokens: int, meter: Meter | None = None) -> str:
        """Greedy continuation after an extension (which it consumes)."""
        t0 = time.perf_counter()
        tokens: list[int] = []
        logits, cache, pos = ext.logits, ext.cache, ext.end
        for _ in range(max_new_tokens):
            tok = int(torch.argmax(logits))
            if tok in self._stop_ids:
                break
            tokens.append(tok)
            out = self._forward(torch.tensor([[tok]]), cache, pos, ext.state)
            logits, cache = out.logits[0, -1].float(), out.cache
            pos += 1
        if meter:
            meter.generated_tokens += len(tokens)
            self._timed(meter, "generate", t0)
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def _timed(self, meter: Meter | None, stage: str, since: float) -> float:
        """Charge the time since ``since`` to ``stage`` on ``meter`` (after the kernels, with
        ``sync_timings`` on CUDA); returns now."""
        if meter is None:
            return time.perf_counter()
        if self.sync_timings and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return meter.lap(stage, since)

    def values(self, cache: Any, layers: list[int]) -> list[torch.Tensor]:
        """Cached value vectors [kv_heads, seq, head_dim] of the given layers (batch element 0)."""
        return [cache.layers[i].values[0] for i in layers]

    def token_span(self, ext: Extension, phrase: str) -> list[int]:
        """Sequence positions of the tokens of ``phrase`` inside an extension's text."""
        at = ext.text.rfind(phrase)
        if at < 0:
            raise ValueError(f"{phrase!r} not in {ext.text!r}")
        lo, hi = at, at + len(phrase)
        return [ext.start + i for i, (a, b) in enumerate(ext.offsets) if b > lo and a < hi and b > a]

    # ----------------------------------------------------------------- helpers
    def _single_token_ids(self, spellings: tuple[str, ...]) -> list[int]:
        ids = []
        for s in spellings:
            enc = self.tokenizer(s, add_special_tokens=False)["input_ids"]
            if len(enc) == 1 and enc[0] not in ids:
                ids.append(enc[0])
        return ids

    def _stop_token_ids(self) -> set[int]:
        stop = set()
        for tok in (self.tokenizer.eos_token, "<|im_end|>", "<|endoftext|>", "</s>"):
            if tok and tok in self.tokenizer.get_vocab():
                stop.add(self.tokenizer.convert_tokens_to_ids(tok))
        eos = (
            getattr(self.model.generation_config, "eos_token_id", None)
            if hasattr(self.model, "generation_config")
            else None
        )
        for e in eos if isinstance(eos, list) else [eos]:
            if isinstance(e, int):
                stop.add(e)
        return stop

    def release(self) -> None:
        """Drop the model and free accelerator memory."""
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _zero_pad(tensor: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """``tensor`` zero-padded at the end of every dim but the first up to ``shape`` (those dims)."""
    if list(tensor.shape[1:]) == shape:
        return tensor
    out = tensor.new_zeros((tensor.shape[0], *shape))
    out[tuple(slice(0, n) for n in tensor.shape)] = tensor
    return out


def image_token_positions(input_ids: torch.Tensor, token_id: int) -> np.ndarray:
    """Indices of ``token_id`` in a [1, L] id tensor."""
    return torch.nonzero(input_ids[0] == token_id).flatten().cpu().numpy()


def image_token_id(config: Any) -> int:
    """The image placeholder id (``image_token_id`` in transformers 5, ``image_token_index`` before)."""
    value = getattr(config, "image_token_id", None)
    return int(value if value is not None else config.image_token_index)
