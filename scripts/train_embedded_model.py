#!/usr/bin/env python3
"""Train the embedded default model (see focus_ros/training/recipe.py for the recipe).

    python scripts/train_embedded_model.py              # models/embedded (docs/embedded-model.md: cost)
    python scripts/train_embedded_model.py --recipe default-fp32 --device cuda --workers 15   # 7 stages, float32, GPU
    python scripts/train_embedded_model.py --recipe reuse-fp32   # a CPU whose bfloat16 is slow (weaker)

Checkpoints go to --work (default out/train_embedded); running the same command again resumes
from the last one (another recipe or --seed on that checkpoint is refused where it contradicts
what was trained: use another --work); --max-seconds S stops at the first step past S seconds
with a checkpoint (exit 75), for a lent GPU's lease or a session's end. --scale multiplies every
stage's step count (a smoke run: --scale 0.002).
--init-from DIR --start-stage K starts from a saved model with the recipe's first K stages done
(the default's eighth stage on a model of full-bf16's seven: --init-from DIR --start-stage 7);
--recipe mixed-ft-vision --init-from DIR fine-tunes a trained model on plain and varied scenes in turn.
--vision-from WORK/checkpoint.pt starts at stage 2 with another run's vision tower (a study of the
LM stages: the vision stage trains only the tower and its heads). --steps exist_symbolic=1200 changes
a stage's step count, --stage-set exist_symbolic.per_map=1 one of its StageConfig fields. Every stage's
end leaves WORK/after-STAGE.pt: copied to another work folder's checkpoint.pt, a study branches there.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import replace

# Idle OpenMP threads sleep instead of spinning: the loader process drawing scenes shares the two
# cores with the training threads, and spinning threads took its time (a vision step 1.98 -> 1.66 s
# on this machine, same numbers). Set before torch starts its thread pool; loader processes inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from focus_ros.training.recipe import FINETUNES, RECIPES, StageConfig  # noqa: E402
from focus_ros.training.trainer import Trainer  # noqa: E402

EXIT_RESUME = 75  # EX_TEMPFAIL: stopped at --max-seconds with a checkpoint; rerun to go on


def stage_set_arg(cfg, item: str):
    """``cfg`` with one stage's field set from ``STAGE.FIELD=VALUE`` (the value typed as the field is)."""
    key, _, value = item.partition("=")
    name, _, fld = key.partition(".")
    if not value:
        raise ValueError("no value")
    stage = cfg.stage(name)
    if fld not in StageConfig.__dataclass_fields__ or fld == "name":
        raise ValueError(f"StageConfig has no settable field {fld!r}")
    old = getattr(stage, fld)
    if isinstance(old, bool) or "bool" in str(StageConfig.__dataclass_fields__[fld].type):
        if value.lower() not in ("true", "false"):
            raise ValueError("give true or false")
        return cfg.with_stage(name, **{fld: value.lower() == "true"})
    return cfg.with_stage(name, **{fld: type(old)(value)})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="models/embedded", help="where the trained model is saved")
    p.add_argument("--work", default="out/train_embedded", help="checkpoint folder (resume from here)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--workers", type=int, default=1, help="scene-drawing loader processes")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every stage's steps (smoke runs)")
    p.add_argument(
        "--stages",
        type=int,
        default=0,
        help="train only the recipe's first N stages (0: all; a study of one stage's gate)",
    )
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="default",
        help="default (made models/embedded: method-tune-frozen; about 2 h on 2 CPU cores with "
        "native bfloat16), full-bf16 (the default's first seven stages: four-stage with 15 crops per "
        "scene in vision and alignment, then 4 grown heads per LM layer that learn existence and a "
        "joint tune, under bfloat16 autocast), "
        "transfer (full-bf16 on varied scenes, with the baselines' prompts), "
        "mixed (full-bf16 on plain and varied scenes in turn, with the baselines' prompts), "
        "curriculum (full-bf16 with a second tower stage, the alignment and the joint tune on plain "
        "and varied scenes in turn, the baselines' prompts in the joint tune), "
        "plain-then-mixed (full-bf16's stages up to existence on plain scenes, then the tower, the "
        "alignment and the joint tune on plain and varied scenes in turn, the baselines' prompts in "
        "the joint tune), "
        "method-tune (full-bf16, then its joint tune again on plain and varied scenes with the "
        "baselines' prompts; --init-from DIR --start-stage 7 on a model of the seven runs only that stage), "
        "method-tune-frozen (method-tune with LM layer 0, where FOCUS reads relevance, kept as it is, "
        "and the eighth stage in float32: the default), "
        "default-fp32 (full-bf16's stages in float32, for a GPU), "
        "reuse-fp32 (default-fp32's stages and steps with two items drawn from each scene and 8 "
        "existence questions per symbolic map: for a CPU whose bfloat16 is slow), "
        "vision-distinct (reuse-fp32 with one item a scene in the vision stage), "
        "grid-24 (default-fp32 on a 192 px view with 8 px patches: a 24 x 24 grid), "
        "small-objects (reuse-fp32 with no object weighing more than 4 patches in the vision loss), "
        "cut-bf16 (full-bf16 with fewer steps), "
        "existence-release (matching init + symbolic existence stage, two heads "
        "freed for tuning) or half-batch (default-fp32's steps with half the scenes "
        "and sequences per step)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the recipe's seed (TrainConfig.seed: scenes, initialisation, order; default 20251125): "
        "another draw of the same recipe",
    )
    p.add_argument(
        "--fp32",
        action="store_true",
        help="train in float32 whatever the recipe and its stages ask (mixed_precision off): faster on "
        "CPUs without native bfloat16 (no AVX512-BF16/AMX); the weights differ from the recipe's by rounding",
    )
    p.add_argument(
        "--vision-object-cap",
        type=int,
        default=None,
        help="override the recipe's TrainConfig.vision_object_cap (0: per-patch weights)",
    )
    p.add_argument(
        "--vision-hidden",
        type=int,
        default=None,
        help="override the vision tower's width (ModelShape.vision_hidden, 96; a multiple of its 4 heads)",
    )
    p.add_argument(
        "--steps",
        nargs="+",
        default=[],
        metavar="STAGE=N",
        help="override stages' step counts, e.g. exist_symbolic=1200 (TrainConfig.with_steps)",
    )
    p.add_argument(
        "--stage-set",
        nargs="+",
        default=[],
        metavar="STAGE.FIELD=VALUE",
        help="override one stage's StageConfig field, e.g. exist_symbolic.per_map=1",
    )
    p.add_argument(
        "--vision-from",
        metavar="WORK/checkpoint.pt",
        help="start at stage 2 with this run's vision tower (same recipe up to stage 1: skips retraining it)",
    )
    p.add_argument("--init-from", help="a saved model to start from instead of a random one")
    p.add_argument("--start-stage", type=int, default=0, help="with --init-from: the first stage to train")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop at the first step past this many seconds of this run (start-up included), "
        "checkpoint and exit "
        f"{EXIT_RESUME}; the same command resumes (a lent GPU's lease, a session's end)",
    )
    p.add_argument("--no-progress", action="store_true")
    started = time.monotonic()  # --max-seconds counts start-up too: it is a lease's budget
    args = p.parse_args(argv)
    if args.max_seconds is not None and args.max_seconds < 0:
        p.error("--max-seconds must be >= 0")
    if args.stages < 0:
        p.error("--stages must be >= 0")
    if args.start_stage and not args.init_from:
        p.error("--start-stage needs --init-from (the model the earlier stages produced)")
    if args.recipe in FINETUNES and not args.init_from:
        p.error(f"--recipe {args.recipe} fine-tunes a trained model: give it with --init-from DIR")
    if args.vision_from and args.init_from:
        p.error("--vision-from and --init-from are two different starts; give one")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = RECIPES[args.recipe]
    if args.scale != 1.0:
        cfg = cfg.scaled(args.scale)
    try:
        steps = {k: int(v) for k, v in (item.split("=", 1) for item in args.steps)}
        cfg = cfg.with_steps(**steps)
    except ValueError as e:
        p.error(f"--steps: {e} (give STAGE=N with a stage of recipe {args.recipe}, '-' written '_')")
    for item in args.stage_set:
        try:
            cfg = stage_set_arg(cfg, item)
        except ValueError as e:
            p.error(f"--stage-set {item}: {e}")
    if args.stages:
        cfg = replace(cfg, stages=cfg.stages[: args.stages])
    if args.seed is not None:
        try:
            cfg = replace(cfg, seed=args.seed)
        except ValueError as e:  # TrainConfig refuses a seed whose stages would draw the held-out scenes
            p.error(f"--seed: {e}")
    if args.fp32:
        stages = tuple(replace(s, mixed_precision=None) for s in cfg.stages)
        cfg = replace(cfg, mixed_precision=False, stages=stages)
    if args.vision_object_cap is not None:
        if args.vision_object_cap < 0:
            p.error("--vision-object-cap must be >= 0")
        cfg = replace(cfg, vision_object_cap=args.vision_object_cap)
    if args.vision_hidden is not None:
        heads = cfg.shape.vision_heads
        if args.vision_hidden <= 0 or args.vision_hidden % heads:
            p.error(f"--vision-hidden must be a positive multiple of the tower's {heads} heads")
        cfg = replace(cfg, shape=replace(cfg.shape, vision_hidden=args.vision_hidden))
    t0 = time.perf_counter()
    try:
        trainer = Trainer(
            cfg,
            args.work,
            args.out,
            device=args.device,
            workers=args.workers,
            checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress,
            init_from=args.init_from,
            start_stage=args.start_stage,
            vision_from=args.vision_from,
        )
    except ValueError as e:  # e.g. --vision-from a run whose vision stage had other settings
        p.error(str(e))
    end = None if args.max_seconds is None else started + args.max_seconds
    out = trainer.train(stop=None if end is None else lambda: time.monotonic() >= end)
    if out is None:
        logging.info(
            "stopped after %.1f s (--max-seconds %g); rerun the same command to resume",
            time.monotonic() - started,
            args.max_seconds,
        )
        return EXIT_RESUME
    logging.info(
        "saved %s after %.1f s (this run); per stage: %s",
        out,
        time.perf_counter() - t0,
        {k: round(v, 1) for k, v in trainer.state.seconds.items()},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
