"""Training the embedded default model: :class:`Trainer` runs a recipe's stages in order, with
checkpoints to resume from, and saves the model with ``save_pretrained``.

No real checkpoint is reachable from this project's machines, so the model that gives real
answers in the demo, the tests and the benchmark is trained from scratch by
``scripts/train_embedded_model.py`` on :mod:`focus_ros.eval.scenes`. The recipe is
:mod:`focus_ros.training.recipe`, the model :mod:`~focus_ros.training.model`, its examples
:mod:`~focus_ros.training.data`, its losses :mod:`~focus_ros.training.losses` and its gates
:mod:`~focus_ros.training.gates`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..eval.scenes import SceneSpec
from .data import STAGE_TASKS, SceneSamples, Sequencer, collate
from .gates import GATE_SCENES, SETTINGS_FILE, SHAPE_GATE_SCENES, heldout_scenes, vision_shape_by_scale
from .losses import align_loss, lm_loss, symbolic_loss, vision_loss
from .miniatures import FAMILY_FILE, staged_dir
from .model import (
    Heads,
    build_model,
    build_processor_and_tokenizer,
    grow_heads,
    head_dim_of,
    init_matching_attention,
    parts,
    release_matching_heads,
    vision_features,
    word_ids,
)
from .recipe import MATCH_GAIN, VISION_SHAPE_FIELDS, ModelShape, StageConfig, TrainConfig, with_defaults

LOG = logging.getLogger(__name__)


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # loader processes draw scenes; the main process owns the cores
    cv2.setNumThreads(1)


def _set_trainable(
    model, heads: Heads | None, stage: StageConfig, base_heads: int
) -> tuple[list[torch.nn.Parameter], list[tuple[torch.Tensor, torch.Tensor]]]:
    """The parameters ``stage`` trains, and (parameter, 0/1 mask) pairs whose gradients are masked
    (``new_heads_only``: only the rows/columns of heads past ``base_heads`` learn). The first
    ``stage.frozen_layers`` LM layers learn nothing either way."""
    for p in model.parameters():
        p.requires_grad_(False)
    if stage.new_heads_only:
        cut = base_heads * head_dim_of(model.config.text_config)
        masked = []
        for layer in list(model.model.language_model.layers)[stage.frozen_layers :]:
            attn = layer.self_attn
            for lin, rows in ((attn.q_proj, True), (attn.k_proj, True), (attn.v_proj, True), (attn.o_proj, False)):
                w = lin.weight
                w.requires_grad_(True)
                mask = torch.zeros_like(w)
                if rows:
                    mask[cut:] = 1
                else:
                    mask[:, cut:] = 1
                masked.append((w, mask))
        return [w for w, _ in masked], masked
    p = parts(model)
    if stage.task == "vision-heads":  # the tower stays as it is while fresh heads learn to read it
        mods = [heads]
    elif stage.task == "vision":
        mods = [p["vision"], heads]
    elif stage.task == "align":
        mods = [p["projector"]]
    else:
        # vision tower, projector and word embeddings stay frozen: the alignment survives
        mods = [m for name, m in p["lm"].named_children() if name not in ("embed_tokens", "layers")]
        mods += list(p["lm"].layers)[stage.frozen_layers :] + [p["head"]]
    params = []
    for m in mods:
        for q in m.parameters():
            q.requires_grad_(True)
            params.append(q)
    return params, []


def _lr(step: int, stage: StageConfig) -> float:
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    t = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return stage.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


class _EndableBatches:
    """A batch sampler that can end early. A loader worker shut down while it still draws prefetched
    batches aborts at exit (seen: 'terminate called without an active exception', then a RuntimeError
    from torch's SIGCHLD handler in the training process); ending the sampler and taking the batches
    already asked for lets the workers finish as at a stage's end."""

    def __init__(self, batches):
        self.batches, self.ended = batches, False

    def __iter__(self):
        for b in self.batches:
            if self.ended:
                return
            yield b

    def __len__(self) -> int:
        return len(self.batches)


def resume_conflicts(saved: dict, cfg: TrainConfig, stage_index: int, step: int) -> list[str]:
    """What a checkpoint's recipe (``saved``, its ``asdict``) says that ``cfg`` contradicts for the
    part already trained: any setting outside the stages, and every stage begun (``stage_index`` done,
    one more if ``step`` > 0). Stages not begun may differ (a study branching from ``after-STAGE.pt``);
    without this check a resume under another recipe or ``--seed`` trained on silently and
    ``training.json`` recorded settings the weights never saw."""
    # compared as JSON holds them (tuples as lists): a checkpoint keeps tuples, a training.json lists
    now = json.loads(json.dumps(asdict(cfg)))
    out = []
    old = with_defaults(TrainConfig, {k: v for k, v in saved.items() if k != "stages"})
    old = json.loads(json.dumps({k: v for k, v in old.items() if k != "stages"}))
    for k in sorted(set(now) - {"stages"}):
        a = with_defaults(ModelShape, old[k]) if k == "shape" else old.get(k)
        if a != now[k]:
            out.append(f"{k}: {a!r} there, {now[k]!r} here")
    begun = stage_index + (1 if step > 0 else 0)
    stages = [with_defaults(StageConfig, s) for s in saved.get("stages", ())]
    if len(now["stages"]) < begun:
        out.append(f"it has begun {begun} stages, this recipe has {len(now['stages'])}")
    for i in range(min(begun, len(stages), len(now["stages"]))):
        if stages[i] != now["stages"][i]:
            diff = sorted(k for k in now["stages"][i] if stages[i].get(k) != now["stages"][i][k])
            out.append(f"stage {i + 1} {stages[i]['name']}: {', '.join(diff)}")
    return out


@dataclass
class TrainState:
    stage_index: int = 0
    step: int = 0
    seconds: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


class Trainer:
    """Runs the stages in order with checkpoints in ``work_dir``; ``train()`` resumes where the
    last checkpoint left off and finally saves the model to ``out_dir``. With ``init_from`` (a
    saved model) and no checkpoint yet, training starts at ``start_stage`` from that model; with
    ``vision_from`` (another run's checkpoint) it starts at stage 2 with that run's vision tower,
    refused where that run's vision stage had other settings (seed, shape, scenes, object cap, the
    stage itself): later stages may differ, that being the study. Resuming a checkpoint is refused
    likewise where the recipe contradicts what it has trained (``resume_conflicts``)."""

    def __init__(
        self,
        cfg: TrainConfig,
        work_dir: str | Path,
        out_dir: str | Path,
        device: str = "cpu",
        workers: int = 0,
        checkpoint_every: int = 100,
        progress: bool = True,
        init_from: str | Path | None = None,
        start_stage: int = 0,
        shape_gate_scenes: int = SHAPE_GATE_SCENES,
        vision_from: str | Path | None = None,
        gate_scenes: int = GATE_SCENES,
    ):
        self.cfg, self.device, self.workers = cfg, torch.device(device), workers
        self.shape_gate_scenes, self.gate_scenes = shape_gate_scenes, gate_scenes
        self.work, self.out = Path(work_dir), Path(out_dir)
        self.checkpoint_every, self.progress = checkpoint_every, progress
        self.work.mkdir(parents=True, exist_ok=True)
        self.processor, self.tokenizer = build_processor_and_tokenizer(cfg.shape, cfg.method_prompts)
        self.model = build_model(self.tokenizer, cfg.shape, cfg.seed)
        self.seq = Sequencer(self.tokenizer, cfg.shape.grid**2)
        if cfg.match_init_gain:
            init_matching_attention(
                self.model, cfg.match_init_gain, len(self.seq.prefix) + 64, cfg.seed, cfg.match_init_heads
            )
        self.model.to(self.device)
        with torch.random.fork_rng(devices=[]):
            # seeded: this torch's global generator starts from a random seed in every process
            # (torch.initial_seed() differs run to run), so unseeded heads made the vision stage differ
            torch.manual_seed(cfg.seed)
            self.heads = Heads(cfg.shape.vision_hidden).to(self.device)
        torch.manual_seed(cfg.seed)
        self.state = TrainState()
        self.color_words, self.shape_words = word_ids(self.tokenizer)
        self.opt: torch.optim.Optimizer | None = None
        self.init_from = str(init_from) if init_from is not None else None
        self.vision_from: str | None = None
        self.continues: dict | None = None  # the run whose saved model this one goes on from
        self._opt_state = None
        self._batches: _EndableBatches | None = None
        if init_from is not None and not self.ckpt.is_file():
            # the stages before start_stage are done: their result is the saved model
            import transformers

            self.model = (
                transformers.LlavaForConditionalGeneration.from_pretrained(init_from).to(torch.float32).to(self.device)
            )
            self.state.stage_index = start_stage
            self._continue_record(Path(init_from), start_stage)
        if vision_from is not None and not self.ckpt.is_file():
            self._take_vision_stage(Path(vision_from))
        self._load()

    def _continue_record(self, folder: Path, start_stage: int) -> None:
        """Carry the training record of the run that saved ``folder`` when that run trained exactly this
        recipe's first ``start_stage`` stages with these settings: every stage opens a fresh optimiser
        and draws from its own seed, so going on from its model trains as one run would, and the record
        keeps every stage's seconds and metrics, ``continues`` telling where the first ones ran."""
        path = folder / "training.json"
        if not path.is_file():
            return
        old = json.loads(path.read_text())
        config = old.get("config") or {}
        if len(config.get("stages", ())) != start_stage or resume_conflicts(config, self.cfg, start_stage, 0):
            LOG.info("%s trained other stages or settings: its record is not carried", folder)
            return
        self.state.seconds = dict(old.get("seconds") or {})
        self.state.metrics = dict(old.get("metrics") or {})
        self.continues = {k: old.get(k) for k in ("init_from", "vision_from", "device", "torch")}
        self.continues["stages"] = start_stage

    def _take_vision_stage(self, ckpt: Path) -> None:
        """Start after the vision stage with another run's tower and stage-1 heads. The vision stage
        trains only those two, so with the same seed and shape this is the state that run had after
        stage 1, and a recipe that differs only in later stages needs no second vision stage."""
        if not self.cfg.stages or self.cfg.stages[0].name != "vision":
            raise ValueError("vision_from needs a recipe whose first stage is 'vision'")
        data = torch.load(ckpt, map_location=self.device, weights_only=True)
        if data["state"]["stage_index"] < 1:
            raise ValueError(f"{ckpt} has not finished its vision stage")
        if "config" in data:  # checkpoints before it was saved there are taken as they are
            differ = [
                k
                for k, v in self._vision_settings(self.cfg).items()
                if v != self._vision_settings(data["config"]).get(k)
            ]
            if differ:
                raise ValueError(
                    f"{ckpt} trained its vision stage with other settings ({', '.join(differ)}); "
                    "this run would record settings its tower never saw"
                )
        prefix = "model.vision_tower."
        tower = {k[len(prefix) :]: v for k, v in data["model"].items() if k.startswith(prefix)}
        parts(self.model)["vision"].load_state_dict(tower)  # strict: a different width fails here
        self.heads.load_state_dict(data["heads"])
        done = data["state"]
        self.state = TrainState(
            stage_index=1,
            seconds={"vision": done["seconds"].get("vision", 0.0)},
            metrics={k: done["metrics"][k] for k in ("vision", "gate_vision") if k in done["metrics"]},
        )
        self.vision_from = str(ckpt)

    @staticmethod
    def _vision_settings(cfg: TrainConfig | dict) -> dict:
        """What the vision stage's result depends on (as plain values, from a config or its asdict)."""
        d = asdict(cfg) if isinstance(cfg, TrainConfig) else cfg
        keys = (
            "seed",
            "train_short_side",
            "crop_scale",
            "legible_px",
            "visible_px",
            "mixed_precision",
            "vision_object_cap",
        )
        # the tower's sizes only: the LM's do not touch stage 1 (the tower is initialised before the LM)
        shape = {k: (d.get("shape") or {}).get(k) for k in VISION_SHAPE_FIELDS}
        return {
            **{k: d.get(k) for k in keys},
            "shape": shape,
            "vision stage": d["stages"][0] if d.get("stages") else None,
        }

    # -- checkpoints
    @property
    def ckpt(self) -> Path:
        return self.work / "checkpoint.pt"

    def _load(self) -> None:
        if not self.ckpt.is_file():
            return
        data = torch.load(self.ckpt, map_location=self.device, weights_only=True)
        if "config" in data:  # checkpoints before it was saved there are taken as they are
            conflicts = resume_conflicts(data["config"], self.cfg, data["state"]["stage_index"], data["state"]["step"])
            if conflicts:
                raise ValueError(
                    f"{self.ckpt} was trained with other settings ({'; '.join(conflicts)}); resume it with its own "
                    "command, or copy a WORK/after-STAGE.pt into a new work folder and change only later stages"
                )
        text = self.model.config.text_config
        saved = data["model"]["model.language_model.layers.0.self_attn.q_proj.weight"].shape[0] // head_dim_of(text)
        if saved > text.num_attention_heads:  # grown in a stage already run: shapes only, weights load below
            grow_heads(self.model, saved - text.num_attention_heads, seed=0)
        self.model.load_state_dict(data["model"])
        self.heads.load_state_dict(data["heads"])
        self.state = TrainState(**data["state"])
        self._opt_state = data.get("optimizer")
        self.init_from = data.get("init_from")
        self.vision_from = data.get("vision_from")
        self.continues = data.get("continues")
        LOG.info("resumed at stage %d step %d", self.state.stage_index, self.state.step)

    def _save(self) -> None:
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save(
            {
                "model": self.model.state_dict(),
                "heads": self.heads.state_dict(),
                "state": asdict(self.state),
                "optimizer": self.opt.state_dict() if self.opt else None,
                "init_from": self.init_from,
                "vision_from": self.vision_from,
                "continues": self.continues,
                "config": asdict(self.cfg),
            },
            tmp,
        )
        os.replace(tmp, self.ckpt)

    # -- data
    def loader(self, stage_index: int, start: int) -> Iterator[dict]:
        stage = self.cfg.stages[stage_index]
        self._batches = None
        if stage.task == "exist-symbolic":
            return iter(range(start, stage.steps))  # no scenes drawn: symbolic_loss makes its own views
        n = stage.steps * stage.scenes_per_step
        ds = SceneSamples(self.cfg, stage, self.cfg.stage_seed(stage_index), n, STAGE_TASKS[stage.task])
        sampler = range(start * stage.scenes_per_step, n)
        self._batches = _EndableBatches(torch.utils.data.BatchSampler(sampler, stage.scenes_per_step, drop_last=False))
        return iter(
            torch.utils.data.DataLoader(
                ds,
                batch_sampler=self._batches,
                num_workers=self.workers,
                collate_fn=collate,
                persistent_workers=False,
                worker_init_fn=_one_thread,
                # fork after CUDA/OpenMP/OpenCV thread pools exist can deadlock
                multiprocessing_context="spawn" if self.workers else None,
                prefetch_factor=4 if self.workers else None,
            )
        )

    # -- the loop
    def train(self, stop: Callable[[], bool] | None = None) -> Path | None:
        """Train the remaining stages and save the model; returns its folder. ``stop`` is asked before
        each stage and after each step; once it says True, training checkpoints and returns None, and
        a new Trainer on the same work folder resumes there (a time budget: a lent GPU's lease, a
        session's end)."""
        from tqdm import tqdm

        def out_of_time() -> bool:
            return stop is not None and stop()

        while self.state.stage_index < len(self.cfg.stages):
            if out_of_time():
                return self._stopped()
            si = self.state.stage_index
            stage = self.cfg.stages[si]
            if stage.release_heads and self.state.step == 0:
                release_matching_heads(
                    self.model, build_model(self.tokenizer, self.cfg.shape, self.cfg.seed), stage.release_heads
                )
            if stage.grow_heads and self.state.step == 0:
                before = self.model.config.text_config.num_attention_heads
                grow_heads(self.model, stage.grow_heads, seed=self.cfg.stage_seed(si))
                if stage.match_heads:
                    init_matching_attention(
                        self.model,
                        MATCH_GAIN,
                        len(self.seq.prefix) + 64,
                        self.cfg.seed,
                        heads=stage.match_heads,
                        first=before,
                    )
            params, masked = _set_trainable(self.model, self.heads, stage, self.cfg.shape.text_heads)
            self.opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=0.01)
            if self._opt_state is not None and self.state.step > 0:
                self.opt.load_state_dict(self._opt_state)
            self._opt_state = None
            self.model.train()
            rng = np.random.default_rng(np.random.SeedSequence([self.cfg.seed, si, self.state.step]))
            bar = tqdm(
                total=stage.steps,
                initial=self.state.step,
                desc=f"stage {si + 1}/{len(self.cfg.stages)} {stage.name}",
                disable=not self.progress,
                dynamic_ncols=True,
            )
            t0 = time.perf_counter()
            # a resumed stage goes on from the moving averages its checkpoint saved
            ema: dict[str, float] = dict(self.state.metrics.get(stage.name, {})) if self.state.step else {}
            batches = self.loader(si, self.state.step)
            bf16 = self.cfg.mixed_precision if stage.mixed_precision is None else stage.mixed_precision
            for batch in batches:
                for g in self.opt.param_groups:
                    g["lr"] = _lr(self.state.step, stage)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss, stats = self._loss(stage, batch, rng)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                for w, mask in masked:
                    if w.grad is not None:
                        w.grad.mul_(mask)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                self.opt.step()
                self.state.step += 1
                for k, v in {"loss": loss.item(), **stats}.items():
                    if v == v:  # skip NaN (no such patches in this batch)
                        ema[k] = v if k not in ema else 0.95 * ema[k] + 0.05 * v
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()})
                halt = out_of_time()  # also after a stage's last step: its gate runs on resume
                if self.state.step % self.checkpoint_every == 0 or self.state.step == stage.steps or halt:
                    self.state.seconds[stage.name] = self.state.seconds.get(stage.name, 0.0) + time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.state.metrics[stage.name] = dict(ema)
                    self._save()
                if halt:
                    bar.close()
                    if self._batches is not None:
                        self._batches.ended = True
                        for _ in batches:  # the few already prefetched: drawn, not trained on
                            pass
                    return self._stopped()
                if self.state.step >= stage.steps:
                    break
            bar.close()
            LOG.info("stage %s done: %s", stage.name, {k: round(v, 3) for k, v in ema.items()})
            if stage.task in ("vision", "align"):
                self.state.metrics[f"gate_{stage.name}"] = self.stage_gate(stage.task, self.gate_scenes)
                LOG.info("gate %s (held-out seed): %s", stage.name, self.state.metrics[f"gate_{stage.name}"])
            self.state.stage_index += 1
            self.state.step = 0
            self.opt = None
            self._save()
            # a study that changes only later stages starts from here (copy it to WORK/checkpoint.pt)
            shutil.copyfile(self.ckpt, self.work / f"after-{stage.name}.pt")
        return self.save_model()

    def _stopped(self) -> None:
        stage = self.cfg.stages[self.state.stage_index]
        LOG.info(
            "time budget reached at stage %d/%d %s, step %d of %d; checkpoint %s (the same command resumes)",
            self.state.stage_index + 1,
            len(self.cfg.stages),
            stage.name,
            self.state.step,
            stage.steps,
            self.ckpt,
        )
        return None

    def _loss(self, stage: StageConfig, batch, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
        if stage.task in ("vision-heads", "vision"):
            return vision_loss(self.model, self.heads, batch, self.device, self.cfg.vision_object_cap)
        if stage.task == "align":
            return align_loss(self.model, batch, self.color_words, self.shape_words, True, self.device)
        if stage.task == "exist-symbolic":
            return symbolic_loss(
                self.model,
                self.seq,
                self.device,
                stage.max_sequences,
                rng,
                self.color_words,
                self.cfg.shape.grid,
                stage.per_map,
            )
        return lm_loss(
            self.model, batch, self.seq, self.device, stage.max_sequences, rng, stage.symbolic, self.color_words
        )

    @torch.no_grad()
    def stage_gate(self, name: str, scenes: int = GATE_SCENES) -> dict:
        """The vision tower's per-patch colour/shape accuracy, or the alignment's per-patch word
        accuracy, on frames and on crops of held-out scenes (the benchmark's frame sizes); for the
        vision tower also its shape reading per scale on the shape gate's windows
        (:func:`vision_shape_by_scale`, ``shape_gate_scenes`` scenes)."""
        self.model.eval()
        stage = StageConfig("gate", steps=1, lr=0.0, crops_per_scene=4)
        cfg = replace(self.cfg, train_short_side=SceneSpec().short_side)
        ds = SceneSamples(cfg, stage, self.cfg.heldout_seed, scenes, ())
        sums: dict[str, list[float]] = {}
        for i in range(scenes):
            item = ds[i]
            pix = item["pixels"].to(self.device)
            color, shape = item["color"].to(self.device).flatten(1), item["shape"].to(self.device).flatten(1)
            feats = vision_features(self.model, pix)
            if name == "vision":
                pc, ps = self.heads.color(feats).argmax(-1), self.heads.shape(feats).argmax(-1)
            else:
                proj = self.model.model.multi_modal_projector(feats)
                emb = self.model.model.language_model.embed_tokens.weight
                cos = F.normalize(proj, dim=-1) @ F.normalize(emb, dim=-1).T
                pc = cos[..., torch.tensor(self.color_words, device=self.device)].argmax(-1)
                ps = None
            for view, kind in ((slice(0, 1), "frames"), (slice(1, None), "crops")):
                c, p_ = color[view], pc[view]
                obj = c > 0
                sums.setdefault(f"{kind}_color_object", []).extend((p_ == c)[obj].float().tolist())
                sums.setdefault(f"{kind}_background", []).extend((p_ == 0)[~obj].float().tolist())
                if ps is not None:
                    s_, q_ = shape[view], ps[view]
                    m = s_ > 0
                    sums.setdefault(f"{kind}_shape_legible", []).extend((q_ == s_)[m].float().tolist())
        out = {k: (round(float(np.mean(v)), 4) if v else None) for k, v in sums.items()}
        if name == "vision":
            by_scale = vision_shape_by_scale(
                self.model,
                self.heads,
                self.processor.image_processor,
                self.cfg.shape,
                heldout_scenes(self.cfg.heldout_seed, self.shape_gate_scenes),
                self.device,
            )
            out.update({f"crops_shape_majority_{k}": v for k, v in by_scale.items()})
        self.model.train()
        return out

    def save_model(self, settings: dict | None = None) -> Path:
        """Save model + processor with ``save_pretrained`` (plus the family marker and the training
        record) into ``out_dir``: written into a staging folder beside it and then put in its place
        (:func:`~.miniatures.staged_dir`), so an interrupted save leaves the previous model whole."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with staged_dir(self.out) as staging:
            self._write_model(staging)
            kept = self.out / SETTINGS_FILE  # the search settings chosen for this folder stay, as before
            if kept.is_file():
                shutil.copy2(kept, staging / SETTINGS_FILE)
        return self.out

    def _write_model(self, folder: Path) -> None:
        self.model.eval()
        self.model.save_pretrained(folder, safe_serialization=True)
        self.processor.save_pretrained(folder)
        (folder / FAMILY_FILE).write_text(json.dumps({"model_family": "llava"}) + "\n")
        record = {
            "config": asdict(self.cfg),
            "init_from": self.init_from,
            "vision_from": self.vision_from,
            "continues": self.continues,
            "seconds": self.state.seconds,
            "metrics": self.state.metrics,
            "device": str(self.device),
            "torch": torch.__version__,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }
        (folder / "training.json").write_text(json.dumps(record, indent=1) + "\n")


__all__ = ["Trainer", "TrainState", "resume_conflicts"]
