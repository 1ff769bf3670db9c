"""The bounded compressed-frame header probe and the byte limit of frames, without DDS.

A JPEG's frame header (SOF) is found by walking its segments; fill bytes (0xFF runs of any length)
before a marker are skipped in native code, the walk stops at ``JPEG_HEADER_LIMIT`` bytes and
``JPEG_MAX_SEGMENTS`` segments, and nothing of the message is copied to probe it.
"""

import array

import cv2
import numpy as np
import pytest
from ros_helpers import sample_rgb

from focus_ros.io import images as conv
from focus_ros.ros.image_msgs import byte_array, rgb_to_compressed

MIB = 2**20


def _jpeg(width=40, height=30) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((height, width, 3), np.uint8))
    assert ok
    return buf.tobytes()


def _msg(data: bytes, fmt="jpeg"):
    msg = rgb_to_compressed(sample_rgb(4, 4), "jpeg")
    msg.format = fmt
    msg.data = byte_array(np.frombuffer(data, np.uint8))
    return msg


def _with_fill(jpeg: bytes, fill: int) -> bytes:
    """``jpeg`` with ``fill`` 0xFF fill bytes before every marker of its header (as the standard allows)."""
    out, i = bytearray(jpeg[:2]), 2
    while True:
        marker = jpeg[i + 1]
        out += b"\xff" * fill
        length = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        out += jpeg[i : i + 2 + length]
        i += 2 + length
        if marker == 0xDA:  # start of scan: the rest is image data
            return bytes(out + jpeg[i:])


@pytest.mark.parametrize("fill", [0, 1, 63, 64, 65, 575, 576, 577, 4671, 37439, 37441])
def test_fill_bytes_of_any_run_length_before_markers_are_skipped_and_the_size_is_read(fill):
    """Run lengths around the growing scan windows' edges (64, 64+512, +4096, +32768 bytes) included."""
    data = _with_fill(_jpeg(40, 30), fill)
    assert conv.compressed_size(_msg(data)) == (40, 30)


def test_a_3_mib_run_of_fill_bytes_inside_the_scan_limit_is_skipped():
    jpeg = _jpeg(40, 30)
    assert conv.compressed_size(_msg(jpeg[:2] + b"\xff" * (3 * MIB) + jpeg[2:])) == (40, 30)


def test_fill_bytes_before_the_markers_leave_a_jpeg_that_opencv_decodes():
    """The test's fill bytes are valid JPEG: the node's decoder reads the frame the probe sized."""
    data = _with_fill(_jpeg(40, 30), 100)
    assert conv.compressed_to_rgb(_msg(data)).shape == (30, 40, 3)


def test_a_frame_header_beyond_the_scan_limit_is_refused_with_a_clear_reason():
    jpeg = _jpeg()
    data = jpeg[:2] + b"\xff" * (50 * MIB) + jpeg[2:]  # valid, but its SOF is 50 MiB in
    with pytest.raises(
        conv.ImageError, match=rf"no frame header \(SOF\) in the first 4 MiB of its {len(data)} bytes"
    ) as err:
        conv.compressed_size(_msg(data))
    assert err.value.kind == "decode"
    assert conv.JPEG_HEADER_LIMIT == 4 * MIB


def test_metadata_segments_longer_than_the_scan_limit_are_refused():
    app1 = b"\xff\xe1" + (0xFFFF).to_bytes(2, "big") + bytes(0xFFFD)  # one 64 KiB segment
    jpeg = _jpeg()
    data = jpeg[:2] + app1 * 70 + jpeg[2:]  # 4.4 MiB of metadata before the frame header
    with pytest.raises(conv.ImageError, match="no frame header .SOF. in the first 4 MiB"):
        conv.compressed_size(_msg(data))
    assert conv.compressed_size(_msg(jpeg[:2] + app1 * 60 + jpeg[2:])) == (40, 30)  # 3.8 MiB: read


def test_more_segments_before_the_frame_header_than_the_limit_are_refused():
    """Thousands of 2-byte markers would otherwise cost one Python step each."""
    jpeg = _jpeg()
    many = jpeg[:2] + b"\xff\xd0" * (conv.JPEG_MAX_SEGMENTS + 1) + jpeg[2:]
    with pytest.raises(conv.ImageError, match=f"more than {conv.JPEG_MAX_SEGMENTS} segments") as err:
        conv.compressed_size(_msg(many))
    assert err.value.kind == "decode"
    assert conv.compressed_size(_msg(jpeg[:2] + b"\xff\xd0" * 100 + jpeg[2:])) == (40, 30)


def test_a_jpeg_that_is_fill_bytes_to_its_end_is_refused_as_truncated():
    with pytest.raises(conv.ImageError, match=r"no frame header \(SOF\) in \d+ bytes \(truncated\?\)"):
        conv.compressed_size(_msg(_jpeg()[:20] + b"\xff" * 1000))


@pytest.mark.parametrize(
    "data, end, first",
    [(b"", 1, 1), (b"\xff", 2, 2), (b"\xff" * 3, 4, 4), (b"\xff\xff\xc0\x00", 5, 3), (b"\xff" * 9, 5, 5)],
)
def test_the_fill_skip_returns_the_first_other_byte_or_the_end_it_was_given(data, end, first):
    buf = np.frombuffer(b"\xd8" + data, np.uint8)
    assert conv._skip_fill(buf, 1, end) == first


@pytest.mark.parametrize("ext", [".bmp", ".webp", ".tiff", ".ppm"])
def test_other_formats_are_probed_through_a_reader_over_the_message_buffer(ext):
    ok, buf = cv2.imencode(ext, np.zeros((30, 40, 3), np.uint8))
    assert ok
    assert conv.compressed_size(_msg(buf.tobytes(), ext[1:])) == (40, 30)


def test_the_buffer_reader_seeks_and_reads_like_a_file():
    reader = conv._BufferReader(memoryview(b"0123456789"))
    assert reader.read(3) == b"012" and reader.tell() == 3
    reader.seek(-2, 2)
    assert reader.read() == b"89" and reader.read(5) == b""
    reader.seek(4)
    reader.seek(1, 1)
    assert reader.read(2) == b"56"


@pytest.mark.parametrize(
    "data, size",
    [
        (array.array("B", bytes(1000)), 1000),  # what rclpy gives a uint8[] field
        (bytes(1000), 1000),
        (np.zeros((10, 25), np.uint16), 500),
        ([0] * 7, 7),
        (memoryview(bytes(12)), 12),
    ],
)
def test_data_size_counts_the_bytes_of_every_data_type(data, size):
    assert conv.data_size(data) == size


def test_a_message_over_max_frame_bytes_is_refused_with_both_sizes():
    conv.check_frame_bytes(array.array("B", bytes(MIB)), MIB)  # exactly the limit: fine
    with pytest.raises(conv.ImageError) as err:
        conv.check_frame_bytes(array.array("B", bytes(2 * MIB)), MIB)
    assert err.value.kind == "too_many_bytes"
    assert str(err.value) == (
        "message is too large: 2097152 bytes (2.0 MiB) of data, at most 1048576 (1.0 MiB, parameter max_frame_bytes)"
    )
