"""The frame store: bounded latest frames per camera, lookup by stamp, lazy decoding at most once."""

import threading

import numpy as np
import pytest

from focus_ros.ros.frame_store import Frame, FrameStore


def _frame(camera="front", stamp=0, source="raw", decode=None, **kw):
    return Frame(camera, stamp, "optical", decode or (lambda: np.zeros((2, 3, 3), np.uint8)), source=source, **kw)


def test_each_camera_keeps_only_its_latest_frames():
    store = FrameStore(["front", "rear"], size=3)
    for i in range(1, 6):
        store.add(_frame("front", i))
    store.add(_frame("rear", 100))
    assert store.stamps("front") == [3, 4, 5]
    assert store.latest("front").stamp_ns == 5 and store.latest("rear").stamp_ns == 100
    assert store.received("front") == 5


def test_latest_is_none_before_the_first_frame_and_unknown_cameras_raise():
    store = FrameStore(["front"], size=2)
    assert store.latest("front") is None
    with pytest.raises(KeyError, match="unknown camera 'side'"):
        store.latest("side")
    with pytest.raises(KeyError):
        store.add(_frame("side", 1))


def test_find_by_stamp_is_exact_or_nearest_within_the_tolerance():
    store = FrameStore(["front"], size=4)
    for stamp in (1_000, 2_000, 3_000):
        store.add(_frame(stamp=stamp))
    assert store.find("front", 2_000).stamp_ns == 2_000
    assert store.find("front", 2_100) is None
    assert store.find("front", 2_100, tolerance_ns=500).stamp_ns == 2_000
    assert store.find("front", 2_600, tolerance_ns=500).stamp_ns == 3_000


def test_decoding_happens_on_first_use_only_and_once_across_threads():
    calls = []

    def decode():
        calls.append(1)
        return np.ones((4, 5, 3), np.uint8)

    frame = _frame(decode=decode)
    assert not frame.decoded and calls == []
    threads = [threading.Thread(target=frame.rgb) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and frame.decoded
    assert (frame.width, frame.height) == (5, 4)


def test_a_frame_that_cannot_be_decoded_reports_why_every_time_without_retrying():
    calls = []

    def decode():
        calls.append(1)
        raise ValueError("cannot decode compressed image (jpeg, 12 bytes)")

    frame = _frame(source="compressed", encoding="jpeg", decode=decode)
    for _ in range(2):
        with pytest.raises(ValueError, match=r"frame from 'front' \(compressed jpeg\) cannot be decoded: cannot"):
            frame.rgb()
    assert len(calls) == 1


def test_the_same_stamp_over_raw_and_compressed_keeps_the_raw_frame():
    store = FrameStore(["front"], size=4)
    assert store.add(_frame(stamp=7, source="compressed"))
    assert store.add(_frame(stamp=7, source="raw"))  # replaces the compressed twin
    assert not store.add(_frame(stamp=7, source="compressed"))  # the raw one stays
    assert store.stamps("front") == [7] and store.latest("front").source == "raw"
    # unstamped frames are never treated as duplicates
    store.add(_frame(stamp=0))
    store.add(_frame(stamp=0))
    assert store.stamps("front") == [7, 0, 0]


def test_store_needs_a_camera_and_a_positive_size():
    with pytest.raises(ValueError):
        FrameStore([], size=2)
    with pytest.raises(ValueError):
        FrameStore(["front"], size=0)


def test_stamps_going_back_a_little_are_dropped_and_a_big_jump_back_is_a_clock_reset():
    from focus_ros.ros.frame_store import CLOCK_RESET_NS, Added

    store = FrameStore(["front"], size=4)
    base = 100 * CLOCK_RESET_NS
    assert store.add(_frame(stamp=base)) is Added.STORED
    assert store.add(_frame(stamp=base + 10)) is Added.STORED
    late = store.add(_frame(stamp=base + 5))  # out of order: dropped, latest unchanged
    assert late is Added.OUT_OF_ORDER and not late
    assert store.latest("front").stamp_ns == base + 10 and store.newest_stamp("front") == base + 10
    assert store.add(_frame(stamp=0)) is Added.STORED  # unstamped frames are never compared
    reset = store.add(_frame(stamp=base - 5 * CLOCK_RESET_NS))  # clock reset: older frames forgotten
    assert reset is Added.CLOCK_RESET and reset
    assert store.stamps("front") == [base - 5 * CLOCK_RESET_NS]


def test_latest_skips_frames_that_failed_to_decode_so_the_last_good_one_stays_usable():
    def broken():
        raise ValueError("cannot decode compressed image (jpeg, 12 bytes)")

    store = FrameStore(["front"], size=4)
    good = _frame(stamp=1)
    bad = _frame(stamp=2, source="compressed", encoding="jpeg", decode=broken)
    store.add(good)
    store.add(bad)
    assert store.latest("front") is bad  # not known to be bad until decoded
    with pytest.raises(ValueError):
        bad.rgb()
    assert bad.failed and store.latest("front") is good
    assert store.latest("front", usable_only=False) is bad


def test_latest_by_arrival_is_the_newest_frame_that_had_arrived_when_the_question_did():
    store = FrameStore(["front"], size=3)
    for stamp, arrived in ((10, 1_000), (20, 2_000), (30, 3_000)):
        store.add(_frame(stamp=stamp, arrived_ns=arrived))
    assert store.latest("front", arrived_by=2_500).stamp_ns == 20  # frame 30 came after the question
    assert store.latest("front", arrived_by=3_000).stamp_ns == 30
    assert store.latest("front", arrived_by=9_000).stamp_ns == 30
    # the frame asked about was already dropped (size 3): the oldest stored one is the nearest
    assert store.latest("front", arrived_by=500).stamp_ns == 10
    assert store.latest("front").stamp_ns == 30  # no arrival time: the newest
