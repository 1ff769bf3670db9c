"""Reading rosbag2 bags and this package's message definitions with ``rosbags`` (ROS-free: no rclpy).

Shared by the replay tool (:mod:`focus_ros.ros.replay`) and the report of a recorded run
(:mod:`focus_ros.bags.report`): which directory is the bag, an opened reader, and a typestore
that knows this package's messages (``FocusResult`` with its ``TargetResult`` list, ``Region``,
``Question``) so recorded answers deserialize anywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


STORAGES = ("mcap", "sqlite3")
BAG_VERSION = 8  # Jazzy writes 8, Kilted reads 8 and 9


class BagError(Exception):
    """A bag that is missing, unreadable or unusable (reported to the user, exit status 2)."""


def _msg_dirs(package: str) -> list[Path]:
    """Where ``package``'s .msg files are: its installed share dir, and for focus_ros the source tree."""
    dirs = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            dirs.append(Path(get_package_share_directory(package)) / "msg")
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    if package == "focus_ros":
        dirs.append(Path(__file__).resolve().parents[2] / "msg")
    return [d for d in dirs if d.is_dir()]


def _register_package(store: Any, package: str) -> bool:
    """Register every .msg of ``package`` found by :func:`_msg_dirs` (the first directory that has
    a message wins; a later one fills in messages an older install lacks, e.g. a FocusResult
    referring to a TargetResult the install predates), all in one go so that messages referring to
    each other resolve; False when none was found."""
    from rosbags.typesys import get_types_from_msg

    files: dict[str, Path] = {}
    for directory in _msg_dirs(package):
        for f in sorted(directory.glob("*.msg")):
            files.setdefault(f.stem, f)
    types: dict = {}
    for stem, f in sorted(files.items()):
        types.update(get_types_from_msg(f.read_text(), f"{package}/msg/{stem}"))
    if types:
        store.register(types)
    return bool(types)


def ros_typestore() -> Any:
    """rosbags typestore of ROS 2 Kilted's standard messages (the distro of this package's wheels)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(getattr(Stores, "ROS2_KILTED", None) or Stores.ROS2_JAZZY)


def focus_typestore() -> Any:
    """:func:`ros_typestore` plus focus_ros's messages (FocusResult, TargetResult, Region, Question)."""
    store = ros_typestore()
    if not _register_package(store, "focus_ros"):
        raise BagError("focus_ros msg/*.msg not found (neither installed nor in the source tree)")
    return store


def ensure_type(store: Any, msgtype: str) -> bool:
    """Whether ``store`` knows ``msgtype``, after trying its package's installed .msg files."""
    if msgtype in store.types:
        return True
    try:
        _register_package(store, msgtype.split("/")[0])
    except Exception as exc:  # a package's .msg that rosbags cannot parse: skip that topic only
        logger.warning("cannot load message definitions of %s: %s", msgtype, exc)
    return msgtype in store.types


def offered_qos(depth: int) -> Any:
    """rosbags Qos of a recorded topic: reliable, volatile, keep-last ``depth``; zero durations
    mean the middleware default."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        QosReliability.RELIABLE,
        QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


def bag_writer(path: str | Path, storage: str, chunk_compression: bool = True) -> Any:
    """A ``rosbags`` Writer (not yet opened) of a new rosbag2 bag at ``path``: format
    :data:`BAG_VERSION`, ``storage`` one of :data:`STORAGES`; mcap with zstd chunk compression
    (read by the rosbag2 mcap plugin itself, no compressor plugin needed) unless
    ``chunk_compression`` is False."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    writer = Writer(
        Path(path),
        version=BAG_VERSION,
        storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3,
    )
    if storage == "mcap" and chunk_compression:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    return writer


def resolve_bag(path: str | Path) -> Path:
    """The rosbag2 directory (or .mcap file) for ``path``. A directory holding bag directories
    (e.g. a demo case with ``mcap/`` and ``sqlite3/``) resolves to one of them, mcap first; a
    storage file inside a bag directory resolves to that directory."""
    p = Path(path)
    if not p.exists():
        raise BagError(f"bag not found: {p}")
    if p.is_file():
        return p.parent if (p.parent / "metadata.yaml").is_file() else p
    if (p / "metadata.yaml").is_file() or any(p.glob("*.mcap")):
        return p
    children = sorted(
        (c for c in p.iterdir() if (c / "metadata.yaml").is_file()), key=lambda c: (c.name != "mcap", c.name)
    )
    if not children:
        raise BagError(f"not a rosbag2 bag (no metadata.yaml or .mcap file): {p}")
    logger.info("%s holds several bags; replaying %s", p, children[0])
    return children[0]


def open_bag(path: str | Path) -> Any:
    """An opened ``rosbags.highlevel.AnyReader`` of the bag at ``path``; BagError when unreadable."""
    from rosbags.highlevel import AnyReader

    bag = resolve_bag(path)
    reader = AnyReader([bag])
    try:
        reader.open()
    except Exception as exc:  # rosbags raises many kinds (YAML, sqlite, mcap format, missing files)
        raise BagError(f"cannot read bag {bag}: {exc}") from exc
    return reader
