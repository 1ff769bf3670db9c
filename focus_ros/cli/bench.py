"""``focus-bench``: accuracy and cost of every method on the same questions, same model, same frames.

    focus-bench [--model DIR_OR_ID] [--scenes DIR | --n N --seed S | --vstar DIR | --hrbench PATH
                 | --mme-realworld PATH]
                [--methods vanilla focus zoom attention random] [--out DIR]
                [--sweep search.NAME=V1,V2 ...] [--resume]

prints, per method and question type, accuracy, mean forward passes, mean prefilled tokens and
mean seconds per question; writes OUT/results.json (settings, summary, every question with every
method's answer), OUT/answers.jsonl and OUT/accuracy_vs_passes.png. ``--n N --seed S`` first
writes N scenes to OUT/scenes (as ``focus-scenes`` would); ``--scenes`` reads such a folder;
``--vstar`` reads V* Bench (category folders of images with JSON annotations); ``--hrbench`` HR-Bench
4K/8K (hr_bench_4k.tsv / .parquet, or a folder of them) and ``--mme-realworld`` MME-RealWorld(-Lite)
(the annotation JSON with its images, or a base64 table), their base64 images decoded once into
OUT/images (docs/benchmark_readers.md). ``--sweep`` answers once per combination of search settings
with the model loaded once and writes OUT/sweep.json instead.

Every answer is appended to OUT/answers.jsonl (and flushed) as soon as it exists, and OUT/run.json
records what the answers belong to (model, questions, types, settings). ``--resume`` continues an
interrupted run in the same OUT: it answers only what answers.jsonl lacks and summarises old and
new answers as one full run would; it refuses an OUT whose run.json names another model, question
set, types or settings. Without ``--resume`` an OUT that already holds answers is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..core.methods import METHODS
from .common import CliError, add_model_flags, load_pipeline, setup_logging


def default_model() -> str:
    """The embedded default model (models/embedded)."""
    from ..core.config import default_model_path

    try:
        return default_model_path()
    except FileNotFoundError as exc:
        raise CliError(f"{exc} (pass --model)") from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="focus-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_flags(p, require_model=False)  # default: the embedded model (models/embedded)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scenes", metavar="DIR", help="a folder written by focus-scenes (or its questions.jsonl)")
    src.add_argument("--vstar", metavar="DIR", help="V* Bench: direct_attributes/ and relative_position/ folders")
    src.add_argument(
        "--hrbench",
        metavar="PATH",
        help="HR-Bench: hr_bench_4k.tsv or hr_bench_8k.tsv (or .parquet, with pyarrow), or a folder "
        "holding them; images are decoded into OUT/images",
    )
    src.add_argument(
        "--mme-realworld",
        metavar="PATH",
        help="MME-RealWorld(-Lite): MME_RealWorld.json / data/MME-RealWorld-Lite.json beside its "
        "images, or a base64 table (mme_realworld_lite.tsv); a folder holding one",
    )
    p.add_argument("--n", type=int, default=None, help="generate N scenes (default 8 when no other source)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated scenes")
    p.add_argument(
        "--short-side",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=None,
        help="short side range of generated frames (default 1080 3000)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS + ("oracle",),
        default=list(METHODS),
        help="methods to compare (default: all of the pipeline's); 'oracle' answers from a crop "
        "4x the gold box, the ceiling of any cropping method (needs gold boxes)",
    )
    p.add_argument("--types", nargs="+", metavar="TYPE", help="only these question types (e.g. shape exists)")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions")
    p.add_argument(
        "--choices",
        action="store_true",
        help="ask scene questions as multiple choice over their answer words (likeliest option wins)",
    )
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="search.NAME=V1,V2",
        help="answer the questions once per combination of these search settings (repeatable; "
        "the model loads once) and print each one's accuracy and passes; writes OUT/sweep.json "
        "(e.g. --methods focus --sweep search.s_min=1,2 --sweep search.s_max=2,3)",
    )
    p.add_argument("--out", default="out/bench", help="output folder (default out/bench)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT: skip the answers OUT/answers.jsonl already holds (same model, "
        "questions, types and settings, checked against OUT/run.json)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


ANSWERS, MANIFEST = "answers.jsonl", "run.json"


def _manifest(args: argparse.Namespace, pipeline, source: dict) -> dict:
    """What answers in OUT belong to: a resumed run must match every entry (methods, --limit and
    the sweep grid may change: they only choose which answers to add)."""
    adapter = pipeline.adapter
    model = Path(args.model).expanduser()
    return {
        "model": str(model.resolve()) if model.exists() else args.model,  # one folder, however it was named
        "family": adapter.family,
        "dtype": str(adapter.dtype).replace("torch.", ""),
        "source": source,
        "types": sorted(args.types) if args.types else None,
        "multiple_choice": bool(args.choices),
        "search": asdict(pipeline.search),
        "zoom": asdict(pipeline.zoom),
        "attention": asdict(pipeline.attention),
    }


def _previous_answers(args: argparse.Namespace, out: Path, manifest: dict) -> list[dict]:
    """The answers an earlier run left in OUT (``--resume``; [] otherwise), after checking its
    run.json against ``manifest``; then run.json is (re)written for this run."""
    from ..eval import bench

    answers, path = out / ANSWERS, out / MANIFEST
    old: list[dict] = []
    if args.resume and answers.is_file():
        if not path.is_file():
            raise CliError(
                f"--resume: {answers} has no {path.name} beside it, so it cannot be checked; use a new --out"
            )
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"--resume: cannot read {path} ({exc})") from exc
        now = json.loads(json.dumps(manifest, default=str))  # as it reads back from run.json
        differ = [k for k in now if before.get(k) != now[k]]
        if differ:
            what = "; ".join(f"{k}: {before.get(k)!r} there, {now[k]!r} now" for k in differ)
            raise CliError(f"--resume: {out} holds answers of another run ({what}); use a new --out")
        try:
            old = bench.read_answers(answers)
        except ValueError as exc:
            raise CliError(f"--resume: {exc}") from exc
    elif answers.is_file():
        answers.unlink()  # empty: main() refused one with answers before anything ran
    path.write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    return [{k: v for k, v in r.items() if k not in ("image", "question", "gold")} for r in old]


def _answer_log(out: Path, by_id: dict, sweep_of=lambda: None):
    """An ``answers.jsonl`` appender for :func:`run_bench`'s ``sink``: each line flushed at once."""
    from ..eval import bench

    f = (out / ANSWERS).open("a")

    def sink(rec: dict) -> None:
        f.write(bench.answer_line(by_id[rec["id"]], rec, sweep_of()))
        f.flush()  # a killed process loses at most the answer being written

    return f, sink


def _in_order(records, items, methods) -> list[dict]:
    """``records`` of these items and methods in a full run's order (methods, then questions)."""
    rank = {(m, it.id): i for i, (m, it) in enumerate((m, it) for m in methods for it in items)}
    return sorted((r for r in records if (r["method"], r["id"]) in rank), key=lambda r: rank[r["method"], r["id"]])


def _items(args: argparse.Namespace, out: Path):
    from ..eval.bench import load_questions
    from ..eval.benchmarks import load_hrbench, load_mme_realworld
    from ..eval.scenes import SceneSpec, write_scenes
    from ..eval.vstar import load_vstar

    if args.vstar:
        return load_vstar(args.vstar), {"vstar": str(Path(args.vstar).resolve())}
    # --limit without --types takes the first questions, so the reader can stop there instead of
    # decoding every image of a multi-GB table (--types filters first: it has to read them all)
    first = args.limit if not args.types else None
    if args.hrbench:
        return (load_hrbench(args.hrbench, out / "images", limit=first), {"hrbench": str(Path(args.hrbench).resolve())})
    if args.mme_realworld:
        return (
            load_mme_realworld(args.mme_realworld, out / "images", limit=first),
            {"mme_realworld": str(Path(args.mme_realworld).resolve())},
        )
    if args.scenes:
        if args.n is not None:
            raise CliError("--n generates scenes; it cannot be combined with --scenes")
        return load_questions(args.scenes), {"scenes": str(Path(args.scenes).resolve())}
    n = 8 if args.n is None else args.n
    if n < 1:
        raise CliError("--n must be >= 1")
    spec = SceneSpec(short_side=tuple(args.short_side)) if args.short_side else SceneSpec()
    try:
        spec.validate()
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(f"writing {n} scenes (seed {args.seed}) to {out / 'scenes'}", file=sys.stderr)
    path = write_scenes(out / "scenes", n, args.seed, spec)
    return load_questions(path), {"n": n, "seed": args.seed, "spec": asdict(spec), "scenes": str(path.parent)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from ..core.methods import split_method_settings
    from ..eval import bench

    try:
        args.model = args.model or default_model()
        try:
            sweep = bench.sweep_grid(args.sweep)
        except ValueError as exc:
            raise CliError(f"--sweep: {exc}") from exc
        try:
            args.set, zoom, attention = split_method_settings(args.set)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        if not args.resume and (out / ANSWERS).is_file() and (out / ANSWERS).stat().st_size:
            # overwriting would throw away an interrupted run's answers, the loss --resume exists for
            raise CliError(
                f"{out / ANSWERS} holds answers of an earlier run: pass --resume to continue it, or a new --out"
            )
        try:
            items, source = _items(args, out)
        except (FileNotFoundError, ValueError, ImportError) as exc:  # ImportError: parquet without pyarrow
            raise CliError(str(exc)) from exc
        if args.types:
            items = [it for it in items if it.type in args.types]
        if args.limit is not None:
            items = items[: args.limit]
        if args.choices:
            items = bench.as_multiple_choice(items)
        if not items:
            raise CliError("no questions to ask (check --types / --limit)")
        pipeline = load_pipeline(args)
        pipeline.zoom, pipeline.attention = zoom, attention
        old = _previous_answers(args, out, _manifest(args, pipeline, source))
    except CliError as exc:
        print(f"focus-bench: error: {exc}", file=sys.stderr)
        return 2
    command = "focus-bench " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.sweep:
        return _sweep(args, pipeline, items, sweep, source, out, command, old)
    adapter = pipeline.adapter
    old = [r for r in old if not r.get("sweep")]
    t0 = time.perf_counter()
    f, sink = _answer_log(out, {it.id: it for it in items})
    with f:
        done = {(r["method"], r["id"]) for r in old}
        new = bench.run_bench(pipeline, items, args.methods, progress=not args.no_progress, done=done, sink=sink)
    wall = time.perf_counter() - t0
    records = _in_order(old + new, items, args.methods)
    summary = bench.summarise(records)
    config = {
        "model": args.model,
        "family": adapter.family,
        "device": str(adapter.device),
        "dtype": str(adapter.dtype).replace("torch.", ""),
        "attn_implementation": adapter.config.attn_implementation,
        "methods": args.methods,
        "questions": len(items),
        "multiple_choice": bool(args.choices),
        "source": source,
        "search": asdict(pipeline.search),
        "zoom": asdict(pipeline.zoom),
        "attention": asdict(pipeline.attention),
        "wall_seconds": round(wall, 3),
        "resumed_answers": len(records) - len(new),
        "command": command,
    }
    diagnosis = bench.diagnose(items, records)
    paths = {"results": bench.write_results(out, items, records, summary, config, diagnosis), "answers": out / ANSWERS}
    title = f"{Path(args.model).name} ({adapter.family}), {len(items)} questions" + (
        ", multiple choice" if args.choices else ""
    )
    png = bench.plot_accuracy_vs_passes(summary, out / "accuracy_vs_passes.png", title)
    frames = len({it.image for it in items})
    print(
        f"model {args.model} ({adapter.family}, {adapter.device}, {config['dtype']}, "
        f"{config['attn_implementation']}): {len(items)} questions on {frames} frames, {wall:.1f} s"
    )
    print(bench.format_table(summary))
    if diagnosis:
        print(bench.format_diagnosis(diagnosis))
    growth = bench.growth_stops([r for r in records if r["method"] == "focus"], pipeline.search.s_max)
    if growth:
        g = growth["focus"]
        sides = ", ".join(f"{k}: {v}" for k, v in g["sides"].items())
        print(
            f"focus proposals that stopped growing before s_max={pipeline.search.s_max}: {g['below_s_max']} of "
            f"{g['proposals']} ({g['below_s_max'] / g['proposals']:.1%}); by side in cells {sides}"
        )
    errors = sum("error" in r for r in records)
    if errors:
        print(f"{errors} question(s) failed; see {paths['results']}")
    resumed = f" ({config['resumed_answers']} answers from before --resume)" if config["resumed_answers"] else ""
    print(f"wrote {paths['results']}, {paths['answers']}{resumed}, {png}")
    return 1 if errors else 0


def _sweep(
    args: argparse.Namespace, pipeline, items, sweep: list[dict], source: dict, out: Path, command: str, old: list[dict]
) -> int:
    """``--sweep``: the methods on the same questions once per combination of search settings; each
    answer is appended with its settings, so ``--resume`` skips the combinations' answers it has."""
    from ..core.config import search_with
    from ..eval import bench

    base, runs = pipeline.search, []
    current: dict = {}
    t0 = time.perf_counter()
    f, sink = _answer_log(out, {it.id: it for it in items}, lambda: current)
    try:
        for settings in sweep:
            try:
                pipeline.search = search_with(base, settings)
            except ValueError as exc:  # e.g. s_max below s_min: that combination is not a setting
                runs.append({"settings": settings, "skipped": str(exc)})
                continue
            current = settings
            before = [{k: v for k, v in r.items() if k != "sweep"} for r in old if r.get("sweep") == settings]
            done = {(r["method"], r["id"]) for r in before}
            new = bench.run_bench(pipeline, items, args.methods, progress=not args.no_progress, done=done, sink=sink)
            records = _in_order(before + new, items, args.methods)
            runs.append(
                {
                    "settings": settings,
                    "search": asdict(pipeline.search),
                    "summary": bench.summarise(records),
                    "errors": sum("error" in r for r in records),
                }
            )
    finally:
        pipeline.search = base
        f.close()
    wall = time.perf_counter() - t0
    method = "focus" if "focus" in args.methods else args.methods[0]
    best = bench.best_run(runs, method)
    data = {
        "model": args.model,
        "methods": args.methods,
        "questions": len(items),
        "source": source,
        "best_by": method,
        "best": best,
        "runs": runs,
        "wall_seconds": round(wall, 3),
        "command": command,
    }
    path = out / "sweep.json"
    path.write_text(json.dumps(data, indent=1, default=float) + "\n")
    print(
        f"model {args.model}: {len(items)} questions, {sum('summary' in r for r in runs)} of {len(runs)} "
        f"combinations, {wall:.1f} s"
    )
    print(bench.format_sweep(runs, best))
    if best is not None:
        print(f"best ({method}, '*'): " + " ".join(f"--set {k}={v}" for k, v in runs[best]["settings"].items()))
    print(f"wrote {path}")
    errors = sum(r.get("errors", 0) for r in runs)
    if errors:
        print(f"{errors} answer(s) failed; see the runs' error counts in {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
