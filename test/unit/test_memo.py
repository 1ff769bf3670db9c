"""The per-frame memo (core/memo.py): keyed by frame, kind and key, bounded in bytes, anonymous
frames never kept, a frame's entries dropped with its prefix."""

import numpy as np

from focus_ros.core.memo import ENTRY_OVERHEAD_BYTES, FrameMemo, nbytes_of


def grid(value=0.0, side=24):
    return np.full((side, side), value, np.float32)


def test_a_stored_value_comes_back_for_its_frame_kind_and_key_only():
    memo = FrameMemo(1 << 20)
    memo.put("f1", "relevance", ("red object", 0.25), grid(1.0))
    assert memo.get("f1", "relevance", ("red object", 0.25))[0, 0] == 1.0
    assert memo.get("f2", "relevance", ("red object", 0.25)) is None
    assert memo.get("f1", "existence", ("red object", 0.25)) is None
    assert memo.get("f1", "relevance", ("red object", 0.5)) is None


def test_an_anonymous_frame_is_never_memoised():
    memo = FrameMemo(1 << 20)
    memo.put(None, "relevance", "red object", grid())
    assert len(memo) == 0 and memo.bytes == 0
    assert memo.get(None, "relevance", "red object") is None


def test_the_memo_stays_under_its_byte_bound_with_many_frames_dropping_the_least_recently_used():
    one = nbytes_of(grid())
    assert one == 24 * 24 * 4 + ENTRY_OVERHEAD_BYTES
    memo = FrameMemo(10 * one)
    for i in range(100):
        memo.put(f"frame{i}", "relevance", "red object", grid(i))
        assert memo.bytes <= memo.max_bytes
        if i == 5:
            memo.get("frame0", "relevance", "red object")  # used again: kept longer than frames 1..
    assert len(memo) == 10 and memo.bytes == 10 * one
    assert memo.get("frame99", "relevance", "red object")[0, 0] == 99
    assert memo.get("frame89", "relevance", "red object") is None


def test_a_recent_use_keeps_an_entry_past_newer_ones():
    one = nbytes_of(grid())
    memo = FrameMemo(3 * one)
    for i in range(3):
        memo.put(f"f{i}", "relevance", "t", grid(i))
    memo.get("f0", "relevance", "t")
    memo.put("f3", "relevance", "t", grid(3))
    assert memo.get("f0", "relevance", "t") is not None and memo.get("f1", "relevance", "t") is None


def test_floats_and_tuples_count_their_overhead_and_a_value_over_the_bound_is_not_kept():
    assert nbytes_of(0.7) == ENTRY_OVERHEAD_BYTES
    assert nbytes_of((grid(), grid())) == 2 * nbytes_of(grid()) + ENTRY_OVERHEAD_BYTES
    memo = FrameMemo(1000)
    memo.put("f", "relevance", "big", grid())  # 2560 bytes > 1000
    memo.put("f", "existence", ("box", "t"), 0.7)
    assert memo.get("f", "relevance", "big") is None and memo.get("f", "existence", ("box", "t")) == 0.7
    assert memo.bytes == ENTRY_OVERHEAD_BYTES


def test_storing_a_key_again_replaces_its_value_and_its_size():
    memo = FrameMemo(1 << 20)
    memo.put("f", "relevance", "t", grid(side=24))
    memo.put("f", "relevance", "t", grid(2.0, side=8))
    assert len(memo) == 1 and memo.bytes == nbytes_of(grid(side=8))
    assert memo.get("f", "relevance", "t")[0, 0] == 2.0


def test_keep_frames_forgets_every_other_frame_and_clear_forgets_all():
    memo = FrameMemo(1 << 20)
    for f in ("a", "b", "c"):
        memo.put(f, "relevance", "t", grid())
        memo.put(f, "existence", ("box", "t"), 0.5)
    memo.keep_frames(["b", "c"])
    assert memo.get("a", "relevance", "t") is None and memo.get("b", "existence", ("box", "t")) == 0.5
    assert len(memo) == 4 and memo.bytes == 2 * (nbytes_of(grid()) + ENTRY_OVERHEAD_BYTES)
    memo.clear()
    assert len(memo) == 0 and memo.bytes == 0


def test_a_zero_bound_disables_the_memo():
    memo = FrameMemo(0)
    memo.put("f", "existence", "t", 0.5)
    assert len(memo) == 0 and memo.get("f", "existence", "t") is None
