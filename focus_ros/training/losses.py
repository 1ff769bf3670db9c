"""The embedded model's losses, one per kind of stage: per-patch colour and shape of the vision
tower (``vision``), projected patches pointing at their colour word (``align``), answer tokens of
the language model (the tuning stages) and existence on symbolic label maps (``exist-symbolic``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.models.cache_names import cache_kwargs, output_cache
from .data import IGNORE, Sequencer, symbolic_questions
from .model import COLOR_CLASSES, SHAPE_CLASSES, Heads, vision_features

BACKGROUND_WEIGHT = 0.2  # background patches outnumber object patches ~50:1


def _class_weights(n: int, device) -> torch.Tensor:
    w = torch.ones(n, device=device)
    w[0] = BACKGROUND_WEIGHT
    return w


def vision_loss(model, heads: Heads, batch: dict, device, object_cap: int = 0) -> tuple[torch.Tensor, dict]:
    """Per-patch colour and shape cross-entropy of the stage-1 heads (background weighted 0.2).
    With ``object_cap`` > 0 an object's patches weigh ``min(1, object_cap / its patches)`` each, so
    no object counts for more than ``object_cap`` patches: with 4, a 2 x 2-patch object weighs as
    much as an 8 x 8 one instead of 1/16 of it (TrainConfig.vision_object_cap)."""
    feats = vision_features(model, batch["pixels"].to(device))
    color, shape = batch["color"].to(device).flatten(1), batch["shape"].to(device).flatten(1)
    lc, ls = heads.color(feats).float(), heads.shape(feats).float()  # losses in float32 under autocast
    if object_cap > 0:
        cells = batch["cells"].to(device).flatten().float()
        w = torch.where(
            cells > 0, (object_cap / cells.clamp(min=1.0)).clamp(max=1.0), torch.full_like(cells, BACKGROUND_WEIGHT)
        )
        per_c = F.cross_entropy(lc.flatten(0, 1), color.flatten(), reduction="none")
        per_s = F.cross_entropy(ls.flatten(0, 1), shape.flatten(), ignore_index=IGNORE, reduction="none")
        ws = w * (shape.flatten() != IGNORE)
        loss_c = (per_c * w).sum() / w.sum()
        loss_s = (per_s * ws).sum() / ws.sum().clamp(min=1e-9)
    else:
        loss_c = F.cross_entropy(lc.flatten(0, 1), color.flatten(), weight=_class_weights(len(COLOR_CLASSES), device))
        loss_s = F.cross_entropy(
            ls.flatten(0, 1), shape.flatten(), weight=_class_weights(len(SHAPE_CLASSES), device), ignore_index=IGNORE
        )
    with torch.no_grad():
        obj = color > 0
        acc_c = (lc.argmax(-1) == color)[obj].float().mean().item() if obj.any() else float("nan")
        sm = shape > 0
        acc_s = (ls.argmax(-1) == shape)[sm].float().mean().item() if sm.any() else float("nan")
    return loss_c + loss_s, {"color_acc": acc_c, "shape_acc": acc_s}


def align_loss(
    model, batch: dict, color_words: list[int], shape_words: list[int], legible_shape: bool, device
) -> tuple[torch.Tensor, dict]:
    """Projected patches point at their colour word's embedding (background: ' none'), with the
    shape word as a secondary target on legible objects; cosine logits over the whole vocabulary
    plus a pull to the word vector's norm so image tokens enter the LM at the scale of words."""
    with torch.no_grad():
        feats = vision_features(model, batch["pixels"].to(device))
    proj = model.model.multi_modal_projector(feats)  # [B, N, D]
    emb = model.model.language_model.embed_tokens.weight  # frozen
    cos = (F.normalize(proj, dim=-1) @ F.normalize(emb, dim=-1).T).float() * 20.0  # [B, N, V]
    color = batch["color"].to(device).flatten(1)
    shape = batch["shape"].to(device).flatten(1)
    cw = torch.tensor(color_words, device=device)
    sw = torch.tensor([0] + shape_words, device=device)
    # cross-entropy against the soft target (colour word 1.0, or 0.7 colour + 0.3 shape word),
    # gathered instead of multiplying by a dense [B, N, V] target: the same sum, without two
    # vocabulary-wide tensors per patch
    logp = F.log_softmax(cos, -1)
    lp_color = logp.gather(-1, cw[color].unsqueeze(-1)).squeeze(-1)
    ce = -lp_color
    if legible_shape:
        has_shape = (shape > 0) & (color > 0)
        lp_shape = logp.gather(-1, sw[shape.clamp_min(0)].unsqueeze(-1)).squeeze(-1)
        ce = torch.where(has_shape, -(0.7 * lp_color + 0.3 * lp_shape), ce)
    weight = torch.where(color > 0, 1.0, 0.2)
    norm_pull = (proj.float().norm(dim=-1) - emb[cw[color]].norm(dim=-1)).pow(2)
    loss = (weight * (ce + norm_pull)).sum() / weight.sum()
    with torch.no_grad():
        pred = cos[..., cw].argmax(-1)  # among none + colours
        obj = color > 0
        acc_obj = (pred == color)[obj].float().mean().item() if obj.any() else float("nan")
        acc_bg = (pred == 0)[~obj].float().mean().item()
    return loss, {"word_acc_obj": acc_obj, "word_acc_bg": acc_bg}


def _answer_labels(seqs: Sequence[list[int]], starts: Sequence[int], seq: Sequencer):
    """(ids, attention mask, labels, first) for right-padded ``seqs`` whose answers start at
    ``starts``: position t is labelled with token t+1 inside the answer, ``first`` marks the
    position that predicts the first answer token."""
    ids, mask = seq.pad_batch(seqs)
    labels = torch.full(ids.shape, IGNORE, dtype=torch.long)
    first = torch.zeros(ids.shape, dtype=torch.bool)
    for n, (s, st) in enumerate(zip(seqs, starts)):
        labels[n, st - 1 : len(s) - 1] = torch.tensor(s[st:])
        first[n, st - 1] = True
    return ids, mask, labels, first


def _shared_prefix_forward(
    lm,
    seq: Sequencer,
    images: torch.Tensor,
    group_of: Sequence[int],
    suffixes: Sequence[list[int]],
    starts: Sequence[int],
    device,
    suffix_images: torch.Tensor | None = None,
):
    """(last hidden states, labels, first) of the LM on sequences ``prefix(images[group_of[i]]) +
    suffixes[i]``: the image prefix ``<s>USER: <image>xN\n`` with ``images`` [G, N, D] in its slots
    runs once per group, and every suffix continues from its group's key/value cache at the
    positions after the prefix. The LM is causal, so this is the whole sequences' forward (the
    prefix's states do not depend on what follows) at the cost of the prefix once per group.
    ``starts`` index each suffix's first answer token; the outputs cover the suffixes only.
    ``suffix_images`` [M, N, D] fill the image slots of the suffixes that have them, in order (a
    second image: ViCrop's crop after the frame)."""
    from transformers import DynamicCache

    embed, n_prefix = lm.embed_tokens, len(seq.prefix)
    prefix = torch.tensor([seq.prefix], device=device).expand(len(images), -1)
    x = embed(prefix).masked_scatter((prefix == seq.image_id)[..., None], images.to(embed.weight.dtype))
    cache = output_cache(lm(inputs_embeds=x, use_cache=True))
    pick = torch.tensor(list(group_of), device=device)
    shared = DynamicCache(
        ddp_cache_data=[
            (layer.keys.index_select(0, pick), layer.values.index_select(0, pick)) for layer in cache.layers
        ]
    )
    ids, mask, labels, first = _answer_labels(suffixes, starts, seq)
    ids, mask = ids.to(device), mask.to(device)
    full_mask = torch.cat([torch.ones(len(ids), n_prefix, dtype=mask.dtype, device=device), mask], 1)
    positions = torch.arange(n_prefix, n_prefix + ids.shape[1], device=device).expand(len(ids), -1)
    x = embed(ids)
    if suffix_images is not None:
        x = x.masked_scatter((ids == seq.image_id)[..., None], suffix_images.to(x.dtype))
    hidden = lm(
        inputs_embeds=x,
        attention_mask=full_mask,
        position_ids=positions,
        use_cache=False,
        **cache_kwargs(shared),
    ).last_hidden_state
    return hidden, labels.to(device), first.to(device)


def _paired_forward(model, batch: dict, seq: Sequencer, paired: Sequence[tuple], device):
    """:func:`_shared_prefix_forward` on ViCrop's answer prompts: each frame view's prefix once, the
    crop's features in the suffix's image slots. Its own forward, as its ~290-token suffixes would
    pad every single-image question to their length."""
    frames = sorted({f for f, *_ in paired})
    row = {f: k for k, f in enumerate(frames)}
    crops = [c for _, c, *_ in paired]
    with torch.no_grad():
        feats = model.model.multi_modal_projector(vision_features(model, batch["pixels"][frames + crops].to(device)))
    n_prefix = len(seq.prefix)
    suffixes, starts = [], []
    for _, _, q, a in paired:
        ids, st = seq.paired_qa(q, a)
        suffixes.append(ids[n_prefix:]), starts.append(st - n_prefix)
    lm = model.model.language_model
    group_of = [row[f] for f, *_ in paired]
    return _shared_prefix_forward(
        lm, seq, feats[: len(frames)], group_of, suffixes, starts, device, suffix_images=feats[len(frames) :]
    )


def lm_loss(
    model,
    batch: dict,
    seq: Sequencer,
    device,
    max_sequences: int,
    rng: np.random.Generator,
    symbolic: float = 0.0,
    color_words: Sequence[int] = (),
) -> tuple[torch.Tensor, dict]:
    """Answer-token cross-entropy of the LM on the batch's questions; image features are computed
    once per view (vision tower and projector are frozen) and scattered into the image slots. With
    ``symbolic`` > 0 that share of the colour-existence questions sees, in the image slots, the word
    embeddings of its view's patch colour labels instead (' none' for background).

    The image prefix ``<s>USER: <image>x256\\n`` is run through the LM once per (view, symbolic)
    and its key/value cache is shared by every question about that view: the LM is causal, so the
    prefix's states do not depend on the question, and the loss and its gradients are those of the
    full sequences (a test checks them against the model's own forward) at about a third of the
    tokens (the questions are ~20 tokens after a 258-token prefix). The batch's ``paired`` questions
    (ViCrop's [frame, crop] prompt, at most ``max_sequences // 8``) run in a forward of their own."""
    qs = batch["questions"]
    texts = batch["text"]
    paired = list(batch.get("paired", ()))[: max(1, max_sequences // 8)]  # ~290 tokens each
    if len(qs) + len(texts) > max_sequences:
        keep_t = texts[: max(1, max_sequences // 6)] if texts else []
        n_q = max_sequences - len(keep_t)
        idx = rng.choice(len(qs), size=min(n_q, len(qs)), replace=False) if qs else []
        qs, texts = [qs[int(i)] for i in sorted(idx)], keep_t
    if not qs and not texts and not paired:
        return torch.zeros((), device=device, requires_grad=True), {}
    lm, embed = model.model.language_model, model.model.language_model.embed_tokens
    n_prefix = len(seq.prefix)
    groups: dict[tuple[int, bool], int] = {}
    suffixes, starts, group_of, kinds = [], [], [], []
    for v, kind, q, a in qs:
        ids, st = seq.image_qa(q, a)
        sym = bool(symbolic > 0 and kind == "exists" and rng.random() < symbolic)
        group_of.append(groups.setdefault((v, sym), len(groups)))
        suffixes.append(ids[n_prefix:]), starts.append(st - n_prefix)
        kinds.append("exists_symbolic" if sym else kind)
    parts = []  # (hidden, labels, first) per forward
    if qs:
        keys = list(groups)
        used = sorted({v for v, sym in keys if not sym})
        row = {v: k for k, v in enumerate(used)}
        feats = None
        if used:
            with torch.no_grad():
                feats = model.model.multi_modal_projector(vision_features(model, batch["pixels"][used].to(device)))
        words = torch.tensor(list(color_words), device=device) if symbolic > 0 else None
        images = torch.stack(
            [
                embed.weight[words[batch["color"][v].to(device).flatten()]].detach() if sym else feats[row[v]]
                for v, sym in keys
            ]
        )  # [G, N, D]
        parts.append(_shared_prefix_forward(lm, seq, images, group_of, suffixes, starts, device))
    if paired:
        parts.append(_paired_forward(model, batch, seq, paired, device))
        kinds += ["paired"] * len(paired)
    if texts:
        seqs_t, starts_t = zip(*(seq.text_qa(p, a) for p, a in texts))
        ids, mask, labels, first = _answer_labels(seqs_t, starts_t, seq)
        hidden = lm(inputs_embeds=embed(ids.to(device)), attention_mask=mask.to(device)).last_hidden_state
        parts.append((hidden, labels.to(device), first.to(device)))
        kinds += ["extract"] * len(texts)
    sels = [lab != IGNORE for _, lab, _ in parts]
    logits = model.lm_head(torch.cat([h[s] for (h, _, _), s in zip(parts, sels)])).float()
    target = torch.cat([lab[s] for (_, lab, _), s in zip(parts, sels)])
    loss = F.cross_entropy(logits, target)
    stats = {}
    with torch.no_grad():
        correct = logits.argmax(-1) == target
        first_sel = torch.cat([f[s] for (_, _, f), s in zip(parts, sels)])
        fc = correct[first_sel].cpu().numpy()  # one entry per sequence, in kinds' order
        kinds_arr = np.array(kinds)
        for kind in sorted(set(kinds)):
            m = kinds_arr == kind
            stats[f"acc_{kind}"] = float(fc[m].mean())
    return loss, stats


def symbolic_loss(
    model,
    seq: Sequencer,
    device,
    n: int,
    rng: np.random.Generator,
    color_words: Sequence[int],
    grid: int,
    per_map: int = 1,
) -> tuple[torch.Tensor, dict]:
    """Existence questions (balanced) about symbolic views: the image slots hold the word
    embeddings of a random label map (' none' for background), i.e. what a perfect alignment
    gives. Cross-entropy of the Yes/No answer token. ``per_map`` questions ask about one map and
    share its image prefix (:func:`_shared_prefix_forward`): ``n`` questions cost ``n / per_map``
    prefixes."""
    maps, group_of, seqs, starts = symbolic_questions(rng, seq, n, grid, per_map)
    n_prefix = len(seq.prefix)
    lm = model.model.language_model
    words = torch.tensor(list(color_words), device=device)
    images = lm.embed_tokens.weight[words[torch.from_numpy(maps).to(device).flatten(1)]].detach()
    hidden, target, first = _shared_prefix_forward(
        lm, seq, images, group_of, [s[n_prefix:] for s in seqs], [st - n_prefix for st in starts], device
    )
    logits = model.lm_head(hidden[first]).float()  # the Yes/No token: the last of each sequence
    target = target[first]
    loss = F.cross_entropy(logits, target)
    return loss, {"acc_exists_symbolic": float((logits.argmax(-1) == target).float().mean())}


__all__ = ["BACKGROUND_WEIGHT", "vision_loss", "align_loss", "lm_loss", "symbolic_loss"]
