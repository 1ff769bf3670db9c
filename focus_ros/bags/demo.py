"""A demo rosbag2 bag: a synthetic 1920x1080 RGB-D camera stream with timed questions and ground truth.

The scenes are the benchmark's (:func:`focus_ros.eval.scenes.make_scene`) at a fixed 16:9
1920x1080 size, shown one after another, each for ``seconds_per_scene`` at ``rate`` Hz. Topics:

==================================  ===============================  =============================
``/camera/image_raw/compressed``    sensor_msgs/msg/CompressedImage  every frame, JPEG q85, 4:4:4
``/camera/depth/image_raw``         sensor_msgs/msg/Image (16UC1)    every frame, millimetres,
                                                                     registered, 640x360
``/camera/camera_info``             sensor_msgs/msg/CameraInfo       every frame, of the colour
                                                                     image (plumb_bob, D = 0)
``/camera/image_raw``               sensor_msgs/msg/Image (rgb8)     every frame, only ``raw=True``
``/focus/question``                 std_msgs/msg/String              per scene, ``question_delay``
                                                                     after its first frame
==================================  ===============================  =============================

Every frame has its own header stamp (strictly increasing, from a fixed start so the bag is
deterministic) and frame_id ``camera_optical_frame``, shared by its colour image, depth image
and camera_info; a message's log (receive) time in the bag is its header stamp, a question's log
time is when it is asked. ``ground_truth.json`` next to the bag directories holds every question
with its answer, boxes and the stamps of its scene's frames (an answer computed on any of them
is about that scene), the camera's intrinsics, and per question per target the true 3-D point.

Depth comes from the scene's known geometry (:class:`~focus_ros.bags.depth.DemoCamera`): a
pinhole camera (no distortion: the scenes are drawn undistorted) looks down at a table plane that
tilts away from it (1.2 m at the bottom row, 2.5 m at the top); every object is a flat body
facing the camera, 5 cm in front of the nearest table point its box covers, over the pixels
drawn in its colour. The depth image is registered to the colour image at a third of its
resolution (a real RGB-D camera's depth is usually coarser): depth pixel (i, j) shows what colour
pixel (3j + 1, 3i + 1) does. A target's true point is its box's centre pixel back-projected at
its object's depth, in the optical frame (x right, y down, z forward), metres. In the mcap file a
scene's depth and camera_info messages follow its colour frames (see ``write_demo_bag``); readers
return every message in log-time order.

Written with ``rosbags`` (rosbag2 format version 8, read by ``ros2 bag`` of Jazzy and Kilted)
in the ``mcap`` storage (zstd chunk compression, which the rosbag2 mcap plugin reads itself; the
frames of a scene are identical, so they compress away) or ``sqlite3``. ROS-free: never imports
rclpy.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..eval.scenes import QUESTION_TYPES, Scene, SceneSpec, make_scene
from .depth import DEFAULT_CAMERA, DemoCamera, camera_info_fields, depth_image, question_targets
from .io import BAG_VERSION, STORAGES, bag_writer, offered_qos, ros_typestore

logger = logging.getLogger(__name__)

DEFAULT_SEED = 987654  # held out: never used to train the embedded model
START_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z, first frame's stamp
FRAME_ID = "camera_optical_frame"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
RAW_TOPIC = "/camera/image_raw"
QUESTION_TOPIC = "/focus/question"
DEPTH_TOPIC = "/camera/depth/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
GROUND_TRUTH = "ground_truth.json"
GROUND_TRUTH_VERSION = 2
# What load_ground_truth reads: version 1 has no camera, depth or per-target 3-D truth.
READABLE_GROUND_TRUTH_VERSIONS = (1, 2)
DEMO_SPEC = SceneSpec(short_side=(1080, 1080), aspects=(16 / 9,), portrait_share=0.0)

# Defaults of the bundled bag (test/data/demo_bag): a 2 Hz camera, 4 scenes of 4 s, ~3.5 MB in mcap.
# A 1920x1080 JPEG of a scene is ~0.31 MB at quality 85 (0.75 MB at 95: its textured background);
# rosbags closes an mcap chunk past 1 MiB, so ~4 identical frames of a scene share a zstd chunk and
# compress to about one. 4:4:4 chroma keeps the colours of 15 px objects (colour names an object).
DEFAULT_SCENES = 4
DEFAULT_RATE = 2.0
DEFAULT_JPEG_QUALITY = 85
DEFAULT_SECONDS_PER_SCENE = 4.0
DEFAULT_QUESTION_DELAY = 1.0
# The fine detail (shape), a question needing two objects (relation) and one needing every
# instance (count, FOCUS's type 2): each path of the method is exercised on every scene.
DEFAULT_QUESTION_TYPES = ("shape", "relation", "count")


@dataclass
class GroundTruthQuestion:
    """One timed question of a demo bag and what a correct answer is."""

    index: int
    question: str
    answer: str
    type: str
    boxes: list[list[int]]
    time_ns: int  # bag (log) time the question is published at
    scene_index: int
    scene_seed: int
    width: int
    height: int
    first_frame_ns: int  # header stamps of the first / last frame of the scene
    last_frame_ns: int
    # per target (question_targets): phrase, key, every, instances with box, pixel and 3-D point
    targets: list[dict[str, Any]] = field(default_factory=list)

    def covers(self, stamp_ns: int) -> bool:
        """Whether a frame stamped ``stamp_ns`` shows this question's scene."""
        return self.first_frame_ns <= int(stamp_ns) <= self.last_frame_ns


@dataclass
class GroundTruth:
    """The content of ``ground_truth.json``: the generator's settings, scenes and questions."""

    seed: int
    n_scenes: int
    rate: float
    seconds_per_scene: float
    question_delay: float
    question_types: list[str]
    start_ns: int
    frame_id: str
    frame_width: int
    frame_height: int
    frames_per_scene: int
    topics: dict[str, str]
    scenes: list[dict[str, int]]
    questions: list[GroundTruthQuestion] = field(default_factory=list)
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    # the colour camera (CameraInfo topic, size, distortion_model, d, k) and the depth image (topic,
    # size, encoding, unit, table plane, object height); None in a bag without depth (and version 1)
    camera: dict[str, Any] | None = None
    depth: dict[str, Any] | None = None
    version: int = GROUND_TRUTH_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what ``ground_truth.json`` holds), ``version`` first."""
        data = asdict(self)
        return {"version": data.pop("version"), **data}

    def scene_of(self, stamp_ns: int) -> int | None:
        """Index of the scene whose frames include the stamp ``stamp_ns``, or None."""
        for s in self.scenes:
            if s["first_frame_ns"] <= int(stamp_ns) <= s["last_frame_ns"]:
                return s["index"]
        return None

    def for_answer(self, question: str, stamp_ns: int) -> GroundTruthQuestion | None:
        """The question an answer belongs to: same text, asked about the scene the answer's frame
        (its header stamp) shows; None when no question matches."""
        for q in self.questions:
            if q.question == question and q.covers(stamp_ns):
                return q
        return None


def load_ground_truth(path: str | Path) -> GroundTruth:
    """Read ``ground_truth.json``: ``path`` is the file, the directory holding it, or a bag
    directory next to it. Version 1 files (no camera, depth or targets) read with those empty."""
    p = Path(path)
    if p.is_dir():
        p = p / GROUND_TRUTH if (p / GROUND_TRUTH).is_file() else p.parent / GROUND_TRUTH
    data = json.loads(p.read_text())
    if data.get("version") not in READABLE_GROUND_TRUTH_VERSIONS:
        raise ValueError(
            f"{p}: ground truth version {data.get('version')!r}, expected one of {READABLE_GROUND_TRUTH_VERSIONS}"
        )
    data["questions"] = [GroundTruthQuestion(**q) for q in data["questions"]]
    return GroundTruth(**data)


def _storages(storage: str | Sequence[str]) -> list[str]:
    names = list(STORAGES) if storage == "both" else [storage] if isinstance(storage, str) else list(storage)
    bad = [s for s in names if s not in STORAGES]
    if bad or not names:
        raise ValueError(f"storage must be one of {STORAGES} or 'both', got {storage!r}")
    return list(dict.fromkeys(names))


def _frame_times(seconds_per_scene: float, rate: float) -> tuple[int, int, int]:
    """(scene length, frame period, frames per scene), all in ns / counts."""
    scene_ns = int(round(seconds_per_scene * 1e9))
    period_ns = int(round(1e9 / rate))
    return scene_ns, period_ns, max(1, math.ceil(scene_ns / period_ns))


def write_demo_bag(
    out_dir: str | Path,
    storage: str | Sequence[str] = "mcap",
    n_scenes: int = DEFAULT_SCENES,
    seed: int = DEFAULT_SEED,
    seconds_per_scene: float = DEFAULT_SECONDS_PER_SCENE,
    rate: float = DEFAULT_RATE,
    question_delay: float = DEFAULT_QUESTION_DELAY,
    question_types: Iterable[str] = DEFAULT_QUESTION_TYPES,
    raw: bool = False,
    chunk_compression: bool = True,
    overwrite: bool = False,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    depth: bool = True,
    camera: DemoCamera = DEFAULT_CAMERA,
) -> Path:
    """Write the demo bag into ``out_dir``: one rosbag2 directory per storage (``out_dir/mcap``,
    ``out_dir/sqlite3``) and ``out_dir/ground_truth.json``. Returns ``out_dir``.

    ``storage``: ``"mcap"``, ``"sqlite3"``, ``"both"`` or a sequence of them. Per scene, the
    first question of each of ``question_types`` (in that order; a type the scene has no
    question of is skipped) is asked ``question_delay`` s after the scene's first frame, several
    spread evenly over the rest of the scene. ``raw`` adds ``/camera/image_raw`` (rgb8, ~6 MB a
    frame). ``chunk_compression``: zstd mcap chunks (mcap only; no rosbag2 compressor plugin
    needed to read them). An existing bag directory is an error unless ``overwrite``.
    ``jpeg_quality``: 1-100, 4:4:4 chroma. ``depth``: the registered depth image and the
    camera_info of every frame (``camera``'s geometry) and the targets' true 3-D points.
    """
    storages = _storages(storage)
    types = list(dict.fromkeys(question_types))
    unknown = [t for t in types if t not in QUESTION_TYPES]
    if unknown:
        raise ValueError(f"unknown question types {unknown}; known: {', '.join(QUESTION_TYPES)}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
    jpeg_params = [
        cv2.IMWRITE_JPEG_QUALITY,
        int(jpeg_quality),
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ]
    camera.validate()
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be >= 1, got {n_scenes}")
    if not (rate > 0 and seconds_per_scene > 0):
        raise ValueError("rate and seconds_per_scene must be > 0")
    if not 0 <= question_delay < seconds_per_scene:
        raise ValueError(f"question_delay must be in [0, seconds_per_scene), got {question_delay}")
    scene_ns, period_ns, n_frames = _frame_times(seconds_per_scene, rate)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in storages:
        if (out / name).exists():
            if not overwrite:
                raise FileExistsError(f"{out / name} exists (pass overwrite=True / --force to replace it)")
            shutil.rmtree(out / name)

    store = ros_typestore()
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    CompressedImage = store.types["sensor_msgs/msg/CompressedImage"]
    Image = store.types["sensor_msgs/msg/Image"]
    String = store.types["std_msgs/msg/String"]
    CameraInfo = store.types["sensor_msgs/msg/CameraInfo"]
    topics = {COMPRESSED_TOPIC: CompressedImage.__msgtype__, QUESTION_TOPIC: String.__msgtype__}
    if raw:
        topics[RAW_TOPIC] = Image.__msgtype__
    if depth:
        topics[DEPTH_TOPIC] = Image.__msgtype__
        topics[CAMERA_INFO_TOPIC] = CameraInfo.__msgtype__
    settings = {
        "seed": int(seed),
        "n_scenes": int(n_scenes),
        "rate": float(rate),
        "seconds_per_scene": float(seconds_per_scene),
        "question_delay": float(question_delay),
        "question_types": types,
        "raw": bool(raw),
        "jpeg_quality": int(jpeg_quality),
        "depth": bool(depth),
    }
    if depth and camera != DEFAULT_CAMERA:
        settings["camera"] = asdict(camera)

    truth = GroundTruth(
        seed=int(seed),
        n_scenes=int(n_scenes),
        rate=float(rate),
        seconds_per_scene=float(seconds_per_scene),
        question_delay=float(question_delay),
        question_types=types,
        start_ns=START_NS,
        frame_id=FRAME_ID,
        frame_width=0,
        frame_height=0,
        frames_per_scene=n_frames,
        topics=topics,
        scenes=[],
        jpeg_quality=int(jpeg_quality),
    )
    with ExitStack() as stack:
        writers = []
        for name in storages:
            writer = bag_writer(out / name, name, chunk_compression)
            writer.set_custom_data("focus_ros.demo", json.dumps(settings, sort_keys=True))
            stack.enter_context(writer)
            conns = {
                topic: writer.add_connection(
                    topic,
                    msgtype,
                    typestore=store,
                    offered_qos_profiles=[offered_qos(10 if topic == QUESTION_TOPIC else 2)],
                )
                for topic, msgtype in topics.items()
            }
            writers.append((writer, conns))

        def write(topic: str, t_ns: int, data: Any) -> None:
            for writer, conns in writers:
                writer.write(conns[topic], t_ns, data)

        def header_at(t_ns: int) -> Any:
            return Header(stamp=Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000), frame_id=FRAME_ID)

        for s in range(n_scenes):
            scene = make_scene(seed, s, DEMO_SPEC)
            truth.frame_width, truth.frame_height = scene.width, scene.height
            if depth:
                depth_mm = depth_image(scene, camera)
                depth_bytes = np.ascontiguousarray(depth_mm.astype("<u2")).view(np.uint8).reshape(-1)
                info = camera_info_fields(scene.width, scene.height, camera, store)
                truth.camera, truth.depth = _truth_camera(info), _truth_depth(scene, depth_mm, camera)
            ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(scene.image[..., ::-1]), jpeg_params)
            if not ok:
                raise RuntimeError(f"JPEG encoding of scene {s} failed")
            jpeg = jpeg.reshape(-1)
            flat = np.ascontiguousarray(scene.image).reshape(-1) if raw else None
            t_scene = START_NS + s * scene_ns
            stamps = [t_scene + k * period_ns for k in range(n_frames)]
            chosen = []
            for t in types:
                match = [q for q in scene.questions if q.type == t]
                if match:
                    chosen.append(match[0])
                else:
                    logger.info("scene %d of seed %d has no %s question; skipped", s, seed, t)
            spacing = (scene_ns - int(round(question_delay * 1e9))) // max(1, len(chosen))
            q_times = [t_scene + int(round(question_delay * 1e9)) + j * spacing for j in range(len(chosen))]

            events = [(t, 0, k) for k, t in enumerate(stamps)] + [(t, 1, j) for j, t in enumerate(q_times)]
            for t_ns, kind, k in sorted(events):
                if kind == 0:
                    header = header_at(t_ns)
                    write(
                        COMPRESSED_TOPIC,
                        t_ns,
                        store.serialize_cdr(
                            CompressedImage(header=header, format="jpeg", data=jpeg), CompressedImage.__msgtype__
                        ),
                    )
                    if raw:
                        write(
                            RAW_TOPIC,
                            t_ns,
                            store.serialize_cdr(
                                Image(
                                    header=header,
                                    height=scene.height,
                                    width=scene.width,
                                    encoding="rgb8",
                                    is_bigendian=0,
                                    step=scene.width * 3,
                                    data=flat,
                                ),
                                Image.__msgtype__,
                            ),
                        )
                else:
                    q = chosen[k]
                    write(QUESTION_TOPIC, t_ns, store.serialize_cdr(String(data=q.question), String.__msgtype__))
                    truth.questions.append(
                        GroundTruthQuestion(
                            index=len(truth.questions),
                            question=q.question,
                            answer=q.answer,
                            type=q.type,
                            boxes=[list(map(int, b)) for b in q.boxes],
                            time_ns=t_ns,
                            scene_index=s,
                            scene_seed=int(seed),
                            width=scene.width,
                            height=scene.height,
                            first_frame_ns=stamps[0],
                            last_frame_ns=stamps[-1],
                            targets=question_targets(q, scene, camera if depth else None),
                        )
                    )
            # A scene's depth and camera_info go in after its colour frames, not between them: rosbags
            # closes an mcap chunk past 1 MiB, and a chunk of colour + depth frames holds only ~2 of the
            # scene's identical JPEGs (a 7 MB bag) where colour alone holds ~4 (the bag stays ~3.5 MB).
            # Chunks whose times overlap are valid mcap: rosbags and rosbag2 read in log-time order.
            if depth:
                h, w = depth_mm.shape
                for t_ns in stamps:
                    header = header_at(t_ns)
                    depth_msg = Image(
                        header=header, height=h, width=w, encoding="16UC1", is_bigendian=0, step=w * 2, data=depth_bytes
                    )
                    write(DEPTH_TOPIC, t_ns, store.serialize_cdr(depth_msg, Image.__msgtype__))
                    write(
                        CAMERA_INFO_TOPIC,
                        t_ns,
                        store.serialize_cdr(CameraInfo(header=header, **info), CameraInfo.__msgtype__),
                    )
            truth.scenes.append(
                {
                    "index": s,
                    "seed": int(seed),
                    "width": scene.width,
                    "height": scene.height,
                    "first_frame_ns": stamps[0],
                    "last_frame_ns": stamps[-1],
                    "frames": len(stamps),
                }
            )

    path = out / GROUND_TRUTH
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(_dump_json(truth.to_dict()))
    tmp.replace(path)
    return out


def _truth_camera(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "topic": CAMERA_INFO_TOPIC,
        "width": info["width"],
        "height": info["height"],
        "distortion_model": info["distortion_model"],
        "d": info["d"].tolist(),
        "k": info["k"].tolist(),
    }


def _truth_depth(scene: Scene, depth_mm: np.ndarray, camera: DemoCamera) -> dict[str, Any]:
    return {
        "topic": DEPTH_TOPIC,
        "width": int(depth_mm.shape[1]),
        "height": int(depth_mm.shape[0]),
        "encoding": "16UC1",
        "unit": "mm",
        "table_plane": [round(x, 9) for x in camera.table_plane(scene.width, scene.height)],  # a*x + b*y + c*z = 1
        "table_near_m": camera.table_near_m,
        "table_far_m": camera.table_far_m,
        "object_height_m": camera.object_height_m,
    }


def _dump_json(data: dict[str, Any]) -> str:
    """JSON with one line per top-level key and per scene / question (diff-friendly)."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = ",\n".join("  " + json.dumps(v) for v in value)
            lines.append(f" {json.dumps(key)}: [\n{items}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def bag_summary(path: str | Path) -> dict[str, Any]:
    """What a rosbag2 directory holds: storage, messages per topic (with type), start / end log
    time (ns), duration (s) and size on disk (bytes)."""
    from rosbags.highlevel import AnyReader

    p = Path(path)
    with AnyReader([p]) as reader:
        topics = {name: {"type": info.msgtype, "count": info.msgcount} for name, info in reader.topics.items()}
        start, end = reader.start_time, reader.end_time
        count = reader.message_count
    storage = "mcap" if any(p.glob("*.mcap")) else "sqlite3" if any(p.glob("*.db3")) else "unknown"
    size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    # AnyReader's end time is one past the last message.
    last = end - 1 if count else start
    return {
        "path": str(p),
        "storage": storage,
        "topics": topics,
        "messages": count,
        "start_ns": start,
        "end_ns": last,
        "duration_s": (last - start) / 1e9 if count else 0.0,
        "size_bytes": size,
    }


__all__ = [
    "DEFAULT_SEED",
    "START_NS",
    "BAG_VERSION",
    "FRAME_ID",
    "COMPRESSED_TOPIC",
    "RAW_TOPIC",
    "QUESTION_TOPIC",
    "DEPTH_TOPIC",
    "CAMERA_INFO_TOPIC",
    "GROUND_TRUTH",
    "GROUND_TRUTH_VERSION",
    "READABLE_GROUND_TRUTH_VERSIONS",
    "STORAGES",
    "DEMO_SPEC",
    "DEFAULT_JPEG_QUALITY",
    "DemoCamera",
    "DEFAULT_CAMERA",
    "GroundTruth",
    "GroundTruthQuestion",
    "write_demo_bag",
    "load_ground_truth",
    "bag_summary",
    "offered_qos",
]
