"""The embedded model's training recipe: its sizes (:class:`ModelShape`), its stages
(:class:`StageConfig`) and the whole recipe (:class:`TrainConfig`), with the named recipes the
training script offers (:data:`RECIPES`).

The default recipe (what earlier runs showed a tiny LLaVA needs before value-cache relevance means
anything: dense vision pre-training, alignment to the word embeddings kept frozen afterwards, crops
at the scales croppers use, then an existence curriculum):

1. ``vision``: dense per-patch colour and shape classification on the vision tower's output
   (the stand-in for CLIP pre-training), on frames and on crops at many scales;
2. ``align``: the projector maps each patch to the direction of its colour word's embedding
   (``none`` for background), with the vision tower and word embeddings frozen (the stand-in for
   LLaVA's alignment stage: it is what makes early-layer value similarity colour-specific);
3. ``tune-crops`` then ``tune``: instruction tuning of the language model's layers and its
   (untied) output head only, vision tower, projector and word embeddings frozen so the
   alignment survives; existence (balanced present/absent), shape, colour, relation, counting
   and the target-extraction prompt, several questions per image; crops first, frames after;
4. ``exist-symbolic``, ``exist-crops``, ``tune-joint`` (:meth:`TrainConfig.grown_existence`):
   every LM layer grows heads that learn existence without taking heads from shape reading.

Everything is deterministic from the config's seed: sample ``i`` of a stage is scene ``i`` of
that stage's scene seed, whatever the number of loader workers, so a resumed run sees the
same data as an uninterrupted one. Plain dataclasses: nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, replace

MATCH_GAIN = 2.0  # the matching initialisation's scale in every recipe that uses it


@dataclass(frozen=True)
class ModelShape:
    """Sizes of the embedded model (about 1.7 M parameters, ~7 MB in float32)."""

    image_size: int = 128  # large enough to read shapes on crops (96 px was not)
    patch_size: int = 8  # 16 x 16 grid: a 1 %-of-frame object still covers a cell on crops
    vision_hidden: int = 96
    vision_layers: int = 4
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 4  # few layers: FOCUS reads early layers of this model
    text_heads: int = 4
    text_mlp: int = 384

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


# the ModelShape fields the vision stage depends on: --vision-from compares these, so a study may
# change the LM's sizes on another run's tower
VISION_SHAPE_FIELDS = ("image_size", "patch_size", "vision_hidden", "vision_layers", "vision_heads")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: what trains, on what data, for how long."""

    name: str
    steps: int
    lr: float
    scenes_per_step: int = 6  # scenes drawn per optimiser step
    crops_per_scene: int = 5  # object-centred and random crops besides the full frame
    frames: bool = True  # include the full frame as a view
    max_sequences: int = 64  # question sequences per step (stage 3)
    symbolic: float = 0.0  # share of existence questions whose image slots hold the patch
    # labels' word embeddings (what perfect alignment gives): the
    # existence curriculum's clean first step
    warmup: int = 50
    release_heads: int = 0  # at this stage's start the last N layer-0 heads get their random
    # query/key back (free again after the matching stages)
    grow_heads: int = 0  # at this stage's start every LM layer gets N new heads whose output
    # starts at zero (grow_heads): capacity without forgetting
    match_heads: int = 0  # of the heads grown here, the first N in layer 0 get the matching init
    new_heads_only: bool = False  # only the grown heads' query/key/value/output weights learn: the
    # trained heads keep reading shapes while the new ones learn existence
    per_map: int = 1  # exist-symbolic: questions asked about each symbolic map; they share
    # its image prefix, so more per map cost fewer prefixes a step
    scene_reuse: int = 1  # consecutive items that draw their views and questions from one scene:
    # on few cores the loader's drawing, not the model, bounds a step, and a
    # frame costs more to draw than its crops
    kind: str = ""  # what the stage trains when its name says something else ("vision" for a second
    # vision stage named "vision-mixed"); "": its name
    scene_style: str = ""  # this stage's scenes (TrainConfig.scene_style's values); "": the recipe's
    method_prompts: bool | None = None  # ask the baselines' prompts in this stage; None: the recipe's
    mixed_precision: bool | None = None  # bfloat16 autocast in this stage; None: the recipe's
    frozen_layers: int = 0  # LM stages: the first N decoder layers keep their weights, so a FOCUS
    # layer range inside them keeps its value vectors and relevance maps while later layers learn
    paired: float = 0.0  # LM stages: share of crops also asked ViCrop's answer prompt (frame, then
    # crop, in one sequence): the attention crop's answer format, which single-image questions never show
    near_negatives: float = 0.0  # share of existence negatives asking a colour nearest to one the
    # view shows (data.NEAR_COLORS): other colours of the frame alone left purple beside red "present"

    @property
    def task(self) -> str:
        """What the stage trains (``kind``, else its name): the trainer and the loader dispatch on it."""
        return self.kind or self.name


@dataclass(frozen=True)
class TrainConfig:
    """The whole recipe: seeds, scene sizes and the stages in order."""

    seed: int = 20251125
    heldout_seed: int = 987654  # never drawn in training; the gates use it
    shape: ModelShape = ModelShape()
    # Training scenes: the benchmark's layout and object sizes on smaller frames (4x cheaper to draw;
    # objects are sized relative to the frame, so the down-scaled views look alike).
    train_short_side: tuple[int, int] = (1080, 1600)
    crop_scale: tuple[float, float] = (2.0, 10.0)  # crop side / target side: the windows croppers propose
    legible_px: float = 12.0  # an object at least this big in the 128 px view shows its shape
    # > 0: LM layer 0 starts with the same query and key projection onto the rotary-slow dimensions,
    # so a colour word attends to the image slots holding its aligned embedding from step 0 (see
    # existence_first()). Initialisation only; no loss ever touches attention or value vectors.
    match_init_gain: float = 0.0
    match_init_heads: int = 0  # how many layer-0 heads get it (0: all); the others stay free
    visible_px: float = 2.0  # smaller than this in the view: not asked about at all
    # bfloat16 autocast for every training step (weights, optimiser and gates stay float32): faster on
    # CPUs with native bfloat16
    mixed_precision: bool = False
    # > 0: in the vision stage no object weighs more than this many patches (vision_loss): per-patch
    # weights let large objects dominate, and shape reading at 1/8 of a crop (2 x 2 patches) lagged
    vision_object_cap: int = 0
    # "plain": the benchmark's generator (muted backgrounds); "varied": scene_styles' randomised
    # backgrounds (natural images, saturated gradients), distractors and object styles, so that
    # colour-word relevance cannot learn "the saturated blob" of one generator
    scene_style: str = "plain"
    # also train the baselines' prompts (ZoomEye's existence / latent / answering questions, ViCrop's
    # answer instruction): a baseline asking questions the model never saw would be measured unfairly
    method_prompts: bool = False
    stages: tuple[StageConfig, ...] = (
        StageConfig("vision", steps=1500, lr=2e-3, scenes_per_step=6, crops_per_scene=5),
        StageConfig("align", steps=600, lr=2e-3, scenes_per_step=6, crops_per_scene=5),
        StageConfig(
            "tune-crops",
            steps=500,
            lr=1e-3,
            scenes_per_step=4,
            crops_per_scene=6,
            frames=False,
            max_sequences=64,
            symbolic=0.5,
        ),
        StageConfig("tune", steps=1500, lr=1e-3, scenes_per_step=4, crops_per_scene=5, max_sequences=64, symbolic=0.2),
    )

    def scaled(self, factor: float) -> TrainConfig:
        """The same recipe with every stage's step count multiplied by ``factor`` (tests, smoke runs)."""
        return replace(
            self,
            stages=tuple(
                replace(s, steps=max(1, int(round(s.steps * factor))), warmup=max(1, int(round(s.warmup * factor))))
                for s in self.stages
            ),
        )

    def with_steps(self, **steps: int) -> TrainConfig:
        """The same recipe with the step counts of the stages named in ``steps`` (``tune_crops=``
        for ``tune-crops``) replaced; warm-up is kept at most a tenth of a stage."""
        cfg = self
        for name, n in steps.items():
            warmup = cfg.stage(name).warmup
            cfg = cfg.with_stage(name, steps=n, warmup=min(warmup, max(1, n // 10)))
        return cfg

    def with_stage(self, stage: str, /, **fields) -> TrainConfig:
        """The same recipe with ``fields`` of the stage named ``stage`` (``tune_crops`` or
        ``tune-crops``) replaced; an unknown stage or field, or the stage's name, is refused."""
        bad = set(fields) - set(StageConfig.__dataclass_fields__) | ({"name"} & set(fields))
        if bad:
            raise ValueError(f"StageConfig has no settable field(s) {sorted(bad)}")
        at = self.stage_index(stage)
        return replace(self, stages=tuple(replace(s, **fields) if i == at else s for i, s in enumerate(self.stages)))

    def stage(self, name: str) -> StageConfig:
        """The stage ``name`` (``tune_crops`` or ``tune-crops``) of the recipe."""
        return self.stages[self.stage_index(name)]

    def stage_index(self, name: str) -> int:
        """Where the stage ``name`` (``tune_crops`` or ``tune-crops``) is in the recipe."""
        keys = [st.name.replace("-", "_") for st in self.stages]
        if name.replace("-", "_") not in keys:
            raise ValueError(f"no stage {name!r} in this recipe (stages: {', '.join(keys)})")
        return keys.index(name.replace("-", "_"))

    def smaller_batches(self, factor: float = 0.5) -> TrainConfig:
        """The same stages and step counts with ``factor`` times the scenes and LM sequences per
        step: as many updates for less compute (a loader process draws the scenes beside training,
        so a step's scenes bound its time)."""
        return replace(
            self,
            stages=tuple(
                replace(
                    st,
                    scenes_per_step=max(1, int(round(st.scenes_per_step * factor))),
                    max_sequences=max(1, int(round(st.max_sequences * factor))),
                )
                for st in self.stages
            ),
        )

    def reuse_scenes(self, k: int = 2, skip: Sequence[str] = ()) -> TrainConfig:
        """The same stages, views and questions per step, with every ``k`` consecutive items drawn
        from one scene (``StageConfig.scene_reuse``): 1/k of the frames to draw, as many crops.
        Stages named in ``skip`` keep one item a scene."""
        return replace(self, stages=tuple(s if s.name in skip else replace(s, scene_reuse=k) for s in self.stages))

    def __post_init__(self):
        # the gates read the held-out seed's scenes: no stage may train on them
        if self.heldout_seed in {self.stage_seed(i) for i in range(len(self.stages))}:
            raise ValueError(f"seed {self.seed}: a stage would draw the held-out scenes (seed {self.heldout_seed})")

    def stage_seed(self, stage_index: int) -> int:
        return self.seed * 10 + stage_index

    def existence_first(
        self, symbolic_steps: int = 3000, heads: int = 0, release: int = 0, **steps: int
    ) -> TrainConfig:
        """The existence-first variant: the matching initialisation of LM layer 0 (on ``heads``
        heads, 0: all) plus a stage of existence questions on symbolic label maps (no scenes drawn)
        between alignment and tuning; ``release`` heads get their random query/key back when
        tuning starts; ``steps`` overrides other stages' step counts as :meth:`with_steps` does.
        The matching initialisation gives a small LM the word-to-slot matching head that it does not
        find from a random start; the README ("Embedded model") says what it cost."""
        stages = [
            replace(s, release_heads=release if s.name == "tune-crops" else 0) for s in self.with_steps(**steps).stages
        ]
        at = [s.name for s in stages].index("align") + 1
        stages.insert(at, StageConfig("exist-symbolic", steps=symbolic_steps, lr=1e-3, max_sequences=64, warmup=100))
        return replace(self, match_init_gain=MATCH_GAIN, match_init_heads=heads, stages=tuple(stages))

    def more_crops(self, crops: int = 15, stages: Sequence[str] = ("vision", "align")) -> TrainConfig:
        """The same recipe with ``crops`` crops per scene in ``stages``: a scene's crops cost
        almost nothing next to drawing the scene and its frame, and crops carry nearly all the shape
        labels (objects legible at >= ``legible_px``), so the vision tower sees more shapes per second."""
        return replace(
            self, stages=tuple(replace(s, crops_per_scene=crops) if s.name in stages else s for s in self.stages)
        )

    def grown_existence(
        self,
        grow: int = 4,
        match: int = 2,
        symbolic_steps: int = 400,
        crop_steps: int = 700,
        joint_steps: int = 600,
        new_heads_only: bool = False,
        per_map: int = 1,
    ) -> TrainConfig:
        """The recipe followed by three stages that add existence without taking heads from shape
        reading: every LM layer grows ``grow`` heads (output starting at zero, so the model still
        computes what it did; the first ``match`` of layer 0 with the matching initialisation),
        then symbolic existence, existence and shape on crops, and a joint tune at half the
        learning rate. With ``new_heads_only`` the first two of them train only the grown heads;
        ``per_map`` existence questions share each symbolic map of the first stage.
        Starting from a saved model of the recipe (``Trainer(init_from=..., start_stage=4)``)
        reruns just these stages."""
        return replace(
            self,
            stages=self.stages
            + (
                StageConfig(
                    "exist-symbolic",
                    steps=symbolic_steps,
                    lr=1e-3,
                    max_sequences=64,
                    warmup=50,
                    grow_heads=grow,
                    match_heads=match,
                    new_heads_only=new_heads_only,
                    per_map=per_map,
                ),
                StageConfig(
                    "exist-crops",
                    steps=crop_steps,
                    lr=1e-3,
                    scenes_per_step=4,
                    crops_per_scene=6,
                    frames=False,
                    max_sequences=64,
                    symbolic=0.5,
                    new_heads_only=new_heads_only,
                ),
                StageConfig(
                    "tune-joint",
                    steps=joint_steps,
                    lr=5e-4,
                    scenes_per_step=4,
                    crops_per_scene=5,
                    max_sequences=64,
                    symbolic=0.2,
                ),
            ),
        )


# The recipes the training script offers (--recipe): the default, the transfer candidate, and the
# variants the scripts, tests and docs still run. What each measured is in docs/embedded-model.md.
RECIPES = {
    # the default's first seven stages (the default before its eighth): the four stages with 15 crops
    # per scene in vision and alignment, then the grown-head stages, under bfloat16 autocast (fast on
    # CPUs with native bfloat16)
    "full-bf16": replace(TrainConfig().more_crops().grown_existence(), mixed_precision=True),
    # the same in float32: for devices whose bfloat16 is slow or absent
    "default-fp32": TrainConfig().more_crops().grown_existence(),
    # float32 sized for a few-core CPU whose bfloat16 is slow: 8 existence questions per symbolic map
    # share its prefix, and two items per drawn scene, since drawing scenes bounds every stage there
    "reuse-fp32": TrainConfig().more_crops().grown_existence(per_map=8).reuse_scenes(2),
    # reuse-fp32 with one item a scene in the vision stage: shape reading needs distinct scenes
    "vision-distinct": TrainConfig().more_crops().grown_existence(per_map=8).reuse_scenes(2, skip=("vision",)),
    # reuse-fp32 with each object's patches capped at 4 patches' weight in the vision loss, so that
    # small targets count as much as large ones
    "small-objects": replace(
        TrainConfig().more_crops().grown_existence(per_map=8).reuse_scenes(2), vision_object_cap=4
    ),
    # full-bf16 with 8 questions per map and fewer steps: a former default, kept to reproduce it
    "cut-bf16": replace(
        TrainConfig()
        .more_crops()
        .grown_existence(per_map=8)
        .with_steps(vision=1300, tune_crops=450, tune=1100, exist_crops=600, tune_joint=450),
        mixed_precision=True,
    ),
    # default-fp32 on a 192 px view through 8 px patches: a 24 x 24 grid (LLaVA-1.5's), so targets
    # smaller than a patch of the 16 x 16 grid cover a cell; sizes in view pixels scale with the view
    "grid-24": replace(
        TrainConfig().more_crops().grown_existence(),
        shape=ModelShape(image_size=192, patch_size=8),
        legible_px=18.0,
        visible_px=3.0,
    ),
    # the default's updates with half the scenes and sequences each (TrainConfig.smaller_batches()):
    # whether fewer scenes a step cost shape reading
    "half-batch": TrainConfig().more_crops().grown_existence().smaller_batches(),
    # the existence-first variant with heads 2-3 freed for tuning (800 tuning steps, the run the
    # README reports)
    "existence-release": TrainConfig().existence_first(release=2, tune=800),
}
# the seven stages on varied scenes (scene_styles: natural and saturated backgrounds, distractors,
# object styles) and with every method's prompts in its questions: the candidate whose finding should
# transfer to scenes of another renderer (check with focus-scenes --renderer eval)
RECIPES["transfer"] = replace(RECIPES["full-bf16"], scene_style="varied", method_prompts=True)
# a fine-tune of a trained default model (--init-from DIR): its alignment again, then its joint tune,
# on plain and varied scenes in turn. The projector decides which patches a colour word's layer-0
# relevance singles out, so it is what must learn that a colourful background is no object; the
# joint tune lets the LM read the re-aligned image tokens
RECIPES["mixed-ft"] = replace(
    RECIPES["full-bf16"],
    scene_style="mixed",
    stages=tuple(s for s in RECIPES["full-bf16"].stages if s.name in ("align", "tune-joint")),
)
# mixed-ft with the vision tower tuned first: a saved model keeps no stage-1 heads, so fresh heads
# learn to read the tower before both train on the mixed scenes
RECIPES["mixed-ft-vision"] = replace(
    RECIPES["mixed-ft"],
    stages=(
        StageConfig("vision-heads", steps=200, lr=2e-3, scenes_per_step=6, crops_per_scene=15),
        StageConfig("vision", steps=600, lr=1e-3, scenes_per_step=6, crops_per_scene=15),
    )
    + RECIPES["mixed-ft"].stages,
)
# the default recipe from scratch on plain and varied scenes in turn, with every method's prompts:
# mixed-ft-vision showed that a tower tuned on varied scenes finds targets of another renderer more
# often while plain scenes keep home reading; from scratch it costs no second run
RECIPES["mixed"] = replace(RECIPES["full-bf16"], scene_style="mixed", method_prompts=True)


def _curriculum(base: TrainConfig) -> TrainConfig:
    stages: list[StageConfig] = []
    for s in base.stages:
        if s.name in ("align", "tune-joint"):
            s = replace(s, scene_style="mixed")
        if s.task not in ("vision", "align"):
            s = replace(s, method_prompts=s.name == "tune-joint")
        stages.append(s)
        if s.name == "vision":
            stages.append(
                StageConfig("vision-mixed", steps=500, lr=1e-3, crops_per_scene=15, kind="vision", scene_style="mixed")
            )
    return replace(base, method_prompts=True, stages=tuple(stages))


# the default with a curriculum of scenes, one run: the tower learns the generator's plain scenes,
# then plain and varied ones in turn (mixed-ft-vision showed that this makes finding transfer while
# home reading stays; from scratch on mixed scenes the tower was under-trained); the alignment and
# the joint tune see both kinds, the joint tune also every method's prompts. The LM's middle stages
# stay on plain scenes, as in the default. Steps trimmed to pay for the second tower stage
RECIPES["curriculum"] = _curriculum(RECIPES["full-bf16"].with_steps(vision=1400, tune=1400, exist_crops=650))


def _plain_then_mixed(base: TrainConfig) -> TrainConfig:
    stages = [replace(s, method_prompts=False) for s in base.stages if s.name != "tune-joint"]
    stages += [
        StageConfig("vision-mixed", steps=500, lr=1e-3, crops_per_scene=15, kind="vision", scene_style="mixed"),
        replace(
            base.stage("align"), name="align-mixed", kind="align", steps=400, scene_style="mixed", method_prompts=False
        ),
        replace(base.stage("tune-joint"), steps=500, scene_style="mixed", method_prompts=True),
    ]
    return replace(base, method_prompts=True, stages=tuple(stages))


# mixed-ft-vision's order in one run: the default's stages on plain scenes up to its existence
# stages, then the tower, the alignment and the joint tune on plain and varied scenes in turn, the
# joint tune with every method's prompts. Unlike the curriculum, the LM learns on plain-aligned
# tokens before the tower moves (mixed-ft-vision kept its pointing, the curriculum lost it); the
# default's own joint tune is left out, as the mixed one follows, and steps trimmed for two hours
RECIPES["plain-then-mixed"] = _plain_then_mixed(
    RECIPES["full-bf16"].with_steps(vision=1250, tune=1250, exist_crops=550)
)
# the seven stages, then their joint tune again on plain and varied scenes in turn with every
# method's prompts (the tokenizer stays the default's: byte-level BPE encodes any prompt), so the
# baselines ask questions the model was trained on; the tower and the projector, which decide where a
# colour word's relevance lands, stay as the default left them. `--init-from models/embedded
# --start-stage 7` on a model of the seven stages runs only the eighth stage (every stage opens a
# fresh optimiser and draws its scenes from its own seed: the same weights as one run)
RECIPES["method-tune"] = replace(
    RECIPES["full-bf16"],
    stages=RECIPES["full-bf16"].stages
    + (
        replace(
            RECIPES["full-bf16"].stage("tune-joint"),
            name="tune-methods",
            kind="tune-joint",
            steps=450,
            scene_style="mixed",
            method_prompts=True,
        ),
    ),
)
# method-tune with LM layer 0 frozen in its eighth stage: the embedded model's FOCUS layer range is
# layer 0, so its value vectors, and with them every relevance map, stay the seven stages' while the
# later layers learn the baselines' prompts on mixed scenes. That stage trains in float32: on CPUs
# without native bfloat16 autocast made its steps 7x slower, and with it the stage is short either way
RECIPES["method-tune-frozen"] = RECIPES["method-tune"].with_stage(
    "tune-methods", frozen_layers=1, mixed_precision=False
)
# method-tune-frozen with ViCrop's answer prompt ([frame, crop] in one sequence) on a third of the
# crops, so the attention crop answers in a format the model has seen, and a third of the existence
# negatives asking a colour nearest to a shown one (method-tune-frozen said "yes" to purple beside a
# red and a blue object); fewer steps keep the recipe within two hours on two cores
RECIPES["method-tune-paired"] = RECIPES["method-tune-frozen"].with_stage(
    "tune-methods", steps=230, paired=0.3, near_negatives=0.3
)
# the default: what made models/embedded
RECIPES["default"] = RECIPES["method-tune-frozen"]
# recipes that continue a trained model: the training script refuses them without --init-from
FINETUNES = ("mixed-ft", "mixed-ft-vision")


def with_defaults(cls, saved: dict) -> dict:
    """``saved`` (an ``asdict`` of dataclass ``cls`` from an older checkpoint) with the fields added
    since at their defaults."""
    defaults = {f.name: f.default for f in cls.__dataclass_fields__.values() if f.default is not MISSING}
    return {**{k: asdict(v) if hasattr(v, "__dataclass_fields__") else v for k, v in defaults.items()}, **saved}


__all__ = ["FINETUNES", "MATCH_GAIN", "ModelShape", "VISION_SHAPE_FIELDS", "StageConfig", "TrainConfig", "RECIPES"]
