"""The synthetic scene generator and ``focus-scenes``: determinism, boxes, vocabulary, clutter."""

import hashlib
import json
import re

import numpy as np
import pytest

from focus_ros.cli.scenes import main as focus_scenes
from focus_ros.eval.scenes import (
    ANSWER_WORDS,
    COLORS,
    SHAPES,
    TEMPLATES,
    SceneSpec,
    draw_object,
    make_scene,
    muted_color,
)

SMALL = SceneSpec(short_side=(1080, 1300))  # the benchmark's smallest frames: quick to draw

# sha256 of today's plain scenes, taken before styles and the evaluation renderer existed: (seed, index)
# -> digest of the frame's pixels, its size, its objects and its questions (see _scene_digest)
PLAIN_DIGESTS = {
    (7, 0): "cedd4a5fcea98a4c67830168dc7250bf2ea5fc39fbea0cd1ec6b7e28b1271476",
    (3, 1): "3b0737bb65639c0221a0883d1600c6e096da3f9e5db8db24e8f18a29c4905b68",
}
# and of focus-scenes' text files for 2 scenes of seed 5, short side 1080..1200, png
PLAIN_FILE_DIGESTS = {
    "questions.jsonl": "4ccd2c25e5103c3958bf594d71c5b4f12bd824466eb476e3fe57add34a6fb489",
    "scenes.json": "443b60683f0872985bf60a31f30c01e3159cd15654b28f865e6865bda7ca0e77",
}


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(7, i, SMALL) for i in range(4)]


def _near(image, rgb, tol=40.0):
    d = image.astype(np.int32) - np.asarray(rgb, np.int32)
    return np.sqrt((d * d).sum(axis=-1)) < tol


def _scene_digest(s) -> str:
    h = hashlib.sha256()
    h.update(s.image.tobytes())
    h.update(repr((s.width, s.height)).encode())
    h.update(json.dumps([[o.shape, o.color, list(o.box)] for o in s.objects]).encode())
    h.update(json.dumps([[q.question, q.answer, q.type, q.boxes] for q in s.questions]).encode())
    return h.hexdigest()


def test_plain_scenes_are_the_same_pixels_objects_and_questions_as_before_styles_existed():
    # a failure here means the benchmark's scenes changed (or numpy / OpenCV did): every number
    # measured on them would change with it
    for (seed, index), digest in PLAIN_DIGESTS.items():
        assert _scene_digest(make_scene(seed, index, SMALL)) == digest, (seed, index)
        assert _scene_digest(make_scene(seed, index, SceneSpec(short_side=(1080, 1300), style="plain"))) == digest


def test_plain_focus_scenes_writes_the_same_questions_and_scene_list_as_before_styles_existed(tmp_path):
    assert (
        focus_scenes([str(tmp_path), "--n", "2", "--seed", "5", "--short-side", "1080", "1200", "--format", "png"]) == 0
    )
    for name, digest in PLAIN_FILE_DIGESTS.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name


def test_same_seed_gives_identical_frames_and_questions_and_another_seed_does_not():
    a, b, c = make_scene(3, 1, SMALL), make_scene(3, 1, SMALL), make_scene(4, 1, SMALL)
    assert np.array_equal(a.image, b.image)
    assert a.objects == b.objects and a.questions == b.questions
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_every_pixel_of_a_vocabulary_colour_lies_in_a_box_of_an_object_of_that_colour(scenes):
    for scene in scenes:
        for color, rgb in COLORS.items():
            ys, xs = np.nonzero(_near(scene.image, rgb))
            boxes = [o.box for o in scene.objects if o.color == color]
            inside = np.zeros(len(xs), bool)
            for x0, y0, x1, y1 in boxes:
                inside |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            assert inside.all(), f"{(~inside).sum()} {color} pixels outside its boxes (clutter or a wrong box)"


def test_each_box_is_tight_around_its_drawn_object(scenes):
    for scene in scenes:
        for o in scene.objects:
            x0, y0, x1, y1 = o.box
            inner = _near(scene.image[y0:y1, x0:x1], COLORS[o.color])
            assert inner.mean() > 0.25, f"{o} covers only {inner.mean():.2f} of its box"
            # the object's clearly coloured pixels reach (within the anti-aliased fringe) every side of the box
            ys, xs = np.nonzero(inner)
            assert xs.min() <= 3 and ys.min() <= 3, o
            assert xs.max() >= x1 - x0 - 4 and ys.max() >= y1 - y0 - 4, o


def test_drawn_pixels_of_an_object_are_exactly_its_box_on_a_blank_canvas():
    for shape in SHAPES:
        canvas = np.zeros((200, 200, 3), np.int16)
        x0, y0, x1, y1 = draw_object(canvas, shape, "white", 97.3, 101.6, 40.0)
        ys, xs = np.nonzero(canvas.sum(axis=-1) > 0)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1), shape
        assert 37 <= max(x1 - x0, y1 - y0) <= 44 and min(x1 - x0, y1 - y0) >= 25, shape


def test_questions_use_the_issue_templates_and_answers_from_the_vocabulary(scenes):
    patterns = {
        t: re.compile(
            "^"
            + re.escape(tpl)
            .replace(r"\{color\}", "(\\w+)")
            .replace(r"\{other\}", "(\\w+)")
            .replace(r"\{shape\}", "(\\w+)")
            + "$"
        )
        for t, tpl in TEMPLATES.items()
    }
    seen = set()
    for scene in scenes:
        by_color = {}
        for o in scene.objects:
            by_color.setdefault(o.color, []).append(o)
        for q in scene.questions:
            m = patterns[q.type].match(q.question)
            assert m, q.question
            assert q.answer in ANSWER_WORDS[q.type] and q.answer == q.answer.lower()
            seen.add(q.type)
            if q.type == "shape":
                (obj,) = by_color[m.group(1)]
                assert q.answer == obj.shape and q.boxes == [list(obj.box)]
            elif q.type == "exists":
                assert q.answer == ("yes" if m.group(1) in by_color else "no")
            elif q.type == "relation":
                (a,), (b,) = by_color[m.group(1)], by_color[m.group(2)]
                assert q.answer == ("left" if a.center[0] < b.center[0] else "right")
                assert a.box[2] <= b.box[0] or b.box[2] <= a.box[0]  # no horizontal overlap: unambiguous
            elif q.type == "count":
                assert int(q.answer) == len(by_color[m.group(1)]) == len(q.boxes)
            elif q.type == "color":
                (obj,) = [o for o in scene.objects if o.shape == m.group(1)]
                assert q.answer == obj.color
    assert seen == set(TEMPLATES)


def test_frames_and_targets_have_the_benchmark_sizes():
    for i in range(6):
        s = make_scene(11, i, SceneSpec(short_side=(1080, 3000)))
        short = min(s.width, s.height)
        assert 1080 <= short <= 3000
        sides = [max(o.box[2] - o.box[0], o.box[3] - o.box[1]) / short for o in s.objects]
        assert all(0.008 <= f <= 0.13 for f in sides), sides
    # most objects are small targets (1-4 % of the short side), some are larger
    fracs = [
        max(o.box[2] - o.box[0], o.box[3] - o.box[1]) / min(s.width, s.height)
        for s in (make_scene(12, i, SMALL) for i in range(8))
        for o in s.objects
    ]
    assert 0.5 < np.mean(np.asarray(fracs) <= 0.045) < 1.0


def test_background_colours_are_far_from_every_vocabulary_colour():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        c = np.asarray(muted_color(rng), float)
        assert min(np.linalg.norm(c - np.asarray(v, float)) for v in COLORS.values()) > 60


def test_focus_scenes_writes_the_same_frames_and_questions_in_one_process_or_several(tmp_path, capsys):
    digests = []
    for name, workers in (("a", "1"), ("b", "2")):
        out = tmp_path / name
        assert (
            focus_scenes([str(out), "--n", "3", "--seed", "5", "--short-side", "1080", "1200", "--workers", workers])
            == 0
        )
        lines = [json.loads(x) for x in (out / "questions.jsonl").read_text().splitlines()]
        assert {"image", "question", "answer", "type", "boxes"} <= set(lines[0])
        assert len({x["image"] for x in lines}) == 3 and all((out / x["image"]).is_file() for x in lines)
        files = sorted(p for p in out.rglob("*") if p.is_file())
        digests.append({p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    assert digests[0] == digests[1]
    assert "wrote 3 frames" in capsys.readouterr().out


def test_focus_scenes_refuses_a_style_for_the_eval_renderer_and_an_unknown_style(tmp_path, capsys):
    assert focus_scenes([str(tmp_path / "a"), "--n", "1", "--renderer", "eval", "--style", "varied"]) == 2
    assert "--style applies to the default renderer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        focus_scenes([str(tmp_path / "b"), "--n", "1", "--style", "fancy"])
    with pytest.raises(ValueError, match="style must be"):
        SceneSpec(style="fancy").validate()
