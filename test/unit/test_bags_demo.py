"""The demo rosbag2 bag (focus_ros.bags.demo, focus-make-bag), read back with rosbags only (no rclpy):
topics, types, counts, stamps, frames, registered depth and camera_info from the scene's known
geometry, timed questions, ground truth (with the targets' true 3-D points), metadata, and the
bundled copy in test/data/demo_bag."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from ruamel.yaml import YAML

from focus_ros.bags.demo import (
    CAMERA_INFO_TOPIC,
    COMPRESSED_TOPIC,
    DEMO_SPEC,
    DEPTH_TOPIC,
    FRAME_ID,
    GROUND_TRUTH,
    QUESTION_TOPIC,
    RAW_TOPIC,
    START_NS,
    bag_summary,
    load_ground_truth,
    write_demo_bag,
)
from focus_ros.cli.make_bag import main as make_bag_main
from focus_ros.eval.scenes import make_scene

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "demo_bag"
STORAGES = ("mcap", "sqlite3")
TYPES = {
    COMPRESSED_TOPIC: "sensor_msgs/msg/CompressedImage",
    DEPTH_TOPIC: "sensor_msgs/msg/Image",
    CAMERA_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
    QUESTION_TOPIC: "std_msgs/msg/String",
}


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _read(bag: Path) -> dict[str, list[tuple[int, object, bytes]]]:
    """{topic: [(log time, deserialized message, raw bytes), ...]} in bag order."""
    out: dict[str, list] = {}
    with AnyReader([bag]) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype), bytes(raw)))
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Both storages written today with the generator's defaults (what the bundle was made with)."""
    return write_demo_bag(tmp_path_factory.mktemp("demo_bag"), storage="both")


@pytest.fixture(scope="module")
def truth(generated):
    return load_ground_truth(generated)


@pytest.mark.parametrize("storage", STORAGES)
def test_both_storages_hold_the_promised_topics_types_and_counts(generated, truth, storage):
    with AnyReader([generated / storage]) as reader:
        types = {topic: info.msgtype for topic, info in reader.topics.items()}
        counts = {topic: info.msgcount for topic, info in reader.topics.items()}
    assert types == TYPES
    frames = truth.n_scenes * truth.frames_per_scene
    assert counts == {
        COMPRESSED_TOPIC: frames,
        DEPTH_TOPIC: frames,
        CAMERA_INFO_TOPIC: frames,
        QUESTION_TOPIC: len(truth.questions),
    }
    assert truth.question_types == ["shape", "relation", "count"]
    assert truth.n_scenes == 4 and truth.frames_per_scene == 8 and truth.rate == 2.0 and len(truth.questions) == 12


@pytest.mark.parametrize("storage", STORAGES)
def test_frame_stamps_strictly_increase_and_are_the_log_times(generated, truth, storage):
    frames = _read(generated / storage)[COMPRESSED_TOPIC]
    stamps = [_stamp(m) for _, m, _ in frames]
    assert stamps == [t for t, _, _ in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert stamps[0] == START_NS
    period = round(1e9 / truth.rate)
    expected = [
        START_NS + s * round(truth.seconds_per_scene * 1e9) + k * period
        for s in range(truth.n_scenes)
        for k in range(truth.frames_per_scene)
    ]
    assert stamps == expected
    assert {m.header.frame_id for _, m, _ in frames} == {FRAME_ID}
    assert {m.format for _, m, _ in frames} == {"jpeg"}


@pytest.mark.parametrize("storage", STORAGES)
def test_every_frame_has_a_depth_image_and_camera_info_with_its_stamp_and_frame(generated, storage):
    msgs = _read(generated / storage)
    colour = [(t, _stamp(m)) for t, m, _ in msgs[COMPRESSED_TOPIC]]
    for topic in (DEPTH_TOPIC, CAMERA_INFO_TOPIC):
        assert [(t, _stamp(m)) for t, m, _ in msgs[topic]] == colour
        assert {m.header.frame_id for _, m, _ in msgs[topic]} == {FRAME_ID}
    with AnyReader([generated / storage]) as reader:  # a scene's depth follows its colour in the file
        times = [t for _, t, _ in reader.messages()]
    assert times == sorted(times)  # yet a reader returns every message in log-time order


def _depth_mm(msg) -> np.ndarray:
    assert (msg.encoding, msg.is_bigendian, msg.step) == ("16UC1", 0, msg.width * 2)
    return np.frombuffer(bytes(msg.data), "<u2").reshape(msg.height, msg.width)


def test_camera_info_is_the_colour_images_pinhole_without_distortion(generated, truth):
    infos = [m for _, m, _ in _read(generated / "mcap")[CAMERA_INFO_TOPIC]]
    for info in infos:
        assert (info.width, info.height, info.distortion_model) == (1920, 1080, "plumb_bob")
        assert np.array_equal(info.d, np.zeros(5)) and np.array_equal(info.r, np.eye(3).reshape(-1))
        k = np.asarray(info.k).reshape(3, 3)
        fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
        assert fx == fy == 1400.0 and abs(cx - 959.5) < 20 and abs(cy - 539.5) < 20
        assert np.array_equal(np.asarray(info.p).reshape(3, 4), np.hstack([k, np.zeros((3, 1))]))
        assert info.k.tolist() == truth.camera["k"] and info.d.tolist() == truth.camera["d"]
    assert truth.camera["topic"] == CAMERA_INFO_TOPIC and truth.depth["topic"] == DEPTH_TOPIC


def test_depth_is_a_registered_third_resolution_image_of_a_tilted_table_with_raised_objects(generated, truth):
    msgs = _read(generated / "mcap")
    k = np.asarray(truth.camera["k"]).reshape(3, 3)
    a, b, c = truth.depth["table_plane"]
    for s in range(truth.n_scenes):
        frames = msgs[DEPTH_TOPIC][s * truth.frames_per_scene : (s + 1) * truth.frames_per_scene]
        depth = _depth_mm(frames[0][1])
        assert depth.shape == (360, 640) == (truth.depth["height"], truth.depth["width"])
        assert all(np.array_equal(_depth_mm(m), depth) for _, m, _ in frames)  # the scene stands still
        assert (depth > 0).all()
        # the table: 1.2 m at the bottom row, 2.5 m at the top, a plane in the optical frame
        assert abs(int(depth[-1, 0]) - 1200) <= 3 and abs(int(depth[0, -1]) - 2500) <= 6
        scene = make_scene(truth.seed, s, DEMO_SPEC)
        on_table = np.ones(depth.shape, bool)
        for o in scene.objects:
            x0, y0, x1, y1 = o.box
            on_table[max(0, y0 // 3 - 1) : y1 // 3 + 2, max(0, x0 // 3 - 1) : x1 // 3 + 2] = False
        i, j = np.nonzero(on_table)
        z = depth[i, j] / 1000.0
        x, y = (3 * j + 1 - k[0, 2]) * z / k[0, 0], (3 * i + 1 - k[1, 2]) * z / k[1, 1]
        assert np.abs(a * x + b * y + c * z - 1).max() < 1e-3  # on the plane, to the millimetre
        # every object stands 5 cm in front of the table over its own pixels, and nowhere else
        for o in scene.objects:
            x0, y0, x1, y1 = o.box
            patch = depth[(y0 + 1) // 3 : (y1 + 1) // 3, (x0 + 1) // 3 : (x1 + 1) // 3]
            table = 1000.0 / (b * (y1 - 1 - k[1, 2]) / k[1, 1] + c)  # its nearest: the box's bottom row
            assert abs(int(patch.min()) - (table - 50)) <= 1, (s, o)
            assert patch.max() > patch.min() or o.shape == "square"  # the table shows around a shape


def test_every_targets_true_point_is_its_box_centre_at_its_objects_depth(generated, truth):
    depth_msgs = _read(generated / "mcap")[DEPTH_TOPIC]
    k = np.asarray(truth.camera["k"]).reshape(3, 3)
    for q in truth.questions:
        depth = _depth_mm(depth_msgs[q.scene_index * truth.frames_per_scene][1])
        boxes = [i["box"] for t in q.targets for i in t["instances"]]
        assert boxes == q.boxes  # every gold box is one instance, in the question's order
        for t in q.targets:
            for inst in t["instances"]:
                x0, y0, x1, y1 = inst["box"]
                u, v = inst["pixel"]
                assert (u, v) == ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2)
                p = np.asarray(inst["point"])
                assert np.allclose((k @ p)[:2] / p[2], (u, v), atol=1e-3)
                assert 1.1 < p[2] < 2.5
                patch = depth[(y0 + 1) // 3 : (y1 + 1) // 3, (x0 + 1) // 3 : (x1 + 1) // 3]
                assert int(patch.min()) == round(p[2] * 1000)  # the object's face, in the depth image


def test_ground_truth_names_every_target_as_the_question_does(truth):
    for q in truth.questions:
        scene = make_scene(q.scene_seed, q.scene_index, DEMO_SPEC)
        colour = {tuple(o.box): o.color for o in scene.objects}
        keys = [t["key"] for t in q.targets]
        if q.type == "shape":
            assert [(t["phrase"], t["every"]) for t in q.targets] == [(f"{keys[0]} object", False)]
            assert f"the {keys[0]} object" in q.question
        elif q.type == "relation":
            assert keys == [colour[tuple(b)] for b in q.boxes] and len(keys) == 2
            assert q.question == f"Is the {keys[0]} object to the left or right of the {keys[1]} object?"
        else:
            assert [(t["phrase"], t["every"]) for t in q.targets] == [(f"{keys[0]} objects", True)]
            assert len(q.targets[0]["instances"]) == int(q.answer)


def test_version_1_ground_truth_still_loads_without_camera_depth_or_targets(generated, tmp_path):
    data = json.loads((generated / GROUND_TRUTH).read_text())
    data["version"] = 1
    for key in ("camera", "depth"):
        del data[key]
    for q in data["questions"]:
        del q["targets"]
    (tmp_path / GROUND_TRUTH).write_text(json.dumps(data))
    old = load_ground_truth(tmp_path)
    assert old.version == 1 and old.camera is None and old.depth is None
    assert all(q.targets == [] for q in old.questions) and len(old.questions) == 12
    data["version"] = 99
    (tmp_path / GROUND_TRUTH).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="version 99"):
        load_ground_truth(tmp_path)


def test_no_depth_leaves_out_depth_camera_info_and_the_true_points(tmp_path):
    out = write_demo_bag(tmp_path, n_scenes=1, seconds_per_scene=2.0, rate=1.0, depth=False)
    assert set(_read(out / "mcap")) == {COMPRESSED_TOPIC, QUESTION_TOPIC}
    truth = load_ground_truth(out)
    assert truth.camera is None and truth.depth is None
    assert all(i["point"] is None for q in truth.questions for t in q.targets for i in t["instances"])


def test_frames_are_1920x1080_jpegs_of_their_scene(generated, truth):
    frames = _read(generated / "mcap")[COMPRESSED_TOPIC]
    for s in range(truth.n_scenes):
        scene = make_scene(truth.seed, s, DEMO_SPEC)
        for _, msg, _ in frames[s * truth.frames_per_scene : (s + 1) * truth.frames_per_scene]:
            rgb = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
            assert rgb.shape == (1080, 1920, 3)
            diff = np.abs(rgb.astype(np.int16) - scene.image.astype(np.int16))
            assert diff.mean() < 4.0, f"scene {s}: mean abs difference {diff.mean():.2f}"  # JPEG q85
            for o in scene.objects:  # the small objects keep their colour (4:4:4 chroma)
                x0, y0, x1, y1 = o.box
                assert diff[y0:y1, x0:x1].mean() < 12.0, (s, o)


@pytest.mark.parametrize("storage", STORAGES)
def test_questions_are_published_at_the_promised_bag_times(generated, truth, storage):
    questions = _read(generated / storage)[QUESTION_TOPIC]
    assert [m.data for _, m, _ in questions] == [q.question for q in truth.questions]
    assert [t for t, _, _ in questions] == [q.time_ns for q in truth.questions]
    scene_ns, delay_ns = round(truth.seconds_per_scene * 1e9), round(truth.question_delay * 1e9)
    for q in truth.questions:
        # a scene's questions are spread evenly from the delay to the scene's end
        j = [x.index for x in truth.questions if x.scene_index == q.scene_index].index(q.index)
        assert q.time_ns == q.first_frame_ns + delay_ns + j * ((scene_ns - delay_ns) // len(truth.question_types))
        assert q.first_frame_ns == START_NS + q.scene_index * round(truth.seconds_per_scene * 1e9)


def test_ground_truth_answers_and_boxes_are_the_scene_generators(truth):
    assert [(q.scene_index, q.type) for q in truth.questions] == [
        (s, t) for s in range(truth.n_scenes) for t in truth.question_types
    ]
    for q in truth.questions:
        scene = make_scene(q.scene_seed, q.scene_index, DEMO_SPEC)
        expected = next(x for x in scene.questions if x.type == q.type)
        assert (q.question, q.answer, q.boxes) == (expected.question, expected.answer, expected.boxes)
        assert (q.width, q.height) == (scene.width, scene.height) == (1920, 1080)
        assert q.covers(q.first_frame_ns) and q.covers(q.last_frame_ns) and not q.covers(q.last_frame_ns + 1)


def test_ground_truth_matches_an_answer_to_its_question_by_the_answers_frame_stamp(truth):
    q = truth.questions[3]  # scene 1
    assert truth.for_answer(q.question, q.last_frame_ns) is q
    assert truth.scene_of(q.first_frame_ns) == q.scene_index
    assert truth.for_answer(q.question, truth.questions[0].first_frame_ns) is None
    assert truth.for_answer("What is this?", q.first_frame_ns) is None


@pytest.mark.parametrize("storage", STORAGES)
def test_metadata_yaml_has_offered_qos_profiles_and_the_storage_identifier(generated, storage):
    info = YAML(typ="safe").load((generated / storage / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == storage
    assert info["version"] == 8
    assert info["compression_mode"] == ""  # no rosbag2 compressor plugin needed to play it
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"] for t in info["topics_with_message_count"]}
    assert set(topics) == set(TYPES)
    for meta in topics.values():
        profiles = YAML(typ="safe").load(meta["offered_qos_profiles"])
        assert profiles and profiles[0]["reliability"] == 1 and profiles[0]["history"] == 1
        assert meta["type_description_hash"].startswith("RIHS01_")
    files = list((generated / storage).iterdir())
    assert sorted(f.suffix for f in files) == sorted([".yaml", ".mcap" if storage == "mcap" else ".db3"])


def test_bundled_bag_is_what_the_generator_writes_today(generated):
    assert json.loads((BUNDLED / "ground_truth.json").read_text()) == json.loads(
        (generated / "ground_truth.json").read_text()
    )
    bundled, today = _read(BUNDLED / "mcap"), _read(generated / "mcap")
    assert list(bundled) == list(today)
    assert [(t, raw) for t, _, raw in bundled[QUESTION_TOPIC]] == [(t, raw) for t, _, raw in today[QUESTION_TOPIC]]
    assert [(t, _stamp(m)) for t, m, _ in bundled[COMPRESSED_TOPIC]] == [
        (t, _stamp(m)) for t, m, _ in today[COMPRESSED_TOPIC]
    ]
    for topic in (DEPTH_TOPIC, CAMERA_INFO_TOPIC):  # plain numbers: bit for bit
        assert [(t, raw) for t, _, raw in bundled[topic]] == [(t, raw) for t, _, raw in today[topic]]
    for (_, a, _), (_, b, _) in zip(bundled[COMPRESSED_TOPIC], today[COMPRESSED_TOPIC]):
        # JPEG bytes may differ with another libjpeg build; the pictures may not.
        da, db = (cv2.imdecode(np.asarray(m.data, np.uint8), cv2.IMREAD_COLOR).astype(np.int16) for m in (a, b))
        assert np.abs(da - db).mean() < 1.0


def test_bundled_bag_is_small_and_deterministic(generated, tmp_path):
    size = bag_summary(BUNDLED / "mcap")["size_bytes"]
    assert size < 4_000_000, f"bundled demo bag grew to {size / 1e6:.1f} MB"
    again = write_demo_bag(tmp_path, storage="mcap")
    assert (again / "mcap" / "mcap.mcap").read_bytes() == (generated / "mcap" / "mcap.mcap").read_bytes()


def test_raw_option_adds_rgb8_frames_with_the_same_stamps(tmp_path):
    out = write_demo_bag(tmp_path, storage="mcap", n_scenes=1, seed=5, seconds_per_scene=2.0, rate=1.0, raw=True)
    msgs = _read(out / "mcap")
    raw, jpeg = msgs[RAW_TOPIC], msgs[COMPRESSED_TOPIC]
    assert len(raw) == len(jpeg) == 2
    assert [_stamp(m) for _, m, _ in raw] == [_stamp(m) for _, m, _ in jpeg] == [t for t, _, _ in raw]
    msg = raw[0][1]
    assert (msg.width, msg.height, msg.encoding, msg.step) == (1920, 1080, "rgb8", 1920 * 3)
    scene = make_scene(5, 0, DEMO_SPEC)
    assert np.array_equal(np.asarray(msg.data).reshape(1080, 1920, 3), scene.image)
    assert load_ground_truth(out).topics[RAW_TOPIC] == "sensor_msgs/msg/Image"


def test_question_types_pick_questions_spread_over_the_scene(tmp_path):
    types = ("color", "shape", "exists")
    out = write_demo_bag(tmp_path, storage="sqlite3", n_scenes=3, seed=11, question_types=types, question_delay=0.5)
    truth = load_ground_truth(out)
    for s in range(3):
        scene = make_scene(11, s, DEMO_SPEC)
        expected = [
            next(q for q in scene.questions if q.type == t) for t in types if any(q.type == t for q in scene.questions)
        ]
        got = [q for q in truth.questions if q.scene_index == s]
        assert [(q.question, q.answer, q.type) for q in got] == [(q.question, q.answer, q.type) for q in expected]
        start = START_NS + s * 4_000_000_000
        assert got[0].time_ns == start + 500_000_000
        times = [q.time_ns for q in got]
        assert all(b > a for a, b in zip(times, times[1:])) and times[-1] < start + 4_000_000_000
    with AnyReader([out / "sqlite3"]) as reader:
        assert reader.topics[QUESTION_TOPIC].msgcount == len(truth.questions)


def test_invalid_settings_and_existing_bags_are_refused(tmp_path):
    with pytest.raises(ValueError, match="question_delay"):
        write_demo_bag(tmp_path / "a", question_delay=4.0)
    with pytest.raises(ValueError, match="unknown question types"):
        write_demo_bag(tmp_path / "a", question_types=("colour",))
    with pytest.raises(ValueError, match="storage"):
        write_demo_bag(tmp_path / "a", storage="rosbag1")
    write_demo_bag(tmp_path / "b", n_scenes=1)
    with pytest.raises(FileExistsError):
        write_demo_bag(tmp_path / "b", n_scenes=1)
    write_demo_bag(tmp_path / "b", n_scenes=1, overwrite=True)


def test_make_bag_cli_writes_both_storages_and_prints_what_it_wrote(tmp_path, capsys):
    out = tmp_path / "case"
    assert (
        make_bag_main(
            [
                str(out),
                "--storage",
                "both",
                "--scenes",
                "2",
                "--seed",
                "3",
                "--rate",
                "1",
                "--seconds-per-scene",
                "2",
                "--types",
                "shape",
                "count",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert f"{out / 'mcap'}: mcap, " in text and f"{out / 'sqlite3'}: sqlite3, " in text
    assert f"{COMPRESSED_TOPIC} (sensor_msgs/msg/CompressedImage): 4" in text
    assert f"{DEPTH_TOPIC} (sensor_msgs/msg/Image): 4" in text
    assert f"{CAMERA_INFO_TOPIC} (sensor_msgs/msg/CameraInfo): 4" in text
    assert "4 questions on 2 scenes (1920x1080, 2 frames each)" in text
    assert "camera: fx=1400 fy=1400 cx=966.5 cy=534.5 plumb_bob D=0; depth 640x360 16UC1 (mm)" in text
    for storage in STORAGES:
        assert bag_summary(out / storage)["topics"][QUESTION_TOPIC]["count"] == 4
    assert make_bag_main([str(out)]) == 2
    assert "exists" in capsys.readouterr().err
