"""Writes this folder's MME-RealWorld-Lite fixture in both layouts the authors publish, the same
three questions on two frames in each:

    MME-RealWorld-Lite/data/MME-RealWorld-Lite.json + data/imgs/...   (yifanzhang114/MME-RealWorld-Lite,
                                                                       its data.zip unpacked)
    MME-RealWorld-Base64/mme_realworld_lite.tsv                       (yifanzhang114/MME-RealWorld-Base64)

The frames are synthetic scenes from focus_ros.eval.scenes (seed 42), not MME-RealWorld data.

    python test/data/mme_realworld/make_fixture.py
"""

import base64
import csv
import json
from pathlib import Path

import cv2

from focus_ros.eval.scenes import COLORS, SceneSpec, make_scene

HERE = Path(__file__).resolve().parent
SPEC = SceneSpec(short_side=(192, 192))  # tiny frames keep the fixture small
TSV_COLUMNS = ["index", "image", "question", "multi-choice options", "answer", "category", "l2-category"]


def jpeg(scene) -> bytes:
    ok, buf = cv2.imencode(".jpg", scene.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    return buf.tobytes()


def lettered(options: list[str]) -> list[str]:
    return [f"({'ABCDE'[i]}) {o}" for i, o in enumerate(options)]


def questions():
    """(image path under imgs/, scene, Task, Subtask, Category, text, five options, right option)."""
    street, aerial = make_scene(42, 3, SPEC), make_scene(42, 4, SPEC)
    asked = {q.type: q for q in street.questions}
    by_box = {tuple(o.box): o for o in street.objects}
    count = asked["count"]
    counted = by_box[tuple(count.boxes[0])].color
    numbers = [count.answer] + [n for n in ("2", "4", "6", "7") if n != count.answer][:3]
    relation = asked["relation"]
    a, b = (by_box[tuple(box)].color for box in relation.boxes)
    color = next(q for q in aerial.questions if q.type == "color")
    shape = color.question.split(" the ")[1].rstrip("?")
    colors = [color.answer] + [c for c in COLORS if c != color.answer][:3]
    return [
        (
            "monitoring_images/scene_42_3.jpg",
            street,
            "Perception",
            "Monitoring",
            "Object/counting",
            f"How many {counted} objects are there in the image?",
            sorted(numbers) + [f"The image does not feature the {counted} objects."],
            count.answer,
        ),
        (
            "monitoring_images/scene_42_3.jpg",
            street,
            "Reasoning",
            "Monitoring",
            "Object/position",
            f"Is the {a} object to the left or to the right of the {b} object?",
            ["left", "right", "above", "below", "The image does not feature the objects."],
            relation.answer,
        ),
        (
            "remote_sensing/scene_42_4.jpg",
            aerial,
            "Perception",
            "Remote Sensing",
            "color",
            f"What is the color of the {shape} in the image?",
            sorted(colors) + [f"The image does not feature the {shape}."],
            color.answer,
        ),
    ]


def main() -> None:
    data = HERE / "MME-RealWorld-Lite" / "data"
    entries, rows = [], []
    for n, (image, scene, task, subtask, category, text, options, right) in enumerate(questions()):
        (data / "imgs" / image).parent.mkdir(parents=True, exist_ok=True)
        (data / "imgs" / image).write_bytes(jpeg(scene))
        letter = "ABCDE"[options.index(right)]
        entries.append(
            {
                "Question_id": f"{task}/{subtask}/{category}/{n:04d}",
                "Question Type": "Multiple Choice",
                "Image": image,
                "Text": text,
                "Answer choices": lettered(options),
                "Ground truth": letter,
                "Task": task,
                "Subtask": subtask,
                "Category": category,
            }
        )
        # pandas writes a list cell as its Python repr
        rows.append(
            [
                n,
                base64.b64encode(jpeg(scene)).decode("ascii"),
                text,
                repr(lettered(options)),
                letter,
                f"{task}/{subtask}",
                category,
            ]
        )
    (data / "MME-RealWorld-Lite.json").write_text(json.dumps(entries, indent=4) + "\n")
    tsv = HERE / "MME-RealWorld-Base64" / "mme_realworld_lite.tsv"
    tsv.parent.mkdir(parents=True, exist_ok=True)
    with tsv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(TSV_COLUMNS)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
