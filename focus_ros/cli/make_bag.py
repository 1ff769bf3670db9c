"""``focus-make-bag``: write the demo rosbag2 bag (synthetic 1920x1080 RGB-D camera + timed questions).

    focus-make-bag OUT [--storage mcap|sqlite3|both] [--scenes N] [--seed S] [--rate HZ]
                   [--seconds-per-scene S] [--question-delay S] [--types shape color ...] [--raw]
                   [--no-depth]

writes ``OUT/mcap/`` and/or ``OUT/sqlite3/`` (rosbag2 directories: metadata.yaml + .mcap / .db3)
and ``OUT/ground_truth.json`` (every question with its answer, boxes in source pixels, bag time,
the header stamps of its scene's frames, and per target its true 3-D point in the camera's
optical frame; the camera's intrinsics). Every frame has a registered 16UC1 depth image (640x360,
millimetres, from the scene's known geometry) and the colour image's camera_info unless
``--no-depth``. The same arguments always give the same bag.
The defaults make the bag bundled in test/data/demo_bag (`focus-make-bag test/data/demo_bag --force`
regenerates it; only its mcap/ is bundled, to keep the repository small).
"""

from __future__ import annotations

import argparse
import sys

from ..bags.demo import (
    DEFAULT_JPEG_QUALITY,
    DEFAULT_QUESTION_DELAY,
    DEFAULT_QUESTION_TYPES,
    DEFAULT_RATE,
    DEFAULT_SCENES,
    DEFAULT_SECONDS_PER_SCENE,
    DEFAULT_SEED,
    GROUND_TRUTH,
    STORAGES,
    bag_summary,
    load_ground_truth,
    write_demo_bag,
)
from ..eval.scenes import QUESTION_TYPES


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``focus-make-bag``."""
    p = argparse.ArgumentParser(
        prog="focus-make-bag", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out", help="output directory (bag directories and ground_truth.json go inside)")
    p.add_argument("--storage", choices=(*STORAGES, "both"), default="mcap", help="default mcap")
    p.add_argument("--scenes", type=int, default=DEFAULT_SCENES, help=f"number of scenes (default {DEFAULT_SCENES})")
    p.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"scene seed (default {DEFAULT_SEED}, never used to train the embedded model)",
    )
    p.add_argument("--rate", type=float, default=DEFAULT_RATE, help=f"camera frame rate, Hz (default {DEFAULT_RATE})")
    p.add_argument(
        "--seconds-per-scene",
        type=float,
        default=DEFAULT_SECONDS_PER_SCENE,
        help=f"how long each scene is shown, s (default {DEFAULT_SECONDS_PER_SCENE})",
    )
    p.add_argument(
        "--question-delay",
        type=float,
        default=DEFAULT_QUESTION_DELAY,
        help=f"question time after the scene's first frame, s (default {DEFAULT_QUESTION_DELAY})",
    )
    p.add_argument(
        "--types",
        nargs="+",
        choices=QUESTION_TYPES,
        default=list(DEFAULT_QUESTION_TYPES),
        help=f"question types asked per scene, in order (default: {' '.join(DEFAULT_QUESTION_TYPES)})",
    )
    p.add_argument(
        "--jpeg-quality",
        type=int,
        default=DEFAULT_JPEG_QUALITY,
        help=f"JPEG quality of the compressed frames, 4:4:4 chroma (default {DEFAULT_JPEG_QUALITY})",
    )
    p.add_argument(
        "--raw", action="store_true", help="also write /camera/image_raw (sensor_msgs/Image rgb8, ~6 MB per frame)"
    )
    p.add_argument(
        "--no-depth",
        action="store_true",
        help="leave out /camera/depth/image_raw and /camera/camera_info (and the targets' 3-D points)",
    )
    p.add_argument("--force", action="store_true", help="replace bag directories that exist already")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on invalid arguments or an existing bag)."""
    args = build_parser().parse_args(argv)
    try:
        out = write_demo_bag(
            args.out,
            storage=args.storage,
            n_scenes=args.scenes,
            seed=args.seed,
            seconds_per_scene=args.seconds_per_scene,
            rate=args.rate,
            question_delay=args.question_delay,
            question_types=args.types,
            raw=args.raw,
            overwrite=args.force,
            jpeg_quality=args.jpeg_quality,
            depth=not args.no_depth,
        )
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"focus-make-bag: error: {exc}", file=sys.stderr)
        return 2
    storages = STORAGES if args.storage == "both" else (args.storage,)
    for name in storages:
        info = bag_summary(out / name)
        print(
            f"{info['path']}: {info['storage']}, {info['messages']} messages over {info['duration_s']:.1f} s, "
            f"{info['size_bytes'] / 1e6:.2f} MB"
        )
        for topic, t in info["topics"].items():
            print(f"  {topic} ({t['type']}): {t['count']}")
    truth = load_ground_truth(out)
    print(
        f"{out / GROUND_TRUTH}: {len(truth.questions)} questions on {truth.n_scenes} scenes "
        f"({truth.frame_width}x{truth.frame_height}, {truth.frames_per_scene} frames each)"
    )
    if truth.camera and truth.depth:
        fx, _, cx, _, fy, cy = truth.camera["k"][:6]
        d = truth.camera["d"]
        print(
            f"camera: fx={fx:g} fy={fy:g} cx={cx:g} cy={cy:g} {truth.camera['distortion_model']} "
            f"D={'0' if not any(d) else d}; depth "
            f"{truth.depth['width']}x{truth.depth['height']} {truth.depth['encoding']} ({truth.depth['unit']}), "
            f"table {truth.depth['table_near_m']:g}-{truth.depth['table_far_m']:g} m"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
