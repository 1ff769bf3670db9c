"""The embedded model itself: a plain ``LlavaForConditionalGeneration`` (CLIP vision tower, Llama
language model, a BPE tokenizer and a ``LlavaProcessor``) built from a :class:`ModelShape`, the
surgery some recipes do on its attention heads, and the stage-1 dense heads that train the tower.

The saved model loads through the same adapter as a real LLaVA-1.5 checkpoint (``from_pretrained``);
nothing here is needed at run time. FOCUS itself is never trained: no loss touches value vectors,
attention weights or relevance maps.
"""

from __future__ import annotations

import torch

from ..core.methods.settings import AttentionCropConfig, ZoomConfig
from ..core.methods.zoom import GLOBAL_PROMPTS, LOCAL_PROMPTS, ZOOM_PROMPTS
from ..core.targets import ANSWER_LEAD
from ..eval.scenes import COLORS, SHAPES, TEMPLATES
from .miniatures import LLAVA_CHAT_TEMPLATE, train_tokenizer
from .recipe import ModelShape

COLOR_CLASSES = ("none",) + tuple(COLORS)  # per-patch colour labels; 0 = background
SHAPE_CLASSES = ("none",) + tuple(SHAPES)  # per-patch shape labels; 0 = background
# the baselines' own wording (method_prompts), read once from their settings' defaults
DECOMPOSED_QUESTION = ZoomConfig().decomposed_question
VICROP_INSTRUCTION = AttentionCropConfig().instruction


DEFAULT_SHAPE = ModelShape()  # frozen: one shared default instance is safe


def _method_prompt_lines() -> list[str]:
    """The baselines' prompts with the vocabulary filled in (ZoomEye's three Yes/No questions in
    its three phrasings, its per-target question, ViCrop's instruction)."""
    lines = []
    for c in COLORS:
        target = f"{c} object"
        question = TEMPLATES["shape"].format(color=c)
        for prompts in (LOCAL_PROMPTS, GLOBAL_PROMPTS, ZOOM_PROMPTS):
            lines += [
                prompts["existence"].format(target) + " ASSISTANT: Yes",
                prompts["latent"].format(target) + " ASSISTANT: No",
                prompts["answering"].format(question) + " ASSISTANT: Yes",
            ]
        lines += [
            DECOMPOSED_QUESTION.format(target) + " ASSISTANT: star",
            f"{question} {VICROP_INSTRUCTION} ASSISTANT: circle",
        ]
    return lines


def _task_corpus(method_prompts: bool = False) -> list[str]:
    """Texts of every prompt and answer the model is trained on (so BPE gives the vocabulary
    words single tokens); with ``method_prompts`` the baselines' prompts too."""
    lines = _method_prompt_lines() if method_prompts else []
    for c in COLORS:
        for s in SHAPES:
            lines += [
                TEMPLATES["shape"].format(color=c) + f" ASSISTANT: {s}",
                TEMPLATES["exists"].format(color=c) + " ASSISTANT: Yes",
                TEMPLATES["color"].format(shape=s) + f" ASSISTANT: {c}",
                f"Is there a {s} in the image? Answer the question using a single word. ASSISTANT: No",
                f"{ANSWER_LEAD} {c} object and {s}. none none none",
            ]
    lines += [" ".join(str(i) for i in range(10))] * 20 + ["none nothing none"] * 20
    return lines


def build_image_processor(shape: ModelShape = DEFAULT_SHAPE):
    """The CLIP image processor of the embedded model (resize + centre crop to ``shape.image_size``)."""
    import transformers

    return transformers.CLIPImageProcessor(
        size={"shortest_edge": shape.image_size},
        crop_size={"height": shape.image_size, "width": shape.image_size},
        do_resize=True,
        do_center_crop=True,
        do_rescale=True,
        do_normalize=True,
        do_convert_rgb=True,
        resample=3,
    )


def build_processor_and_tokenizer(shape: ModelShape = DEFAULT_SHAPE, method_prompts: bool = False):
    """The embedded model's ``LlavaProcessor`` (CLIP image processor at ``shape.image_size``); its
    tokenizer learns the baselines' prompts too with ``method_prompts`` (TrainConfig)."""
    import transformers

    tokenizer = train_tokenizer("llava", extra_corpus=_task_corpus(method_prompts))
    words = [" " + w for w in (*COLORS, *SHAPES, "none", "left", "right", "object", "Yes", "No")]
    split = [w for w in words if len(tokenizer.encode(w, add_special_tokens=False)) != 1]
    if split:
        raise RuntimeError(f"tokenizer splits vocabulary words {split}")
    processor = transformers.LlavaProcessor(
        image_processor=build_image_processor(shape),
        tokenizer=tokenizer,
        patch_size=shape.patch_size,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    return processor, tokenizer


def build_model(tokenizer, shape: ModelShape, seed: int):
    """A freshly initialised ``LlavaForConditionalGeneration`` of ``shape`` (float32)."""
    import transformers

    vision = transformers.CLIPVisionConfig(
        image_size=shape.image_size,
        patch_size=shape.patch_size,
        hidden_size=shape.vision_hidden,
        intermediate_size=4 * shape.vision_hidden,
        num_hidden_layers=shape.vision_layers,
        num_attention_heads=shape.vision_heads,
        projection_dim=shape.vision_hidden,
    )
    text = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.text_hidden,
        intermediate_size=shape.text_mlp,
        num_hidden_layers=shape.text_layers,
        num_attention_heads=shape.text_heads,
        num_key_value_heads=shape.text_heads,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=False,
    )
    config = transformers.LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=shape.grid**2,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.LlavaForConditionalGeneration(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def head_dim_of(text_config) -> int:
    return getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads


def grow_heads(model, n: int, seed: int) -> None:
    """Append ``n`` attention heads to every LM layer (query/key/value rows drawn like a fresh
    Llama's, output-projection columns zero): the model computes exactly what it did before, and
    the new heads are capacity for a task the trained heads cannot take on without losing the
    ones they serve (docs/embedded-model.md: existence vs shape in 4 heads)."""
    text = model.config.text_config
    if text.hidden_size % (text.num_attention_heads + n):
        # transformers' LlamaConfig validation refuses such a config when the model is loaded again
        raise ValueError(f"{text.num_attention_heads} + {n} heads do not divide hidden size {text.hidden_size}")
    head_dim, extra = head_dim_of(text), n * head_dim_of(text)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            attn = layer.self_attn
            for name in ("q_proj", "k_proj", "v_proj"):
                old = getattr(attn, name)
                new = torch.nn.Linear(old.in_features, old.out_features + extra, bias=old.bias is not None)
                new.weight[: old.out_features] = old.weight
                new.weight[old.out_features :] = (
                    torch.randn(extra, old.in_features, generator=gen) * text.initializer_range
                )
                if old.bias is not None:
                    new.bias.zero_()
                    new.bias[: old.out_features] = old.bias
                setattr(attn, name, new.to(old.weight))
            old = attn.o_proj
            new = torch.nn.Linear(old.in_features + extra, old.out_features, bias=old.bias is not None)
            new.weight.zero_()
            new.weight[:, : old.in_features] = old.weight
            if old.bias is not None:
                new.bias[:] = old.bias
            attn.o_proj = new.to(old.weight)
    text.head_dim = head_dim
    text.num_attention_heads += n
    text.num_key_value_heads += n


def init_matching_attention(model, gain: float, max_distance: int, seed: int, heads: int = 0, first: int = 0) -> None:
    """Give ``heads`` heads of LM layer 0 from head ``first`` on (0: every head) the same query and key
    projection onto the rotary dimensions that turn by less than half a radian over
    ``max_distance`` tokens (random orthonormal rows, scaled by ``gain``): a token then attends to
    the earlier tokens whose embedding matches its own, wherever they are. An initialisation (an
    induction-style prior); training moves it freely. The other heads keep their random start."""
    text = model.config.text_config
    head_dim = head_dim_of(text)
    theta = float((getattr(text, "rope_parameters", None) or {}).get("rope_theta", 10000.0))
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    slow = [int(i) for i in torch.nonzero(inv_freq * max_distance < 0.5).flatten()]
    if not slow:
        raise ValueError(f"no rotary dimension is slow over {max_distance} tokens (theta {theta})")
    dims = slow + [i + head_dim // 2 for i in slow]  # rotate_half pairs i with i + d/2
    attn = model.model.language_model.layers[0].self_attn
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for h in range(first, first + (heads or text.num_attention_heads - first)):
            rows = torch.linalg.qr(torch.randn(text.hidden_size, len(dims), generator=gen))[0].T * gain
            idx = [h * head_dim + d for d in dims]
            attn.q_proj.weight[idx] = rows.to(attn.q_proj.weight)
            attn.k_proj.weight[idx] = rows.to(attn.k_proj.weight)


def release_matching_heads(model, random_start, n: int) -> None:
    """Give the last ``n`` heads of LM layer 0 the query and key projections of ``random_start``
    (the same architecture freshly built with the recipe's seed): heads that carried the matching
    initialisation through the symbolic stage become free for the tasks that need other patterns
    (shape reading was at chance after the symbolic stage while every head matched)."""
    attn = model.model.language_model.layers[0].self_attn
    fresh = random_start.model.language_model.layers[0].self_attn
    text = model.config.text_config
    head_dim = head_dim_of(text)
    rows = slice((text.num_attention_heads - n) * head_dim, text.num_attention_heads * head_dim)
    with torch.no_grad():
        attn.q_proj.weight[rows] = fresh.q_proj.weight[rows].to(attn.q_proj.weight)
        attn.k_proj.weight[rows] = fresh.k_proj.weight[rows].to(attn.k_proj.weight)


def parts(model) -> dict[str, torch.nn.Module]:
    """The model's trainable parts by role (transformers 5 layout)."""
    inner = model.model
    return {
        "vision": inner.vision_tower,
        "projector": inner.multi_modal_projector,
        "embed": inner.language_model.embed_tokens,
        "lm": inner.language_model,
        "head": model.lm_head,
    }


def vision_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Patch features the projector reads (``vision_feature_layer=-1``, CLS dropped): [B, N, C]."""
    out = model.model.vision_tower(pixel_values, output_hidden_states=True)
    return out.hidden_states[-1][:, 1:]


class Heads(torch.nn.Module):
    """Stage-1 dense heads on the vision tower (not part of the saved model)."""

    def __init__(self, width: int):
        super().__init__()
        self.color = torch.nn.Linear(width, len(COLOR_CLASSES))
        self.shape = torch.nn.Linear(width, len(SHAPE_CLASSES))


def word_ids(tokenizer) -> tuple[list[int], list[int]]:
    """Token ids of ' none' + the colour words, and of the shape words (leading space: how they
    appear inside prompts)."""
    enc = lambda w: tokenizer.encode(" " + w, add_special_tokens=False)[0]  # noqa: E731
    return [enc(c) for c in COLOR_CLASSES], [enc(s) for s in SHAPES]


def layer0_attention(model, x: torch.Tensor) -> torch.Tensor:
    """LM layer 0's causal attention weights [heads, L, L] for input embeddings ``x`` [1, L, D],
    computed from its query/key projections and rotary embedding (the model is never asked for
    attention weights: only the attention-crop baseline does that)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    lm = model.model.language_model
    attn, length = lm.layers[0].self_attn, x.shape[1]
    head_dim = head_dim_of(model.config.text_config)
    h = lm.layers[0].input_layernorm(x)
    q = attn.q_proj(h).view(1, length, -1, head_dim).transpose(1, 2)
    k = attn.k_proj(h).view(1, length, -1, head_dim).transpose(1, 2)
    cos, sin = lm.rotary_emb(h, torch.arange(length, device=x.device)[None])
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    scores = (q @ k.transpose(-1, -2)) * head_dim**-0.5
    causal = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
    return scores.masked_fill(causal, float("-inf")).softmax(-1)[0]


__all__ = [
    "COLOR_CLASSES",
    "SHAPE_CLASSES",
    "DECOMPOSED_QUESTION",
    "VICROP_INSTRUCTION",
    "build_image_processor",
    "build_processor_and_tokenizer",
    "build_model",
    "grow_heads",
    "init_matching_attention",
    "release_matching_heads",
    "parts",
    "vision_features",
    "Heads",
    "word_ids",
    "layer0_attention",
]
