"""The benchmark behind ``focus-bench``: questions in, per-method accuracy and cost out.

Every method answers every question on the same pipeline (same model, same frames, in the same
order), each method starting from an empty frame cache; questions about one frame are
consecutive, so a frame's prefix is prefilled once per method and reused, for every method alike.
One untimed warm-up question runs first. Costs come from :class:`FocusResult` (forward passes,
tokens prefilled, generated tokens, seconds of ``run``).

Answer matching: a scene answer is one lower-case word, so a reply is reduced to the first word
of the question type's vocabulary that it contains ("It is a red circle." -> "circle" for a
shape question; number words become digits); a multiple-choice reply is correct when the chosen
option is the right one.

Besides the pipeline's methods, the benchmark has one reference method of its own (not a
pipeline method; FOCUS does not see it):

oracle: a crop 4x the gold box — the ceiling of any cropping method; needs gold boxes. The crop is
a square centred on the union of the item's gold boxes, 4 times the union's longer side (clamped
to the frame), answered like every cropping method answers (``answer_from_boxes``, with the
frame prefix first when ``search.answer_view`` is ``global+crop``); an item without gold boxes is
answered from the whole frame.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.geometry import Box, square_box, union_all
from .items import BenchItem, format_question
from .scenes import ANSWER_WORDS

ALL_BUT_COLOR = "all*"  # the summary row over every type except "color" (reported apart)
NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"))
}
SYNONYMS = {"grey": "gray", "violet": "purple", "rhombus": "diamond", "plus": "cross"}
ORACLE = "oracle"  # the benchmark-only reference method (see the module docstring)
ORACLE_SCALE = 4.0  # the oracle crop's side, in longer sides of the gold boxes' union
ITEM_KEYS = ("image", "question", "gold", "sweep")  # what an answers.jsonl line adds to its record
log = logging.getLogger(__name__)


def load_questions(path: str | Path) -> list[BenchItem]:
    """Questions written by ``focus-scenes``: a directory with questions.jsonl, or the file itself.
    Image paths are relative to the file's directory (or absolute)."""
    p = Path(path)
    if p.is_dir():
        p = p / "questions.jsonl"
    if not p.is_file():
        raise FileNotFoundError(f"no questions file: {p}")
    items = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            image = Path(d["image"])
            items.append(
                BenchItem(
                    str(image if image.is_absolute() else (p.parent / image).resolve()),
                    d["question"],
                    str(d["answer"]),
                    d.get("type", "other"),
                    d.get("boxes", []),
                    d.get("options", []),
                    d.get("id", f"q{len(items):05d}"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{p}:{n}: not a question line ({exc})") from exc
    return items


def as_multiple_choice(items: Sequence[BenchItem]) -> list[BenchItem]:
    """Scene questions with their type's answer vocabulary as options, "(A) circle (B) square ...":
    every method then picks the likeliest word (V* Bench's protocol), so even a weak model scores
    at chance instead of failing to produce the word. Other items are returned unchanged."""
    out = []
    for it in items:
        vocab = ANSWER_WORDS.get(it.type)
        if vocab and not it.options and it.answer in vocab:
            options = list(vocab)
            out.append(replace(it, question=format_question(it.question, options), options=options))
        else:
            out.append(it)
    return out


def _words(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [SYNONYMS.get(NUMBER_WORDS.get(w, w), NUMBER_WORDS.get(w, w)) for w in words]


def normalise_answer(text: str, qtype: str | None = None) -> str:
    """The one lower-case word a scene question expects, found in a free-text reply; for other
    types the reply's words, lower-cased, joined by one space."""
    words = _words(text)
    vocab = ANSWER_WORDS.get(qtype or "")
    if vocab:
        for w in words:
            if w in vocab:
                return w
        return words[0] if words else ""
    return " ".join(words)


def is_correct(item: BenchItem, answer: str, choice: str = "") -> bool:
    if item.options:
        if choice:
            return choice == item.answer_letter
        return normalise_answer(answer) == normalise_answer(item.answer)
    return normalise_answer(answer, item.type) == normalise_answer(item.answer, item.type)


def box_hit(bbox: Sequence[float] | None, gold: Sequence[Sequence[float]]) -> bool | None:
    """Whether the returned box contains the centre of a gold box (None without gold boxes)."""
    if not gold:
        return None
    if not bbox:
        return False
    return held_gold(bbox, gold) is not None


def held_gold(bbox: Sequence[float], gold: Sequence[Sequence[float]]) -> Box | None:
    """The first gold box whose centre ``bbox`` contains (:func:`box_hit`'s rule), or None."""
    b = Box(*bbox)
    return next((g for g in (Box(*c) for c in gold) if b.contains_point(*g.center)), None)


class _ImageCache:
    """The last image read (questions of one frame are consecutive)."""

    def __init__(self, loader: Callable[[str], np.ndarray]):
        self.loader, self.path, self.image = loader, None, None

    def __call__(self, path: str) -> np.ndarray:
        if path != self.path:
            self.image, self.path = self.loader(path), path
        return self.image


def read_image(path: str) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image: {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def oracle_box(boxes: Sequence[Sequence[float]], width: int, height: int) -> Box:
    """The oracle's crop: a square centred on the union of the gold boxes, ORACLE_SCALE times its
    longer side, clamped to the frame; the whole frame without gold boxes."""
    if not boxes:
        return Box(0, 0, width, height)
    union = union_all([Box(*b) for b in boxes])
    return square_box(union, width, height, ORACLE_SCALE * max(union.width, union.height))


def run_oracle(pipeline, image: np.ndarray, item: BenchItem, frame_key: Any = None):
    """Answer ``item`` from the oracle crop (:func:`oracle_box`), costed like ``pipeline.run``."""
    from ..core.run_context import QuestionRun

    question = item.question.strip()
    if not question:
        raise ValueError("question is empty")
    ctx = QuestionRun.start(image, question, ORACLE, pipeline.adapter.name, frame_key)
    prefix = None
    if pipeline.search.answer_view == "global+crop":
        prefix, ctx.result.prefix_cached = pipeline.prefix(image, frame_key, ctx.meter)
        ctx.lap("prefill")
    box = oracle_box(item.boxes, *ctx.size)
    pipeline.answer_from_boxes(ctx, prefix, [box])
    ctx.lap("answer")
    return ctx.finish()


def run_bench(
    pipeline,
    items: Sequence[BenchItem],
    methods: Sequence[str],
    progress: bool = True,
    loader: Callable[[str], np.ndarray] = read_image,
    warmup: bool = True,
    done: Collection[tuple[str, str]] = (),
    sink: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Answer every item with every method; one record per (method, item) not in ``done`` (``(method,
    id)`` pairs answered before, see :func:`read_answers`), each handed to ``sink`` as soon as it
    exists, so a killed run keeps what it answered. ``methods`` are the pipeline's METHODS and/or
    ``"oracle"`` (:func:`run_oracle`). A done question is asked again, unrecorded, only when a later
    question of its frame is not done: the frame's cache then holds what a full run's would, so the
    costs match one."""
    from tqdm import tqdm

    images = _ImageCache(loader)
    todo = [(m, it) for m in methods for it in items if (m, it.id) not in done]
    if warmup and todo:
        pipeline.run(images(todo[0][1].image), todo[0][1].question, method="vanilla")  # first-call overheads
    records: list[dict] = []
    bar = tqdm(total=len(todo), disable=not progress, unit="q", file=sys.stderr, dynamic_ncols=True, desc="focus-bench")
    try:
        for method in methods:
            last = {it.image: i for i, it in enumerate(items) if (method, it.id) not in done}
            if not last:
                continue
            pipeline.clear_cache()
            right = asked = 0
            for i, item in enumerate(items):
                if (method, item.id) in done:
                    if i < last.get(item.image, -1):
                        _answer(pipeline, images, method, item)  # replay: the frame's cache as a full run left it
                    continue
                rec = _answer(pipeline, images, method, item)
                right += bool(rec["correct"])
                asked += 1
                records.append(rec)
                if sink is not None:
                    sink(rec)
                bar.set_postfix_str(f"{method} acc {right / asked:.2f}")
                bar.update()
    finally:
        bar.close()
    return records


def _answer(pipeline, images: _ImageCache, method: str, item: BenchItem) -> dict:
    """One method's record for one question (an error record when it fails)."""
    rec: dict[str, Any] = {"method": method, "id": item.id, "type": item.type}
    try:
        image = images(item.image)
        t0 = time.perf_counter()
        if method == ORACLE:
            r = run_oracle(pipeline, image, item, frame_key=item.image)
        else:
            r = pipeline.run(image, item.question, method=method, frame_key=item.image)
        seconds = time.perf_counter() - t0
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        rec.update(
            error=str(exc),
            correct=False,
            answer="",
            normalised="",
            choice="",
            forward_passes=0,
            tokens_prefilled=0,
            generated_tokens=0,
            seconds=0.0,
            bbox=None,
            box_hit=None,
        )
        return rec
    bbox = r.bbox.as_list() if r.bbox else None
    rec.update(
        answer=r.answer,
        normalised=normalise_answer(r.answer, None if item.options else item.type),
        choice=r.choice,
        correct=is_correct(item, r.answer, r.choice),
        forward_passes=r.forward_passes,
        tokens_prefilled=r.tokens_prefilled,
        generated_tokens=r.generated_tokens,
        seconds=seconds,
        timings=r.timings,
        bbox=bbox,
        box_hit=box_hit(bbox, item.boxes),
        prefix_cached=r.prefix_cached,
        regions=[g.to_dict() for g in r.regions],
        image_size=list(r.image_size),
        map_rank=gold_cell_rank(r, item.boxes),
    )
    return rec


# Where a method's answer box stands against the gold box, from the candidate regions it recorded
# (``FocusResult.regions``: every proposal, with the existence confidence of those it verified).
FOUND = "box holds the target"
OUTRANKED = "target verified, another chosen"
UNVERIFIED = "target proposed, not verified"
UNPROPOSED = "target never proposed"
WHERE = (FOUND, OUTRANKED, UNVERIFIED, UNPROPOSED)
# the target's longer side over the frame's longer side: 1/100 of a frame is 0.16 cells of a 16-cell
# grid, 1/32 half a cell (what a 128 px view's 8 px patches see of it)
FRAME_BINS = ((0.0, 1 / 100), (1 / 100, 1 / 80), (1 / 80, 1 / 50), (1 / 50, 1 / 32), (1 / 32, math.inf))
# the target's longer side over the answer box's, where the box holds it: the shape gate's scales
SHARE_BINS = ((0.0, 1 / 8), (1 / 8, 1 / 6), (1 / 6, 1 / 4), (1 / 4, 1 / 3), (1 / 3, 1 / 2), (1 / 2, math.inf))


def where_found(record: dict, gold: Sequence[Sequence[float]]) -> str | None:
    """One of :data:`WHERE` for a method's record (None without gold boxes, an answer box or regions):
    the answer box holds a gold centre; else a region that holds one was verified (the existence
    check ranked another candidate higher), was proposed but not verified (past the budget), or no
    proposal held one (the relevance map missed it)."""
    if not gold or record.get("box_hit") is None or not record.get("regions"):
        return None
    if record["box_hit"]:
        return FOUND
    holding = [g for g in record["regions"] if box_hit(g["bbox"], gold)]
    if any(g["confidence"] >= 0 for g in holding):
        return OUTRANKED
    return UNVERIFIED if holding else UNPROPOSED


def gold_cell_rank(result, gold: Sequence[Sequence[float]]) -> int | None:
    """How many cells of the method's relevance map score above the best-scoring cell that holds a
    gold box's centre (0: the map's maximum is on the target); None without a map or a gold box.
    Per question what the pointing gate measures over many: whether the map sees the target at all."""
    maps, mapping = getattr(result, "relevance_maps", None), getattr(result, "relevance_mapping", None)
    if not gold or not maps or mapping is None:
        return None
    cells = [mapping.point_to_cell(*Box(*g).center) for g in gold]
    return min(int((m > m[r, c]).sum()) for m in maps.values() for r, c in cells)


def target_share(bbox: Sequence[float], gold: Sequence[Sequence[float]]) -> float | None:
    """The longer side of the gold box whose centre the answer box holds, over the box's longer side."""
    g, b = held_gold(bbox, gold), Box(*bbox)
    return None if g is None else max(g.width, g.height) / max(b.width, b.height, 1e-9)


def _share_label(lo: float, hi: float) -> str:
    def frac(x: float) -> str:
        return "0" if x == 0 else f"1/{round(1 / x)}"

    return f">= {frac(lo)}" if math.isinf(hi) else f"{frac(lo)}-{frac(hi)}"


def _bin_label(x: float, bins: Sequence[tuple[float, float]]) -> str:
    return next(_share_label(lo, hi) for lo, hi in bins if lo <= x < hi)


def diagnose(items: Sequence[BenchItem], records: Sequence[dict]) -> dict[str, dict[str, dict]]:
    """Per method (``all*`` questions with gold boxes and recorded regions): questions and accuracy
    per :data:`WHERE` row (with the median :func:`gold_cell_rank` where the method has a relevance
    map); where the box holds the target, per target share of the box side
    (:data:`SHARE_BINS`); and per target side over the frame's longer side (:data:`FRAME_BINS`,
    with the share of boxes that hold it). What bounds a cropping method: finding the target, or
    reading it there, and at what size finding fails."""
    gold = {it.id: it.boxes for it in items}
    out: dict[str, dict[str, dict[str, list[tuple[bool, bool, int | None]]]]] = {}
    for r in records:
        if r["type"] == "color" or "error" in r:
            continue
        boxes = gold.get(r["id"], [])
        where = where_found(r, boxes)
        if where is None:
            continue
        if r["method"] not in out:
            out[r["method"]] = {
                "where": {w: [] for w in WHERE},
                "share": {_share_label(*b): [] for b in SHARE_BINS},
                "frame": {_share_label(*b): [] for b in FRAME_BINS},
            }
        rows = out[r["method"]]
        seen = (bool(r["correct"]), where == FOUND, r.get("map_rank"))
        rows["where"][where].append(seen)
        if where == FOUND:
            rows["share"][_bin_label(target_share(r["bbox"], boxes), SHARE_BINS)].append(seen)
        if r.get("image_size") and max(r["image_size"]) > 0:
            side = max(max(g.width, g.height) for g in (Box(*c) for c in boxes)) / max(r["image_size"])
            rows["frame"][_bin_label(side, FRAME_BINS)].append(seen)

    def stats(v: list[tuple[bool, bool, int | None]]) -> dict:
        ranks = [k for *_, k in v if k is not None]
        return {
            "n": len(v),
            "accuracy": _mean(c for c, *_ in v) if v else None,
            "found": _mean(f for _, f, _ in v) if v else None,
            "map_rank": float(np.median(ranks)) if ranks else None,
        }

    return {
        m: {part: {k: stats(v) for k, v in groups.items()} for part, groups in rows.items()} for m, rows in out.items()
    }


def growth_stops(records: Sequence[dict], s_max: int) -> dict[str, dict[str, int]]:
    """Per method, how many of its proposals (regions with grid cells) stopped growing before
    ``s_max`` cells: with a relevance map that has no contrast every region grows to ``s_max``."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        for g in r.get("regions") or []:
            r0, c0, r1, c1 = g.get("cells") or (0, 0, 0, 0)
            if r1 <= r0 or c1 <= c0:
                continue
            row = out.setdefault(r["method"], {"proposals": 0, "below_s_max": 0, "sides": {}})
            side = max(r1 - r0, c1 - c0)
            row["proposals"] += 1
            row["below_s_max"] += side < s_max
            row["sides"][side] = row["sides"].get(side, 0) + 1
    for row in out.values():
        row["sides"] = dict(sorted(row["sides"].items()))
    return out


def format_diagnosis(diagnosis: dict[str, dict[str, dict]]) -> str:
    """The table ``focus-bench`` prints under the main one: where each method's box stands, its
    accuracy there and the median rank of the target's cell in its relevance map (``map rank``, 0:
    the maximum), and how often the box holds the target by the target's size in the frame."""
    head = f"{'method':10} {'answer box':44} {'n':>4} {'accuracy':>9} {'box holds it':>13} {'map rank':>9}"
    lines = [head, "-" * len(head)]
    parts = (("where", "{}"), ("share", "holds it, target {} of its side"), ("frame", "target {} of the frame's side"))
    for m, groups in diagnosis.items():
        first = True
        for part, label in parts:
            for k, s in groups.get(part, {}).items():
                if not s["n"]:
                    continue
                found = f"{s['found']:13.3f}" if part == "frame" else " " * 13
                rank = f"{s['map_rank']:9.0f}" if part == "where" and s.get("map_rank") is not None else ""
                lines.append(
                    f"{m if first else '':10} {label.format(k):44} {s['n']:4d} {s['accuracy']:9.3f} "
                    f"{found} {rank}".rstrip()
                )
                first = False
    return "\n".join(lines)


def _mean(values: Iterable[float]) -> float:
    v = list(values)
    return float(np.mean(v)) if v else float("nan")


def _metrics(recs: list[dict]) -> dict:
    hits = [r["box_hit"] for r in recs if r.get("box_hit") is not None]
    return {
        "n": len(recs),
        "accuracy": _mean(r["correct"] for r in recs),
        "forward_passes": _mean(r["forward_passes"] for r in recs),
        "tokens_prefilled": _mean(r["tokens_prefilled"] for r in recs),
        "generated_tokens": _mean(r["generated_tokens"] for r in recs),
        "seconds": _mean(r["seconds"] for r in recs),
        "box_hit": _mean(hits) if hits else None,
        "errors": sum("error" in r for r in recs),
    }


def summarise(records: Sequence[dict]) -> dict[str, dict[str, dict]]:
    """method -> question type -> metrics, plus ``all*`` (every type but "color")."""
    out: dict[str, dict[str, dict]] = {}
    methods = list(dict.fromkeys(r["method"] for r in records))
    for m in methods:
        recs = [r for r in records if r["method"] == m]
        types = list(dict.fromkeys(r["type"] for r in recs))
        out[m] = {t: _metrics([r for r in recs if r["type"] == t]) for t in types}
        rest = [r for r in recs if r["type"] != "color"]
        if rest:
            out[m][ALL_BUT_COLOR] = _metrics(rest)
    return out


def format_table(summary: dict[str, dict[str, dict]]) -> str:
    """The per-method, per-type table ``focus-bench`` prints."""
    head = (
        f"{'method':10} {'type':18} {'n':>4} {'accuracy':>9} {'passes':>8} {'prefilled':>10} "
        f"{'generated':>10} {'seconds':>8}"
    )
    lines = [head, "-" * len(head)]
    for m, types in summary.items():
        for i, (t, s) in enumerate(types.items()):
            lines.append(
                f"{m if i == 0 else '':10} {t:18} {s['n']:4d} {s['accuracy']:9.3f} {s['forward_passes']:8.1f} "
                f"{s['tokens_prefilled']:10.0f} {s['generated_tokens']:10.1f} {s['seconds']:8.3f}"
            )
    lines.append(
        f"{ALL_BUT_COLOR}: every question type but 'color' (what colour is the <shape>: the identity "
        "itself is the fine detail), which is reported on its own row"
    )
    return "\n".join(lines)


def sweep_grid(specs: Sequence[str]) -> list[dict[str, str]]:
    """Every combination of ``search.NAME=V1,V2,...`` specs (the first varies slowest), as
    ``{"search.NAME": "V"}`` dicts; ValueError on a malformed spec, a name given twice or one outside
    ``search.*`` (a sweep keeps the model loaded, so only search settings can change)."""
    axes: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not vals:
            raise ValueError(f"expected search.NAME=V1,V2,..., got {spec!r}")
        if not key.startswith("search."):
            raise ValueError(f"only search.* settings can be swept with the model loaded, got {key!r}")
        if key in axes:
            raise ValueError(f"{key} is swept twice")
        axes[key] = vals
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def headline(types: dict[str, dict]) -> dict:
    """A method's one-line metrics: the ``all*`` row, or its only question type's."""
    return types.get(ALL_BUT_COLOR) or next(iter(types.values()))


def best_run(runs: Sequence[dict], method: str) -> int | None:
    """Index of the sweep run where ``method`` answered best (fewer passes break a tie); None when
    no run has it."""
    scored = [
        (headline(r["summary"][method])["accuracy"], -headline(r["summary"][method])["forward_passes"], -i)
        for i, r in enumerate(runs)
        if method in r.get("summary", {})
    ]
    return -max(scored)[2] if scored else None


def format_sweep(runs: Sequence[dict], best: int | None) -> str:
    """The table ``focus-bench --sweep`` prints: one row per combination, accuracy and mean forward
    passes of each method (``all*`` or the only type), ``*`` on the best, skipped combinations with why."""
    keys = list(dict.fromkeys(k for r in runs for k in r["settings"]))
    methods = list(dict.fromkeys(m for r in runs for m in r.get("summary", {})))
    widths = [max(len(k), 6) for k in keys]
    head = "  ".join(f"{k:>{w}}" for k, w in zip(keys, widths)) + "".join(
        f"  {m + ' acc':>12} {'passes':>7}" for m in methods
    )
    lines = [head, "-" * len(head)]
    for i, r in enumerate(runs):
        cells = "  ".join(f"{r['settings'].get(k, ''):>{w}}" for k, w in zip(keys, widths))
        if "summary" not in r:
            lines.append(f"{cells}  skipped: {r['skipped']}")
            continue
        cells += "".join(
            f"  {headline(r['summary'][m])['accuracy']:12.3f} {headline(r['summary'][m])['forward_passes']:7.1f}"
            if m in r["summary"]
            else f"  {'-':>12} {'-':>7}"
            for m in methods
        )
        lines.append(cells + ("  *" if i == best else ""))
    return "\n".join(lines)


def plot_accuracy_vs_passes(summary: dict[str, dict[str, dict]], path: str | Path, title: str = "") -> Path:
    """PNG: accuracy (``all*``, or all questions) against mean forward passes, one point per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    markers = "osD^vP*Xh"
    xs = []
    for i, (m, types) in enumerate(summary.items()):
        s = types.get(ALL_BUT_COLOR) or next(iter(types.values()))
        x, y = s["forward_passes"], s["accuracy"]
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        xs.append(x)
        ax.scatter([x], [y], s=70, marker=markers[i % len(markers)], zorder=3, label=f"{m}: {y:.2f} at {x:.1f} passes")
    if xs and max(xs) / max(min(xs), 1e-9) > 8:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
    if xs:
        ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("mean forward passes per question")
    ax.set_ylabel(f"accuracy ({ALL_BUT_COLOR})")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "accuracy vs forward passes", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _clean(x):
    """JSON without NaN or infinities (None instead)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def answer_line(item: BenchItem, record: dict, sweep: dict | None = None) -> str:
    """One ``answers.jsonl`` line: the whole record (what :func:`summarise` and :func:`diagnose`
    need, so a resumed run summarises as a full one) plus the question, its gold answer and, in a
    sweep, the search settings; ends with a newline."""
    extra = {"image": item.image, "question": item.question, "gold": item.answer}
    return json.dumps(_clean({**record, **extra, **({"sweep": sweep} if sweep is not None else {})})) + "\n"


def answer_key(record: dict) -> tuple[str, str, str]:
    """(method, question id, sweep settings as sorted JSON): what one answer stands for."""
    return record["method"], record["id"], json.dumps(record.get("sweep") or {}, sort_keys=True)


def read_answers(path: str | Path) -> list[dict]:
    """The lines of an ``answers.jsonl`` (as :func:`answer_line` wrote them; [] without the file).
    A last line cut short (the run was killed mid-write) is dropped with a warning and cut off the
    file, so appending goes on from a whole line; a bad line before it is a ValueError."""
    p = Path(path)
    if not p.is_file():
        return []
    data = p.read_bytes()
    out, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start)
        line = data[start:] if end < 0 else data[start:end]
        try:
            rec = json.loads(line) if line.strip() else None
            if rec is not None and not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            if end >= 0 and data[end + 1 :].strip():
                raise ValueError(f"{p}: line {len(out) + 1} is not an answer ({exc})") from exc
            rec = None
        if end < 0 and rec is not None:  # whole JSON but no newline yet: complete it
            with p.open("ab") as f:
                f.write(b"\n")
        elif rec is None and line.strip():
            log.warning("%s: ignoring a truncated last line (%d bytes; the run was cut off)", p, len(line))
            with p.open("r+b") as f:
                f.truncate(start)
            break
        if rec is not None:
            out.append(rec)
        start = len(data) if end < 0 else end + 1
    return out


def write_results(
    out: str | Path,
    items: Sequence[BenchItem],
    records: Sequence[dict],
    summary: dict,
    config: dict,
    diagnosis: dict | None = None,
) -> Path:
    """``results.json``: config, summary, :func:`diagnose`'s table, every question with every
    method's answer and candidate regions (``answers.jsonl`` is appended while answering)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_id: dict[str, dict] = {}
    for item in items:
        by_id[item.id] = {**asdict(item), "results": {}}
    for r in records:
        by_id[r["id"]]["results"][r["method"]] = {
            k: v for k, v in r.items() if k not in ("id", "method", "type", *ITEM_KEYS)
        }
    results = out / "results.json"
    body = {"config": config, "summary": summary, "diagnosis": diagnosis or {}, "questions": list(by_id.values())}
    results.write_text(json.dumps(_clean(body), indent=1) + "\n")
    return results


__all__ = [
    "BenchItem",
    "ORACLE",
    "oracle_box",
    "run_oracle",
    "load_questions",
    "as_multiple_choice",
    "normalise_answer",
    "is_correct",
    "box_hit",
    "run_bench",
    "summarise",
    "format_table",
    "plot_accuracy_vs_passes",
    "write_results",
    "answer_line",
    "answer_key",
    "read_answers",
    "ALL_BUT_COLOR",
    "where_found",
    "held_gold",
    "target_share",
    "gold_cell_rank",
    "diagnose",
    "format_diagnosis",
    "WHERE",
    "SHARE_BINS",
    "FRAME_BINS",
]
