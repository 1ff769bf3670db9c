"""Readers for the FOCUS paper's high-resolution benchmarks besides V* Bench, in the layouts their
authors publish, turned into the :class:`~focus_ros.eval.bench.BenchItem` the V* reader makes (the
question with its options written in, V* Bench style; the gold option; a category as ``type``).

HR-Bench 4K / 8K (Wang et al., "Divide, Conquer and Combine", AAAI 2025; Hugging Face
``DreamMr/HR-Bench``): ``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv`` (VLMEvalKit tables: tab-separated,
one header line, the image as base64) or the ``.parquet`` files beside them (same columns; read only
when ``pyarrow`` is installed). Columns ``index, question, answer, category, A, B, C, D,
cycle_category, image``; ``answer`` is the gold letter, ``category`` ``single`` (FSP) or ``cross``
(FCP). Every question appears once per ``cycle_category`` with its options rotated, all on one
image; accuracy over all rows equals the authors' mean over cycles, as each cycle holds every
question once. ``type`` is ``<file stem>/<category>`` (``hr_bench_4k/single``), so a folder holding
both versions keeps them apart.

MME-RealWorld and MME-RealWorld-Lite (Zhang et al. 2024; ``yifanzhang114/MME-RealWorld``,
``yifanzhang114/MME-RealWorld-Lite``), either layout the authors publish:

* the annotation JSON with an image folder: ``MME_RealWorld.json`` (or ``MME_RealWorld_CN.json``)
  beside the decompressed image folders, ``data/MME-RealWorld-Lite.json`` with ``data/imgs/``; a
  list of entries with ``Question_id, Image`` (a path under the image folder)``, Text, Answer
  choices`` (``"(A) ..."`` strings)``, Ground truth`` (a letter)``, Task, Subtask, Category``.
* the base64 tables of ``yifanzhang114/MME-RealWorld-Base64`` (``mme_realworld_lite.tsv``, and the
  ``MME_RealWorld_base64_*.json`` chunks) and the parquet shards of ``yifanzhang114/MME-RealWorld-
  lite-lmms-eval`` / ``-Lmms-eval`` (``data/train-*-of-*.parquet``, with pyarrow): columns ``index,
  image`` (``bytes`` in the shards)``, question, multi-choice options`` (a list of ``"(A) ..."``,
  in a TSV written as a Python list literal)``, answer, category`` (``Perception/Monitoring``)``,
  l2-category``.

``type`` is ``<Task>/<Subtask>`` (the TSV's ``category``), the level the authors report besides
per category; the id keeps ``Question_id`` (or the table's index) to join anything finer.

Options keep their published order and letters (these benchmarks' protocols score letters; HR-Bench
rotates them itself). Base64 images are decoded once and written to ``image_dir`` under a name
from their content, so rows sharing an image share one file, and the frame prefix, consecutively,
as ``focus-bench`` reuses it; a second read finds the files already there.
"""

from __future__ import annotations

import ast
import base64
import binascii
import csv
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .items import BenchItem, format_question

log = logging.getLogger(__name__)

HRBENCH_COLUMNS = ("index", "question", "answer", "category", "image")
MME_TABLE_COLUMNS = ("index", "question", "multi-choice options", "answer", "category")
MME_IMAGE_COLUMNS = ("image", "bytes")  # the Base64 tables say image, lmms-eval's parquet bytes
MME_ENTRY_KEYS = ("Image", "Text", "Answer choices", "Ground truth")
MME_ANNOTATIONS = ("MME_RealWorld.json", "MME_RealWorld_CN.json", "MME-RealWorld-Lite.json", "MME_RealWorld_Lite.json")
TABLE_SUFFIXES = (".tsv", ".parquet")
# VLMEvalKit writes an image that an earlier row already holds as that row's index, a short number
REFERENCE = re.compile(r"\d{1,64}")
_LETTERED = re.compile(r"\s*\(([A-Z])\)\s*(.*)", re.DOTALL)
_MAGIC: tuple[tuple[Callable[[bytes], bool], str], ...] = (  # what cv2.imread reads back
    (lambda b: b[:3] == b"\xff\xd8\xff", ".jpg"),
    (lambda b: b[:8] == b"\x89PNG\r\n\x1a\n", ".png"),
    (lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP", ".webp"),
    (lambda b: b[:2] == b"BM", ".bmp"),
    (lambda b: b[:4] in (b"II*\x00", b"MM\x00*"), ".tif"),
)


# ----------------------------------------------------------------------------- tables
@contextmanager
def _large_csv_fields():
    """csv refuses fields over 128 KiB by default; one base64 8K image is several MB."""
    before = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _tsv_rows(path: Path, required: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` per data line of a VLMEvalKit TSV (pandas' quoting, read by the csv module)."""
    with _large_csv_fields(), path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: empty file, expected a header line")
        _require_columns(path, header, required)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}:{reader.line_num}"
            if len(row) != len(header):
                raise ValueError(f"{where}: {len(row)} fields where the header has {len(header)}")
            yield where, dict(zip(header, row))


def _parquet_rows(path: Path, required: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            f"{path}: reading parquet needs pyarrow, which is not installed; install it "
            f"(pip install pyarrow) or use the .tsv file the benchmark publishes beside it"
        ) from exc
    try:
        pf = pq.ParquetFile(path)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid / ArrowIOError
        raise ValueError(f"{path}: not a readable parquet file ({exc})") from exc
    _require_columns(path, pf.schema_arrow.names, required)
    n = 0
    # a few rows per batch: one 8K image is several MB, and a whole row group may be hundreds
    for batch in pf.iter_batches(batch_size=8):
        for row in batch.to_pylist():
            yield f"{path}: row {n}", row
            n += 1


def _table_rows(path: Path, required: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = _parquet_rows if path.suffix == ".parquet" else _tsv_rows
    return reader(path, tuple(required))


def _require_columns(path: Path, columns: Iterable[str], required: Iterable[str]) -> None:
    have = set(columns)
    missing = [c for c in required if c not in have]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(sorted(have))})")


def _blank(value: Any) -> bool:
    """No value: what pandas writes for NaN into a TSV (""), or None / NaN from parquet."""
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if _blank(value):
        raise ValueError(f"{where}: empty {key!r}")
    return str(value).strip()


def _index(value: Any) -> str:
    """A row's index as text: 12 from a TSV ("12") and from parquet (12, or 12.0 after a NaN)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


# ----------------------------------------------------------------------------- images
def image_suffix(data: bytes) -> str | None:
    """The file suffix of an encoded image cv2 can read (JPEG, PNG, WebP, BMP, TIFF), from its
    first bytes; None for anything else."""
    return next((suffix for test, suffix in _MAGIC if test(data)), None)


def decode_image(value: Any, where: str) -> bytes:
    """The encoded image a table cell holds: base64 text (VLMEvalKit, lmms-eval), raw bytes, or a
    Hugging Face ``Image`` struct ``{"bytes": ..., "path": ...}``; ValueError when it is none."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray)):
        if image_suffix(bytes(value)):
            return bytes(value)
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{where}: the image is neither an encoded image nor base64") from exc
    if _blank(value) or not isinstance(value, str):
        raise ValueError(f"{where}: no image")
    try:
        data = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        try:  # line-wrapped base64 (not what VLMEvalKit writes, but valid base64)
            data = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{where}: the image is not valid base64 ({exc})") from exc
    if image_suffix(data) is None:
        raise ValueError(
            f"{where}: the decoded image is not a JPEG, PNG, WebP, BMP or TIFF file (starts with {data[:8]!r})"
        )
    return data


def store_image(data: bytes, image_dir: Path) -> Path:
    """``data`` written to ``image_dir`` under a name from its content (kept if already there);
    written to a temporary name first so an interrupted run leaves no truncated image behind."""
    path = image_dir / f"{hashlib.sha1(data).hexdigest()[:20]}{image_suffix(data)}"
    if not (path.is_file() and path.stat().st_size == len(data)):
        image_dir.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        part.write_bytes(data)
        part.replace(path)
    return path


class _TableImages:
    """The images of one table's rows, stored in ``image_dir``; VLMEvalKit's references (an image
    cell holding the index of the row that has the image) resolved once the table is read."""

    def __init__(self, source: Path, image_dir: str | Path | None):
        if image_dir is None:
            raise ValueError(f"{source} holds its images as base64: pass image_dir, the folder to decode them to")
        self.source, self.dir = source, Path(image_dir)
        self.by_index: dict[str, str] = {}
        self.pending: list[tuple[BenchItem, str, str]] = []

    def add(self, item: BenchItem, index: str, value: Any, where: str) -> None:
        if isinstance(value, str) and REFERENCE.fullmatch(value.strip()):
            self.pending.append((item, value.strip(), where))
            return
        item.image = str(store_image(decode_image(value, where), self.dir).resolve())
        self.by_index[index] = item.image

    def resolve(self) -> None:
        for item, ref, where in self.pending:
            if ref not in self.by_index:
                raise ValueError(f"{where}: the image refers to row index {ref}, which has no image")
            item.image = self.by_index[ref]

    @property
    def count(self) -> int:
        return len(set(self.by_index.values()))


# ----------------------------------------------------------------------------- items
def _lettered_options(values: Any, where: str) -> list[str]:
    """``["(A) red", "(B) blue"]`` -> ``["red", "blue"]``; the letters must run A, B, C, ..."""
    if isinstance(values, str):
        try:
            values = ast.literal_eval(values.strip())  # a TSV holds the list as a Python literal
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"{where}: options are not a list ({exc})") from exc
    if not isinstance(values, (list, tuple)) or len(values) < 2:
        raise ValueError(f'{where}: options must be a list of at least two "(A) ..." strings, got {values!r}')
    options = []
    for i, value in enumerate(values):
        m = _LETTERED.fullmatch(str(value))
        if not m or m.group(1) != chr(ord("A") + i) or not m.group(2).strip():
            raise ValueError(f'{where}: option {i + 1} is {value!r}, expected "({chr(ord("A") + i)}) ..."')
        options.append(m.group(2).strip())
    return options


def _make_item(
    question: str, options: list[str], letter: str, qtype: str, item_id: str, where: str, image: str = ""
) -> BenchItem:
    """The V*-style item: options written into the question, the gold option as ``answer``."""
    letter = letter.strip().upper()
    letters = [chr(ord("A") + i) for i in range(len(options))]
    if letter not in letters:
        raise ValueError(f"{where}: the answer {letter!r} is not one of the options' letters {''.join(letters)}")
    if len(set(options)) != len(options):
        # BenchItem.answer_letter finds the gold letter again from the gold option's text, so only the
        # first of two equal options scores; refusing the file would refuse the whole benchmark
        log.warning("%s: two options have the same text (%s); only the first of them is scored correct", where, options)
    return BenchItem(
        image, format_question(question, options), options[letters.index(letter)], qtype, [], options, item_id
    )


def _check_parse(items: list[BenchItem]) -> None:
    """Every method finds the options in the question's text (:func:`parse_options`); a stem or option
    holding "(B)"-like text could hide them, leaving that question to free text: warn, by id."""
    from ..core.methods.answer import parse_options

    hidden = [it.id for it in items if len(parse_options(it.question).options) != len(it.options)]
    if hidden:
        log.warning(
            "%d question(s) whose options parse_options does not find (answered as free text): %s",
            len(hidden),
            ", ".join(hidden[:5]) + (" ..." if len(hidden) > 5 else ""),
        )


def _unique_ids(items: list[BenchItem], source: Path) -> None:
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise ValueError(f"{source}: index {it.id.rsplit('/', 1)[-1]} appears twice")
        seen.add(it.id)


def _table_files(path: Path, accepts: Callable[[Path], bool], what: str) -> list[Path]:
    """``path`` itself, or the tables in the folder it names (one file per stem: the parquet file
    when pyarrow can read it, else the TSV)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    found = sorted(p for p in path.iterdir() if p.suffix in TABLE_SUFFIXES and accepts(p))
    by_stem: dict[str, list[Path]] = {}
    for p in found:
        by_stem.setdefault(p.stem, []).append(p)
    prefer = ".parquet" if _has_pyarrow() else ".tsv"
    files = [next((p for p in ps if p.suffix == prefer), ps[0]) for ps in by_stem.values()]
    if not files:
        raise ValueError(f"no {what} table (.tsv or .parquet) in {path}")
    return files


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _room(items: list, limit: int | None) -> bool:
    return limit is None or len(items) < limit


# ----------------------------------------------------------------------------- HR-Bench
def _is_hrbench(p: Path) -> bool:
    return re.sub(r"[^a-z0-9]", "", p.stem.lower()).startswith("hrbench")


def load_hrbench(path: str | Path, image_dir: str | Path, limit: int | None = None) -> list[BenchItem]:
    """HR-Bench questions from ``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv`` (or their ``.parquet``), or
    from every such table in a folder, in file order; images decoded into ``image_dir``. ``limit``:
    stop after that many questions (a subset without decoding the rest of a multi-GB file)."""
    files = _table_files(Path(path), _is_hrbench, "HR-Bench")
    items: list[BenchItem] = []
    for file in files:
        if not _room(items, limit):
            break
        images, start = _TableImages(file, image_dir), len(items)
        for where, row in _table_rows(file, HRBENCH_COLUMNS):
            if not _room(items, limit):
                break
            index = _index(row["index"])
            options = []
            for letter in (chr(ord("A") + i) for i in range(26)):
                if _blank(row.get(letter)):
                    break
                options.append(str(row[letter]).strip())
            if len(options) < 2:
                raise ValueError(f"{where}: needs options in columns A, B, ... (at least two)")
            item = _make_item(
                _text(row, "question", where),
                options,
                _text(row, "answer", where),
                f"{file.stem}/{_text(row, 'category', where)}",
                f"{file.stem}/{index}",
                where,
            )
            images.add(item, index, row["image"], where)
            items.append(item)
        images.resolve()
        _unique_ids(items[start:], file)
        log.info(
            "HR-Bench: %d questions on %d images from %s (images in %s)",
            len(items) - start,
            images.count,
            file,
            images.dir,
        )
    if not items:
        raise ValueError(f"no HR-Bench questions in {path}")
    _check_parse(items)
    return items


# ----------------------------------------------------------------------------- MME-RealWorld
def _mme_sources(path: Path) -> list[Path]:
    """The annotation ``path`` names: itself, or the one JSON / table in the folder (or its
    ``data/``, where MME-RealWorld-Lite's data.zip puts it), or else the parquet shards of a
    Hugging Face dataset folder (``data/train-00000-of-00004.parquet`` ..., lmms-eval's copies)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"MME-RealWorld not found: {path}")
    found = [d / n for d in (path, path / "data") for n in MME_ANNOTATIONS if (d / n).is_file()]
    found += sorted(
        p for p in path.iterdir() if p.suffix in TABLE_SUFFIXES and "realworld" in re.sub(r"[^a-z]", "", p.stem.lower())
    )
    if len(found) > 1:
        raise ValueError(
            f"several MME-RealWorld annotation files in {path}: pass one of {', '.join(str(p) for p in found)}"
        )
    if found:
        return found
    shards = [p for d in (path, path / "data") if d.is_dir() for p in sorted(d.glob("*-of-*.parquet"))]
    if shards:
        return shards
    raise ValueError(
        f"no MME-RealWorld annotations in {path} (looked for {', '.join(MME_ANNOTATIONS)} "
        f"there and in data/, for mme_realworld*.tsv / .parquet, and for parquet shards)"
    )


def _mme_image_roots(annotation: Path, given: Path) -> list[Path]:
    """Where an entry's ``Image`` path may start: the annotation's folder (the full set: the JSON
    beside the decompressed image folders), its ``imgs/`` (the Lite set's data.zip), and the same
    under the folder the user named."""
    roots = [annotation.parent, annotation.parent / "imgs"]
    if given.is_dir():
        roots += [given, given / "imgs"]
    return list(dict.fromkeys(r.resolve() for r in roots))


def _mme_entries(entries: list, annotation: Path, given: Path, limit: int | None) -> list[BenchItem]:
    roots = _mme_image_roots(annotation, given)
    items: list[BenchItem] = []
    missing: list[str] = []
    ids: dict[str, int] = {}
    for n, entry in enumerate(entries):
        if not _room(items, limit):
            break
        where = f"{annotation}: entry {n}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: not an object")
        absent = [k for k in MME_ENTRY_KEYS if k not in entry]
        if absent:
            raise ValueError(f"{where}: missing {', '.join(absent)} (has: {', '.join(sorted(entry))})")
        options = _lettered_options(entry["Answer choices"], where)
        qtype = "/".join(str(entry[k]).strip() for k in ("Task", "Subtask") if not _blank(entry.get(k))) or "other"
        item_id = str(entry.get("Question_id") or f"{annotation.stem}/{n}")
        if item_id in ids:
            # the id keys results.json; keep both questions, told apart
            ids[item_id] += 1
            log.warning("%s: Question_id %s appears again; this one is %s#%d", where, item_id, item_id, ids[item_id])
            item_id = f"{item_id}#{ids[item_id]}"
        else:
            ids[item_id] = 1
        item = _make_item(
            _text(entry, "Text", where), options, _text(entry, "Ground truth", where), qtype, item_id, where
        )
        image = _text(entry, "Image", where)
        found = next((r / image for r in roots if (r / image).is_file()), None)
        if found is None:
            missing.append(image)
        else:
            item.image = str(found)
        items.append(item)
    if missing:
        raise FileNotFoundError(
            f"{annotation}: {len(missing)} image(s) not found, e.g. {', '.join(missing[:3])} "
            f"(looked under {', '.join(str(r) for r in roots)}; decompress the image archives "
            f"there)"
        )
    return items


def _mme_rows(
    rows: Iterable[tuple[str, dict[str, Any]]],
    source: Path,
    image_dir: str | Path | None,
    limit: int | None,
    name: str = "",
) -> list[BenchItem]:
    """Items from base64 table rows; ids ``<name>/<index>``, ``name`` the file's stem by default."""
    name = name or source.stem
    images = _TableImages(source, image_dir)
    items: list[BenchItem] = []
    for where, row in rows:
        if not _room(items, limit):
            break
        column = next((c for c in MME_IMAGE_COLUMNS if c in row), None)
        if column is None:
            raise ValueError(f"{where}: no image column ({' or '.join(MME_IMAGE_COLUMNS)})")
        index = _index(row["index"])
        options = _lettered_options(row["multi-choice options"], where)
        item = _make_item(
            _text(row, "question", where),
            options,
            _text(row, "answer", where),
            _text(row, "category", where),
            f"{name}/{index}",
            where,
        )
        images.add(item, index, row[column], where)
        items.append(item)
    images.resolve()
    _unique_ids(items, source)
    log.info(
        "MME-RealWorld: %d questions on %d images from %s (images in %s)", len(items), images.count, source, images.dir
    )
    return items


def _json_table_rows(path: Path, entries: list) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Base64 repository's JSON chunks: the table's rows as a list of objects."""
    for n, entry in enumerate(entries):
        where = f"{path}: entry {n}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: not an object")
        _require_columns(path, entry, MME_TABLE_COLUMNS)
        yield where, entry


def load_mme_realworld(
    path: str | Path, image_dir: str | Path | None = None, limit: int | None = None
) -> list[BenchItem]:
    """MME-RealWorld(-Lite) questions from the annotation JSON with its image folder, or from a
    base64 table (TSV, parquet, parquet shards or the Base64 repository's JSON) whose images are
    decoded into ``image_dir``; ``path`` is the file or a folder holding exactly one. ``limit``:
    stop after that many questions."""
    given = Path(path)
    sources = _mme_sources(given)
    annotation = sources[0]
    if len(sources) > 1:  # shards of one table: ids name the dataset folder, not a shard
        folder = given if given.name != "data" else given.parent
        rows = (row for shard in sources for row in _table_rows(shard, MME_TABLE_COLUMNS))
        items = _mme_rows(rows, given, image_dir, limit, name=folder.resolve().name)
    elif annotation.suffix in TABLE_SUFFIXES:
        items = _mme_rows(_table_rows(annotation, MME_TABLE_COLUMNS), annotation, image_dir, limit)
    else:
        try:
            entries = json.loads(annotation.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{annotation}: not JSON ({exc})") from exc
        if not isinstance(entries, list):
            raise ValueError(f"{annotation}: expected a list of questions, got {type(entries).__name__}")
        if entries and isinstance(entries[0], dict) and "multi-choice options" in entries[0]:
            # a chunk of the Base64 repository: the table's rows, images inline
            items = _mme_rows(_json_table_rows(annotation, entries), annotation, image_dir, limit)
        else:
            items = _mme_entries(entries, annotation, given, limit)
            log.info("MME-RealWorld: %d questions from %s", len(items), annotation)
    if not items:
        raise ValueError(f"no MME-RealWorld questions in {given}")
    _check_parse(items)
    return items


__all__ = ["load_hrbench", "load_mme_realworld", "decode_image", "store_image", "image_suffix"]
