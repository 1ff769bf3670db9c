"""Gates of the embedded model, measured through the same adapter FOCUS uses at run time.

On scenes of a held-out seed (never drawn in training, benchmark-sized frames):

* existence prompt on crops (present / absent balanced; absent colours preferably ones that are
  elsewhere in the frame) and on full frames;
* the shape question on crops where the target spans 1/8 .. 1/2 of the crop side, centred and
  off-centre (the windows cropping methods propose);
* relevance pointing: is the argmax cell of the target's FOCUS relevance map on the true box,
  per layer range, next to the random-object baseline (the same cell scored against a randomly
  chosen object of the frame).

Besides, the training's own gates and diagnostics: the vision tower's shape reading on the shape
gate's windows (:func:`vision_shape_reads`) and where LM layer 0's attention of a colour word lands
(:func:`matching_attention_share`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.geometry import Box, crop
from ..core.relevance import layer_indices, relevance_from_values
from ..eval.bench import normalise_answer
from ..eval.scenes import COLORS, TEMPLATES, Scene, SceneObject, SceneSpec, make_scene
from .data import SceneSamples, Sequencer, collate, existence_prompt, object_masks, view_objects
from .model import (
    COLOR_CLASSES,
    SHAPE_CLASSES,
    Heads,
    build_processor_and_tokenizer,
    layer0_attention,
    vision_features,
    word_ids,
)
from .recipe import ModelShape, StageConfig, TrainConfig

SCALES = (1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2)  # target side / crop side
SETTINGS_FILE = "focus_settings.json"  # per-model search settings the tools read
SHAPE_GATE_SCENES = 100  # held-out scenes of the shape gate (scripts/eval_embedded_model.py --scenes default)
GATE_SCENES = 60  # held-out scenes of the vision and alignment stages' per-patch gates


@dataclass
class Gate:
    name: str
    value: float
    n: int
    threshold: str = ""

    def row(self) -> str:
        return f"| {self.name} | {self.value:.3f} | {self.n} | {self.threshold} |"


DEFAULT_SPEC = SceneSpec()  # frozen: one shared default instance is safe


def heldout_scenes(seed: int, n: int, spec: SceneSpec = DEFAULT_SPEC) -> list[Scene]:
    return [make_scene(seed, i, spec) for i in range(n)]


def unique_scene(scene: Scene):
    counts: dict[str, int] = {}
    for o in scene.objects:
        counts[o.color] = counts.get(o.color, 0) + 1
    return [o for o in scene.objects if counts[o.color] == 1], counts


def window(obj_box, frac: float, offset: str, rng: np.random.Generator, w: int, h: int) -> Box:
    """A square window whose side is the object's size / ``frac``; the object centred, or at a
    random position that keeps it inside."""
    x0, y0, x1, y1 = obj_box
    size = max(x1 - x0, y1 - y0)
    side = min(size / frac, w, h)
    if offset == "centred":
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        bx = min(max(cx - side / 2, 0), w - side)
        by = min(max(cy - side / 2, 0), h - side)
    else:
        lo_x, hi_x = max(0, x1 - side), min(x0, w - side)
        lo_y, hi_y = max(0, y1 - side), min(y0, h - side)
        bx = rng.uniform(lo_x, hi_x) if hi_x > lo_x else max(0, min(w - side, x0))
        by = rng.uniform(lo_y, hi_y) if hi_y > lo_y else max(0, min(h - side, y0))
    return Box(bx, by, bx + side, by + side)


def _colors_in(scene: Scene, box: Box) -> set[str]:
    return {
        o.color
        for o in scene.objects
        if min(o.box[2], box.x1) > max(o.box[0], box.x0) and min(o.box[3], box.y1) > max(o.box[1], box.y0)
    }


def existence_gate(adapter, scenes: Sequence[Scene], seed: int = 0) -> dict[str, Gate]:
    """Balanced present/absent existence on crops (target 1/8..1/2 of the crop) and on frames."""
    rng = np.random.default_rng(seed)
    crops_ok, frames_ok = [], []
    for scene in scenes:
        unique, counts = unique_scene(scene)
        o = unique[int(rng.integers(len(unique)))]
        frac = float(rng.choice(SCALES))
        box = window(o.box, frac, "offset" if rng.random() < 0.5 else "centred", rng, scene.width, scene.height)
        inside = _colors_in(scene, box)
        absent = [c for c in COLORS if c not in inside]
        elsewhere = [c for c in absent if c in counts]
        neg = str(rng.choice(elsewhere if elsewhere else absent))
        prefix = adapter.prefill_image(crop(scene.image, box))
        for color, want in ((o.color, True), (neg, False)):
            ext = adapter.extend(prefix, adapter.existence_text(f"{color} object"))
            crops_ok.append((adapter.yes_probability(ext.logits) > 0.5) == want)
        frame = adapter.prefill_image(scene.image)
        frame_neg = [c for c in COLORS if c not in counts]
        for color, want in ((o.color, True), (str(rng.choice(frame_neg)), False)):
            ext = adapter.extend(frame, adapter.existence_text(f"{color} object"))
            frames_ok.append((adapter.yes_probability(ext.logits) > 0.5) == want)
    return {
        "exists_crops": Gate("existence on crops (balanced)", float(np.mean(crops_ok)), len(crops_ok), ">= 0.90"),
        "exists_frames": Gate(
            "existence on full frames (balanced)", float(np.mean(frames_ok)), len(frames_ok), "(reported)"
        ),
    }


def answer(adapter, image: np.ndarray, question: str, max_new_tokens: int = 4) -> str:
    prefix = adapter.prefill_image(image)
    return adapter.decode(adapter.extend(prefix, adapter.question_text(question)), max_new_tokens)


def shape_windows(scenes: Sequence[Scene], seed: int = 0) -> Iterator[tuple[Scene, SceneObject, str, str, Box]]:
    """The shape gate's windows: per scene one object of a unique colour, then for every scale a
    centred and an off-centre window; yields (scene, object, scale "1/k", offset, window)."""
    rng = np.random.default_rng(seed + 1)
    for scene in scenes:
        unique, _ = unique_scene(scene)
        o = unique[int(rng.integers(len(unique)))]
        for frac in SCALES:
            for offset in ("centred", "offset"):
                yield (
                    scene,
                    o,
                    f"1/{round(1 / frac)}",
                    offset,
                    window(o.box, frac, offset, rng, scene.width, scene.height),
                )


def shape_answers(adapter, scenes: Sequence[Scene], seed: int = 0) -> tuple[list[tuple[str, str, bool]], list[bool]]:
    """The shape question on every window of :func:`shape_windows`: ([(scale, offset, right)] in
    window order, [right on the full frame] per scene)."""
    windows, frames = [], []
    last = None
    for scene, o, scale, offset, box in shape_windows(scenes, seed):
        q = TEMPLATES["shape"].format(color=o.color)
        windows.append(
            (scale, offset, normalise_answer(answer(adapter, crop(scene.image, box), q), "shape") == o.shape)
        )
        if scene is not last:
            last = scene
            frames.append(normalise_answer(answer(adapter, scene.image, q), "shape") == o.shape)
    return windows, frames


def shape_gate(adapter, scenes: Sequence[Scene], seed: int = 0) -> dict[str, Gate]:
    """Shape question on windows at every scale a cropping method proposes, centred and off-centre."""
    return shape_gate_from(shape_answers(adapter, scenes, seed))


def shape_gate_from(answers: tuple[list[tuple[str, str, bool]], list[bool]]) -> dict[str, Gate]:
    """The shape gates, per scale and in all, of :func:`shape_answers`' output (computed once when
    the answers are also compared with the vision tower's reading)."""
    per: dict[str, list[bool]] = {}
    windows, frames = answers
    for scale, offset, ok in windows:
        per.setdefault(f"{scale} {offset}", []).append(ok)
        per.setdefault(scale, []).append(ok)
    out = {
        f"shape_{k}": Gate(
            f"shape on crops, target {k} of the side", float(np.mean(v)), len(v), ">= 0.90" if " " not in k else ""
        )
        for k, v in per.items()
    }
    allv = [x for k, v in per.items() if " " in k for x in v]
    out["shape_crops"] = Gate("shape on crops, all scales", float(np.mean(allv)), len(allv), ">= 0.90")
    out["shape_frames"] = Gate("shape on full frames (vanilla view)", float(np.mean(frames)), len(frames), "(reported)")
    return out


def _cell_hits(mapping, cell: tuple[int, int], boxes) -> list[bool]:
    b = mapping.cell_box(cell[0], cell[1], cell[0] + 1, cell[1] + 1)
    return [min(b.x1, g[2]) > max(b.x0, g[0]) and min(b.y1, g[3]) > max(b.y0, g[1]) for g in boxes]


def pointing(
    adapter, scenes: Sequence[Scene], ranges: dict[str, tuple[float, float]], seed: int = 0
) -> dict[str, Gate]:
    """Argmax of the FOCUS relevance map (target "<colour> object", existence prompt on the cached
    frame prefix, as FOCUS computes it) on the true box, per layer range; and the random-object
    baseline for the same cells."""
    rng = np.random.default_rng(seed + 2)
    hits: dict[str, list[bool]] = {k: [] for k in ranges}
    base: dict[str, list[float]] = {k: [] for k in ranges}
    for scene in scenes:
        unique, _ = unique_scene(scene)
        o = unique[int(rng.integers(len(unique)))]
        prefix = adapter.prefill_image(scene.image)
        phrase = f"{o.color} object"
        ext = adapter.extend(prefix, adapter.existence_text(phrase))
        target_pos = adapter.token_span(ext, phrase)
        image_pos = torch.as_tensor(prefix.grid_positions.reshape(-1), dtype=torch.long)
        for name, (lo, hi) in ranges.items():
            layers = layer_indices(adapter.num_layers, lo, hi)
            rel = relevance_from_values(adapter.values(ext.cache, layers), target_pos, image_pos)
            rel = rel.reshape(prefix.grid_positions.shape)
            cell = np.unravel_index(int(np.argmax(rel)), rel.shape)
            hits[name].append(_cell_hits(prefix.mapping, cell, [o.box])[0])
            base[name].append(float(np.mean(_cell_hits(prefix.mapping, cell, [x.box for x in scene.objects]))))
    out = {}
    for name in ranges:
        out[f"pointing_{name}"] = Gate(
            f"pointing, layers {name}", float(np.mean(hits[name])), len(hits[name]), ">= 2 x random object"
        )
        out[f"random_{name}"] = Gate(
            f"random-object baseline, layers {name}", float(np.mean(base[name])), len(base[name]), ""
        )
    return out


def layer_ranges(num_layers: int) -> dict[str, tuple[float, float]]:
    """Every single layer, the early prefixes, all layers and the later half (as fractions)."""
    out = {}
    for i in range(num_layers):
        out[f"{i}"] = (i / num_layers, (i + 1) / num_layers)
    for j in range(2, num_layers + 1):
        out[f"0-{j - 1}"] = (0.0, j / num_layers)
    out[f"{num_layers // 2}-{num_layers - 1}"] = (0.5, 1.0)
    return out


def format_gates(gates: dict[str, Gate]) -> str:
    lines = ["| gate | value | n | required |", "|---|--:|--:|---|"]
    lines += [g.row() for g in gates.values()]
    return "\n".join(lines)


@torch.no_grad()
def vision_shape_reads(
    model, heads: Heads, image_processor, shape: ModelShape, scenes: Sequence[Scene], device
) -> list[tuple[str, bool]]:
    """The vision tower's own reading of the shape gate's windows (:func:`shape_windows`, in
    their order): (scale, whether the stage-1 shape head's majority over the target's patches names
    its shape). Next to the LM's answers on the same windows (:func:`shape_answers`) it says
    whether a shape the LM misses was in the image tokens at all."""
    reads = []
    for scene, obj, scale, _, box in shape_windows(scenes):
        image = crop(scene.image, box)
        region = (int(box.x0), int(box.y0), int(box.x0) + image.shape[1], int(box.y0) + image.shape[0])
        mine = [v for v in view_objects(scene, region, shape.image_size) if v.obj is obj]
        pixels = image_processor(images=np.ascontiguousarray(image), return_tensors="pt")["pixel_values"]
        pred = heads.shape(vision_features(model, pixels.to(device)))[0].argmax(-1).cpu().numpy()
        ok = False
        for _, mask in object_masks(mine, shape.grid, shape.patch_size):
            votes = np.bincount(pred[mask.flatten()], minlength=len(SHAPE_CLASSES))
            votes[0] = 0  # background votes say nothing about the shape
            ok = bool(votes.max() > 0 and SHAPE_CLASSES[int(votes.argmax())] == obj.shape)
        reads.append((scale, ok))
    return reads


def vision_shape_by_scale(
    model, heads: Heads, image_processor, shape: ModelShape, scenes: Sequence[Scene], device
) -> dict[str, float]:
    """:func:`vision_shape_reads` as an accuracy per scale ("1/8" .. "1/2")."""
    hits: dict[str, list[bool]] = {}
    for scale, ok in vision_shape_reads(model, heads, image_processor, shape, scenes, device):
        hits.setdefault(scale, []).append(ok)
    return {k: round(float(np.mean(v)), 4) for k, v in hits.items()}


@torch.no_grad()
def matching_attention_share(model, cfg: TrainConfig, scenes: int = 12) -> dict[str, np.ndarray]:
    """Per head of LM layer 0: the share of the asked colour word's attention that lands on the
    image slots holding that colour, in FOCUS's existence prompt on crops of held-out scenes; with
    the slots holding the patch labels' word embeddings ("symbolic", what perfect alignment gives)
    and the projected vision features ("real"). A diagnostic of why existence does or does not
    carry over from symbolic to real views (docs/embedded-model.md); it trains nothing."""
    _, tok = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
    seq = Sequencer(tok, cfg.shape.grid**2)
    colour_words, _ = word_ids(tok)
    words = torch.tensor(colour_words)
    lm = model.model.language_model
    stage = StageConfig("tune-crops", steps=1, lr=0.0, scenes_per_step=1, crops_per_scene=6, frames=False)
    data = SceneSamples(cfg, stage, cfg.heldout_seed, scenes, ("exists",))
    shares: dict[str, list[np.ndarray]] = {"symbolic": [], "real": []}
    for i in range(scenes):
        batch = collate([data[i]])
        feats = model.model.multi_modal_projector(vision_features(model, batch["pixels"]))
        for v in range(batch["pixels"].shape[0]):
            labels = batch["color"][v].flatten()
            for c in sorted(set(int(k) for k in labels) - {0}):
                ids = torch.tensor([seq.image_qa(existence_prompt(f"{COLOR_CLASSES[c]} object"), "Yes")[0]])
                slots = torch.nonzero(ids[0] == seq.image_id).flatten()
                word = int(torch.nonzero(ids[0] == words[c]).flatten()[0])
                for kind in shares:
                    x = lm.embed_tokens(ids).clone()
                    x[0, slots] = lm.embed_tokens.weight[words[labels]] if kind == "symbolic" else feats[v]
                    att = layer0_attention(model, x)
                    shares[kind].append(att[:, word, slots[labels == c]].sum(-1).float().numpy())
    return {k: np.mean(v, axis=0) for k, v in shares.items()}


__all__ = [
    "Gate",
    "heldout_scenes",
    "existence_gate",
    "shape_gate",
    "shape_gate_from",
    "pointing",
    "layer_ranges",
    "format_gates",
    "SCALES",
    "window",
    "SETTINGS_FILE",
    "SHAPE_GATE_SCENES",
    "GATE_SCENES",
    "vision_shape_reads",
    "vision_shape_by_scale",
    "matching_attention_share",
]
