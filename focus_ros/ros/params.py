"""Every parameter of the focus node, declared once, with descriptions, ranges and validation.

``model.*`` and ``search.*`` come from :func:`focus_ros.core.config.parameter_table` (the same
names, defaults and validation as the command-line tools); the node's own parameters are listed
in :data:`NODE_PARAMETERS`. Every parameter has a descriptor with its range (numbers) or allowed
values (strings, also enforced by the set-parameters callback), and an invalid ``ros2 param set``
is refused with the reason. Parameters that size the executor or create the topics are
``read_only`` (set them in the YAML file or on the command line). ``model.*`` is read at
configure and fixed at start (YAML, launch, ``-p``): any peer on the DDS domain can call
``set_parameters``, and a changed path is a different model, or a download. Only a node started
with ``allow_model_change: true`` accepts a ``model.*`` set, and then only while unconfigured
(e.g. after a configure that failed on a bad path); either refusal says why. ``search.*`` and
the other dynamic parameters can be changed at run time; a valid ``search.*`` change applies to
the next question.

``search.*`` defaults depend on the model family (the paper's settings per model,
``FAMILY_SEARCH_DEFAULTS``): only values the user set (parameter file, command line, launch or
``ros2 param set``) override the family's defaults, and after ``configure`` the parameters show
the values actually in use.

The node's own parameters are read in one place, :func:`read_settings`, into a frozen
:class:`NodeSettings` snapshot (:attr:`NodeParameters.current`) that the set-parameters callback
replaces as a whole after every accepted change: the node reads the snapshot, never a parameter,
so one question or frame sees one consistent set of values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.config import (
    SEARCH_LIMITS,
    ModelConfig,
    SearchConfig,
    build_configs,
    check_tiles,
    default_model_path,
    parameter_table,
)
from ..core.methods import METHODS
from ..io.images import MIN_IMAGE_SIDE
from .param_docs import MODEL_DOCS, SEARCH_DOCS


@dataclass(frozen=True)
class Spec:
    """One parameter: default, description, range or choices, and whether it is read-only."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[str, ...] = ()
    configure_time: bool = False  # settable only while unconfigured (read at configure)


RELIABILITIES = ("best_effort", "reliable")
QOS_TOPICS = {
    # group: (default reliability, default depth, what it applies to)
    "image": (
        "best_effort",
        1,
        "camera subscriptions (image, image/compressed, depth/image, camera_info); sensor-data QoS",
    ),
    # keep-last drops the oldest unseen sample when a burst outgrows it: hold a burst of 100 questions
    "question": (
        "reliable",
        100,
        "the question subscriptions: question (std_msgs/String) and request (focus_ros/Question)",
    ),
    # each question in the burst, and each held ask / query request (REQUEST_QOS, 1000), may be answered BUSY
    # at once; a subscriber must be reliable with a depth >= its burst as well (docs/reliability.md)
    "answer": ("reliable", 1000, "the answer publisher (focus_ros/FocusResult)"),
    "relevance": (
        "reliable",
        1,
        "the relevance_map and relevance_overlay publishers, their camera_info and markers "
        "(reliable also reaches best-effort subscribers such as RViz's default)",
    ),
}

NODE_PARAMETERS: tuple[Spec, ...] = (
    Spec(
        "allow_model_change",
        False,  # whoever starts the node picks the model, not any peer that can call set_parameters
        "accept 'ros2 param set' of model.* (then only while the node is unconfigured); false: model.* is "
        "fixed at start (parameter file, launch, -p)",
        read_only=True,
    ),
    Spec(
        "autostart",
        False,
        "configure and activate right after start (the executable; launch files use lifecycle events instead)",
        read_only=True,
    ),
    Spec(
        "cameras",
        ["camera"],
        "camera names; the first is the default for questions. One camera subscribes "
        "to 'image' and 'image/compressed', several to '<name>/image' and '<name>/image/compressed' "
        "(remap them)",
        read_only=True,
    ),
    Spec(
        "image_transport",
        "both",
        "which camera topics to subscribe: raw (sensor_msgs/Image), compressed "
        "(sensor_msgs/CompressedImage) or both (the same stamp over both keeps the raw frame)",
        read_only=True,
        choices=("raw", "compressed", "both"),
    ),
    Spec(
        "queue_size",
        4,
        "questions waiting for the model at most; one more is refused at once with status BUSY",
        read_only=True,
        low=1,
        high=64,
    ),
    Spec(
        "frame_store_size",
        4,
        "latest frames kept per camera (questions may name one by stamp)",
        read_only=True,
        low=1,
        high=64,
    ),
    Spec(
        "memo_mb",
        64,
        "MiB kept of per-frame results (relevance maps, existence confidences) so a second question on a "
        "cached frame reuses them; least recently used first out, 0 disables",
        read_only=True,
        low=0,
        high=65536,
    ),
    Spec(
        "prefill_on_arrival",
        False,
        "keep the image prefix of the default camera's latest frame prefilled "
        "while idle, so a question asked now answers faster (costs model time on every new frame)",
    ),
    Spec(
        "max_frame_age",
        5.0,
        "refuse to answer about a latest frame older than this, seconds, by its "
        "header stamp (receive time for unstamped frames); 0 disables; /diagnostics warns about a camera "
        "silent this long (5 s when 0)",
        low=0.0,
        high=86400.0,
    ),
    Spec(
        "stamp_tolerance",
        0.0,
        "a question naming a frame stamp takes the stored frame nearest to it within this many seconds (0: exact)",
        low=0.0,
        high=60.0,
    ),
    Spec(
        "future_stamp_tolerance",
        # clocks of machines synced by NTP/PTP differ by ms, /clock of a bag player lags by its period (25 ms)
        0.5,
        "drop camera frames stamped more than this many seconds ahead of the node's clock (and refuse "
        "questions about a stored one that is); 0 disables; not checked while the node's clock is 0 "
        "(use_sim_time before the first /clock)",
        low=0.0,
        high=86400.0,
    ),
    Spec(
        "depth.enabled",
        True,
        "subscribe each camera's registered depth image (depth/image: 16UC1 millimetres or 32FC1 metres) "
        "and give every target a 3-D point; paired with the analysed frame by stamp within "
        "depth.stamp_tolerance (camera_info, for pan/tilt, is subscribed either way)",
        read_only=True,
    ),
    Spec(
        "depth.stamp_tolerance",
        # a driver's registered depth may carry its own capture stamp, a few ms from the colour frame's
        0.02,
        "a depth image is paired with the colour frame nearest its stamp within this many seconds "
        "(0: only the exact stamp)",
        low=0.0,
        high=60.0,
    ),
    Spec(
        "method",
        "focus",
        "answering method: focus (visual search) or vanilla (whole frame, one pass), "
        "or one of the baselines (zoom, attention, random)",
        choices=METHODS,
    ),
    Spec(
        "max_image_side",
        8192,
        "refuse camera frames whose longer side is above this, px, at intake (before "
        "anything of their size is allocated; a compressed frame's size is read from its header)",
        low=MIN_IMAGE_SIDE,
        high=1_000_000_000,
    ),
    Spec(
        "max_frame_bytes",
        # a 3840x2160 rgba16 frame, the largest common camera frame, is 63.3 MiB
        64 * 2**20,
        "refuse camera frames (raw, compressed, depth) whose data is larger than this many bytes, at intake, "
        "before their bytes are looked at",
        low=1024,
        high=2**40,
    ),
    Spec(
        "max_question_length",
        2000,
        "refuse questions longer than this many characters (a long question costs model time and context)",
        low=1,
        high=1_000_000,
    ),
    Spec(
        "max_question_tokens",
        # a question is a sentence or two (~20-60 tokens); 256 leaves room for options and detail
        256,
        "refuse questions longer than this many tokens of the loaded model's tokenizer, before queuing "
        "(the prompt, and so every pass of the question, grows with them)",
        low=1,
        high=1_000_000,
    ),
    Spec(
        "max_question_seconds",
        # a robot acts on answers within seconds; a minute covers a slow CPU model with a full queue
        60.0,
        "end a question not answered this many seconds after it was accepted (queue waiting included) "
        "with an ERROR saying 'deadline'; checked between model passes, so the running pass (and an "
        "answer stage already begun) finishes first; 0 disables",
        low=0.0,
        high=86400.0,
    ),
    Spec(
        "publish_relevance",
        True,
        "publish relevance_map and relevance_overlay (only computed while they have subscribers)",
    ),
    Spec(
        "relevance_encoding",
        "rgb8",
        "relevance_map encoding: rgb8 (colour heat-map) or mono8 (0..255)",
        choices=("rgb8", "mono8"),
    ),
    Spec(
        "overlay_max_side",
        960,
        "longer side of relevance_map / relevance_overlay images, px (the frame "
        "is down-scaled; boxes are drawn in scaled coordinates)",
        low=64,
        high=8192,
    ),
) + tuple(
    spec
    for group, (rel, depth, what) in QOS_TOPICS.items()
    for spec in (
        Spec(f"qos.{group}.reliability", rel, f"reliability of {what}", read_only=True, choices=RELIABILITIES),
        Spec(f"qos.{group}.depth", depth, f"history depth (keep last) of {what}", read_only=True, low=1, high=1000),
    )
)


def _core_specs() -> tuple[Spec, ...]:
    specs = []
    for name, (default, _type) in parameter_table().items():
        group, leaf = name.split(".", 1)
        if group == "model":
            doc, choices = MODEL_DOCS.get(name, ("see focus_ros/core/config.py", ()))
            specs.append(
                Spec(
                    name,
                    default,
                    f"{doc} (read at configure; fixed at start unless allow_model_change, then settable only "
                    "while unconfigured)",
                    choices=choices,
                    configure_time=True,
                )
            )
        else:
            doc, low, high, choices = SEARCH_DOCS.get(leaf, ("see focus_ros/core/config.py", None, None, ()))
            low, high = SEARCH_LIMITS.get(leaf, (low, high))
            specs.append(
                Spec(
                    name,
                    default,
                    f"{doc}; default depends on the model family (shown after configure), applies to the next question",
                    low=low,
                    high=high,
                    choices=choices,
                )
            )
    return tuple(specs)


def all_specs() -> tuple[Spec, ...]:
    """Every parameter the node declares, in declaration order."""
    return NODE_PARAMETERS + _core_specs()


def undocumented_core_parameters() -> list[str]:
    """``model.*`` / ``search.*`` settings of the core without a description here (should be none)."""
    out = []
    for name in parameter_table():
        group, leaf = name.split(".", 1)
        if (group == "model" and name not in MODEL_DOCS) or (group == "search" and leaf not in SEARCH_DOCS):
            out.append(name)
    return out


def _descriptor(spec: Spec) -> ParameterDescriptor:
    text = spec.description
    if spec.choices:
        text += f" [one of: {', '.join(spec.choices)}]"
    d = ParameterDescriptor(name=spec.name, description=text, read_only=spec.read_only)
    constraints = []
    if spec.choices:
        constraints.append(f"one of: {', '.join(spec.choices)}")
    if spec.configure_time:
        constraints.append(
            "read-only unless allow_model_change is true, and then settable only while the node is unconfigured "
            "(read at configure)"
        )
    d.additional_constraints = "; ".join(constraints)
    if spec.low is not None and spec.high is not None and not isinstance(spec.default, bool):
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [
                FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
            ]
    return d


@dataclass(frozen=True)
class NodeSettings:
    """The node's own parameters (:data:`NODE_PARAMETERS`) at one moment; defaults and ranges are
    the :class:`Spec` entries, ``model.*`` / ``search.*`` go into ModelConfig / SearchConfig."""

    allow_model_change: bool  # model.* may be set at run time (while unconfigured)
    autostart: bool  # the executable configures and activates at once
    cameras: tuple[str, ...]  # the first is the default camera of questions
    image_transport: str  # raw, compressed or both
    queue_size: int  # questions waiting at most; one more is BUSY
    frame_store_size: int  # frames kept per camera
    memo_mb: int  # MiB of per-frame memo (relevance maps, existence confidences) in the pipeline
    qos: Mapping[str, QoSProfile]  # per QOS_TOPICS group
    prefill_on_arrival: bool  # prefill the default camera's latest frame while idle
    max_frame_age: float  # s; 0: no limit
    stamp_tolerance: float  # s; a question naming a stamp takes a frame this near
    future_stamp_tolerance: float  # s; frames stamped further ahead of the node's clock are refused; 0: off
    depth_enabled: bool  # depth/image subscribed, 3-D points computed
    depth_stamp_tolerance: float  # s; a depth image pairs with the colour frame this near
    method: str  # one of METHODS
    max_image_side: int  # px; larger frames are refused at intake
    max_frame_bytes: int  # bytes of a frame message's data; larger ones are refused at intake
    max_question_length: int  # characters
    max_question_tokens: int  # tokens of the loaded model's tokenizer
    max_question_seconds: float  # s from acceptance to answer; 0: no deadline
    publish_relevance: bool  # relevance_map / relevance_overlay at all
    relevance_encoding: str  # rgb8 or mono8
    overlay_max_side: int  # px, longer side of the relevance images

    def validate(self) -> None:
        """ValueError with a clear reason when the start-up settings do not make sense (checked at
        configure: ``cameras`` is read-only, so only a parameter file or the command line sets it)."""
        cameras = self.cameras
        if not cameras:
            raise ValueError("parameter 'cameras' is empty: name at least one camera")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"parameter 'cameras' lists a camera twice: {list(cameras)}")
        for c in cameras:
            err = _camera_name_error(c)
            if err:
                raise ValueError(err)


def read_settings(get: Callable[[str], Any]) -> NodeSettings:
    """The snapshot of the node's own parameters; ``get(name)`` is a parameter's value."""
    qos = {group: qos_profile(get(f"qos.{group}.reliability"), get(f"qos.{group}.depth")) for group in QOS_TOPICS}
    return NodeSettings(
        allow_model_change=bool(get("allow_model_change")),
        autostart=bool(get("autostart")),
        cameras=tuple(str(c) for c in get("cameras")),
        image_transport=str(get("image_transport")),
        queue_size=int(get("queue_size")),
        frame_store_size=int(get("frame_store_size")),
        memo_mb=int(get("memo_mb")),
        qos=MappingProxyType(qos),
        prefill_on_arrival=bool(get("prefill_on_arrival")),
        max_frame_age=float(get("max_frame_age")),
        stamp_tolerance=float(get("stamp_tolerance")),
        future_stamp_tolerance=float(get("future_stamp_tolerance")),
        depth_enabled=bool(get("depth.enabled")),
        depth_stamp_tolerance=float(get("depth.stamp_tolerance")),
        method=str(get("method")),
        max_image_side=int(get("max_image_side")),
        max_frame_bytes=int(get("max_frame_bytes")),
        max_question_length=int(get("max_question_length")),
        max_question_tokens=int(get("max_question_tokens")),
        max_question_seconds=float(get("max_question_seconds")),
        publish_relevance=bool(get("publish_relevance")),
        relevance_encoding=str(get("relevance_encoding")),
        overlay_max_side=int(get("overlay_max_side")),
    )


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        durability=DurabilityPolicy.VOLATILE,
        reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE,
    )


def layer_range_problem(start: float, end: float, num_layers: int | None = None) -> str | None:
    """Why ``search.layer_start`` / ``layer_end`` select no layer (None when they select some).

    Values <= 1 are fractions of depth, larger ones indices (core/relevance.py). Without the
    model's depth only two values in the same convention can be compared."""
    if num_layers:

        def pos(x: float) -> int:
            return int(round(x * num_layers)) if x <= 1.0 else int(x)

        lo, hi = pos(start), min(pos(end), num_layers)
        if lo >= hi:
            return (
                f"search.layer_start {start:g} .. layer_end {end:g} selects no layer of this model's "
                f"{num_layers} (layer {lo} .. {hi})"
            )
        return None
    if (start <= 1.0) == (end <= 1.0) and start >= end:
        return f"search.layer_start ({start:g}) must be below search.layer_end ({end:g})"
    return None


def _camera_name_error(name: str) -> str | None:
    if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
        return f"camera name {name!r} must be a valid topic token (letters, digits, '_'; not starting with a digit)"
    return None


MODEL_FIXED = (
    "read-only: the model is fixed at start (parameter file, launch, -p). To allow changing model.* while "
    "the node is unconfigured, start it with allow_model_change true (-p allow_model_change:=true, or the "
    "launch argument allow_model_change:=true)"
)


class NodeParameters:
    """Declares the node's parameters and keeps track of which ``search.*`` values the user set."""

    def __init__(self, node: Any):
        self.node = node
        self.specs = {s.name: s for s in all_specs()}
        overrides = getattr(node, "_parameter_overrides", {}) or {}
        # Values from a parameter file, the command line or a launch file are the user's choice.
        self.user_set: set[str] = {n for n in overrides if n.startswith("search.")}
        self._internal = False
        self.search_changed = False
        self.listeners: list[Callable[[list[Parameter]], None]] = []
        # Set by the node: why model.* cannot change now (None: it can), and the loaded model's depth.
        self.model_change_refusal: Callable[[], str | None] = lambda: None
        self.model_layers: Callable[[], int | None] = lambda: None
        self.model_family: Callable[[], str | None] = lambda: None  # the loaded model's family
        for spec in self.specs.values():
            node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        self.current: NodeSettings = read_settings(self.get)
        node.add_pre_set_parameters_callback(self._coerce)
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._applied)

    # ------------------------------------------------------------------ reading
    def get(self, name: str) -> Any:
        return self.node.get_parameter(name).value

    def settings(self) -> NodeSettings:
        """The current snapshot, checked; ValueError with a clear reason when it does not make sense."""
        settings = self.current
        settings.validate()
        return settings

    def search_values(self) -> dict[str, Any]:
        return {n.split(".", 1)[1]: self.get(n) for n in self.specs if n.startswith("search.")}

    def configs(self) -> tuple[ModelConfig, SearchConfig]:
        """(ModelConfig, SearchConfig) from the parameters via ``build_configs``.

        Every ``model.*`` value is passed; of ``search.*`` only what the user set, so the model
        family's paper defaults apply to the rest.
        """
        values: dict[str, Any] = {n: self.get(n) for n in self.specs if n.startswith("model.")}
        if not values.get("model.path"):
            values["model.path"] = default_model_path()  # the embedded default model
        values.update({n: self.get(n) for n in sorted(self.user_set)})
        return build_configs(values)

    def search_config(self) -> SearchConfig:
        """The SearchConfig the current ``search.*`` parameter values describe (validated)."""
        cfg = SearchConfig(**self.search_values())
        cfg.validate()
        return cfg

    def show_effective(self, search: SearchConfig) -> None:
        """After configure: make every ``search.*`` parameter show the value in use."""
        updates = []
        for f in dataclasses.fields(search):
            name = f"search.{f.name}"
            value = getattr(search, f.name)
            if name in self.specs and self.get(name) != value:
                updates.append(Parameter(name, value=value))
        if updates:
            self._internal = True
            try:
                results = self.node.set_parameters(updates)
            finally:
                self._internal = False
            for p, r in zip(updates, results):
                if not r.successful:
                    self.node.get_logger().warning(f"could not show effective {p.name}={p.value}: {r.reason}")
        self.search_changed = False

    # ------------------------------------------------------------------ callbacks
    def _coerce(self, params: list[Parameter]) -> list[Parameter]:
        """Whole numbers for floating-point parameters become floats: ``ros2 param set ... max_frame_age 10``
        sends an integer, which the descriptor's type check would refuse."""
        out = []
        for p in params:
            spec = self.specs.get(p.name)
            if spec is not None and isinstance(spec.default, float) and p.type_ == Parameter.Type.INTEGER:
                p = Parameter(p.name, value=float(p.value))
            out.append(p)
        return out

    def _validate(self, params: list[Parameter]) -> SetParametersResult:
        search_updates: dict[str, Any] = {}
        for p in params:
            spec = self.specs.get(p.name)
            if spec is None:
                continue  # use_sim_time and other rclpy parameters
            if spec.choices and p.value not in spec.choices:
                return SetParametersResult(
                    successful=False, reason=f"{p.name} must be one of {list(spec.choices)}, got {p.value!r}"
                )
            if spec.configure_time and not self._internal:
                if not self.current.allow_model_change:
                    return SetParametersResult(successful=False, reason=f"{p.name}: {MODEL_FIXED}")
                refusal = self.model_change_refusal()
                if refusal:
                    return SetParametersResult(successful=False, reason=f"{p.name}: {refusal}")
            if p.name.startswith("search."):
                search_updates[p.name.split(".", 1)[1]] = p.value
            if p.type_ == Parameter.Type.STRING_ARRAY and p.name == "cameras":
                for c in p.value:
                    err = _camera_name_error(str(c))
                    if err:
                        return SetParametersResult(successful=False, reason=err)
        if search_updates:
            values = self.search_values()
            values.update(search_updates)
            try:
                search = SearchConfig(**values)
                search.validate()
                family = self.model_family()
                if family:  # settings the loaded model's family cannot run
                    check_tiles(search, family)
            except (TypeError, ValueError) as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            problem = layer_range_problem(values["layer_start"], values["layer_end"], self.model_layers())
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _applied(self, params: list[Parameter]) -> None:
        # One assignment: a reader holds either the old snapshot or the new one, never a mix.
        self.current = read_settings(self.get)
        names = [p.name for p in params]
        if any(n.startswith("search.") for n in names):
            self.search_changed = True
            if not self._internal:
                self.user_set.update(n for n in names if n.startswith("search."))
        if not self._internal:
            for listener in self.listeners:
                listener(params)


__all__ = [
    "Spec",
    "NODE_PARAMETERS",
    "QOS_TOPICS",
    "all_specs",
    "undocumented_core_parameters",
    "NodeSettings",
    "NodeParameters",
    "read_settings",
    "qos_profile",
    "layer_range_problem",
]
