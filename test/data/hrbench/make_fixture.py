"""Writes this folder's HR-Bench fixture in the published layout of DreamMr/HR-Bench: tab-separated
tables with a header line (as VLMEvalKit writes them with pandas) and every row's image inline as
base64 JPEG. The frames are synthetic scenes from focus_ros.eval.scenes (seed 42), not HR-Bench data;
each question appears once per cycle with its options rotated, as HR-Bench's cycles do.

    python test/data/hrbench/make_fixture.py
"""

import base64
import csv
from pathlib import Path

import cv2

from focus_ros.eval.scenes import SHAPES, SceneSpec, make_scene

HERE = Path(__file__).resolve().parent
COLUMNS = ["index", "question", "answer", "category", "A", "B", "C", "D", "cycle_category", "image"]
SPEC = SceneSpec(short_side=(192, 192))  # tiny frames keep the fixture small
SIDES = ["Left", "Right", "Directly above it", "Directly below it"]


def jpeg_base64(scene) -> str:
    ok, buf = cv2.imencode(".jpg", scene.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    return base64.b64encode(buf.tobytes()).decode("ascii")


def question(scene, category: str) -> tuple[str, list[str], str]:
    """(question, four options, the right option) about the scene's own objects."""
    asked = {q.type: q for q in scene.questions}
    by_box = {tuple(o.box): o for o in scene.objects}
    if category == "single":
        q = asked["shape"]
        target = by_box[tuple(q.boxes[0])]
        others = [s for s in SHAPES if s != q.answer][:3]
        return f"What is the shape of the {target.color} object in the image?", [q.answer, *others], q.answer
    q = asked["relation"]
    a, b = (by_box[tuple(box)] for box in q.boxes)
    right = SIDES[0] if q.answer == "left" else SIDES[1]
    return f"Where is the {a.color} object relative to the {b.color} object?", SIDES, right


def write(name: str, questions: list[tuple[int, str]], cycles: int = 2) -> None:
    rows, index = [], 0
    for scene_index, category in questions:
        scene = make_scene(42, scene_index, SPEC)
        text, options, right = question(scene, category)
        image = jpeg_base64(scene)
        for cycle in range(cycles):
            shown = options[cycle:] + options[:cycle]  # cycle k: the options rotated by k
            rows.append([index, text, "ABCD"[shown.index(right)], category, *shown, f"cycle_{cycle + 1}", image])
            index += 1
    with (HERE / name).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)


if __name__ == "__main__":
    write("hr_bench_4k.tsv", [(0, "single"), (1, "cross")])
    write("hr_bench_8k.tsv", [(2, "single")])
