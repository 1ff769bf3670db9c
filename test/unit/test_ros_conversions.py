"""Image conversions without DDS: every encoding, zero-copy intake, compressed frames, malformed messages."""

import numpy as np
import pytest
from ros_helpers import (
    BAYER_ENCODINGS,
    COLOUR_ENCODINGS,
    MONO_ENCODINGS,
    YUV_ENCODINGS,
    encode_rgb,
    expected_rgb,
    sample_rgb,
)

from focus_ros.io import images as conv
from focus_ros.io.images import compressed_to_rgb, image_to_rgb, image_view, view_to_rgb
from focus_ros.ros.image_msgs import byte_array, numpy_to_image, rgb_to_compressed, rgb_to_image


def _roundtrip(rgb, encoding, step=None):
    msg = numpy_to_image(encode_rgb(rgb, encoding), encoding, step=step)
    return msg, image_to_rgb(msg)


@pytest.mark.parametrize("encoding", COLOUR_ENCODINGS + MONO_ENCODINGS + YUV_ENCODINGS)
def test_every_supported_encoding_converts_to_the_expected_rgb(encoding):
    rgb = sample_rgb(64, 48, seed=1, block=2)  # 2x2 tiles: exact under 4:2:0 / 4:2:2 chroma
    msg, out = _roundtrip(rgb, encoding)
    want, tol = expected_rgb(rgb, encoding)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert int(np.abs(out.astype(int) - want.astype(int)).max()) <= tol


@pytest.mark.parametrize("encoding", BAYER_ENCODINGS)
def test_bayer_mosaics_demosaic_to_the_right_colour(encoding):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[...] = (200, 100, 30)
    _, out = _roundtrip(rgb, encoding)
    want, tol = expected_rgb(rgb, encoding)
    inner = (slice(4, -4), slice(4, -4))
    assert int(np.abs(out[inner].astype(int) - want[inner].astype(int)).max()) <= tol


def test_rgb8_intake_view_and_conversion_copy_nothing():
    rgb = sample_rgb(40, 30)
    msg = numpy_to_image(rgb, "rgb8")
    buffer = np.frombuffer(msg.data, np.uint8)
    view = image_view(msg)
    assert np.shares_memory(view.array, buffer)
    out = view_to_rgb(view)
    assert np.shares_memory(out, buffer)
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "mono16", "yuv422", "bgra8"])
def test_rows_padded_by_step_are_read_correctly_and_the_view_still_shares_memory(encoding):
    rgb = sample_rgb(30, 20, seed=2, block=2)
    row = encode_rgb(rgb, encoding).reshape(20, -1).view(np.uint8).shape[1]
    msg, out = _roundtrip(rgb, encoding, step=row + 10)
    assert msg.step == row + 10
    assert np.shares_memory(image_view(msg).array, np.frombuffer(msg.data, np.uint8))
    want, tol = expected_rgb(rgb, encoding)
    assert int(np.abs(out.astype(int) - want.astype(int)).max()) <= tol


def test_big_endian_mono16_uses_the_high_byte():
    gray = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    msg = numpy_to_image(gray, "mono16")
    msg.is_bigendian = 1
    msg.data = byte_array(gray.astype(">u2").view(np.uint8))
    out = image_to_rgb(msg)
    np.testing.assert_array_equal(out[..., 0], (gray >> 8).astype(np.uint8))


def test_twelve_megapixel_bgr8_frame_converts():
    rgb = np.zeros((3000, 4000, 3), np.uint8)
    rgb[1000:2000, 1500:2500] = (255, 0, 0)
    out = image_to_rgb(numpy_to_image(encode_rgb(rgb, "bgr8"), "bgr8"))
    assert out.shape == (3000, 4000, 3)
    assert tuple(out[1500, 2000]) == (255, 0, 0) and tuple(out[10, 10]) == (0, 0, 0)


# ----------------------------------------------------------------------------- malformed messages
def _msg(encoding="rgb8", width=4, height=3, step=12, size=36):
    msg = numpy_to_image(np.zeros((3, 4, 3), np.uint8), "rgb8")
    msg.encoding, msg.width, msg.height, msg.step = encoding, width, height, step
    msg.data = byte_array(np.zeros(size, np.uint8))
    return msg


def test_a_step_smaller_than_one_row_is_refused():
    with pytest.raises(ValueError, match="step 8 is smaller than one row"):
        image_view(_msg(step=8))


def test_data_shorter_than_step_times_height_is_refused():
    with pytest.raises(ValueError, match="image data is too short: 30 bytes, expected"):
        image_view(_msg(size=30))


def test_an_unknown_encoding_is_refused_with_the_supported_list():
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv444'.*rgb8"):
        image_view(_msg(encoding="yuv444"))


def test_an_odd_step_for_a_16_bit_encoding_is_refused():
    with pytest.raises(ValueError, match="odd"):
        image_view(_msg(encoding="mono16", width=4, height=3, step=9, size=27))


def test_zero_sized_and_odd_width_yuv_images_are_refused():
    with pytest.raises(ValueError, match="zero size"):
        image_view(_msg(width=0, step=0, size=0))
    with pytest.raises(ValueError, match="even width"):
        image_view(_msg(encoding="yuv422", width=3, height=3, step=6, size=18))


def test_message_builders_check_the_array_against_the_encoding():
    with pytest.raises(ValueError, match="3 channel"):
        numpy_to_image(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="uint16"):
        numpy_to_image(np.zeros((4, 4), np.uint8), "mono16")
    with pytest.raises(ValueError, match="rgb8, bgr8 or mono8"):
        rgb_to_image(np.zeros((4, 4, 3), np.uint8), "yuv422")


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_rgb_to_image_writes_what_image_to_rgb_reads(encoding):
    rgb = sample_rgb(16, 8, seed=3)
    out = image_to_rgb(rgb_to_image(rgb, encoding))
    want, _ = expected_rgb(rgb, encoding)
    np.testing.assert_array_equal(out, want)


# ----------------------------------------------------------------------------- compressed
def test_png_round_trip_is_exact_and_jpeg_is_close():
    rgb = sample_rgb(64, 48, seed=4, block=8)
    np.testing.assert_array_equal(compressed_to_rgb(rgb_to_compressed(rgb, "png")), rgb)
    halves = np.zeros((48, 64, 3), np.uint8)
    halves[:, :32] = (230, 20, 20)
    halves[:, 32:] = (20, 20, 230)
    jpeg = compressed_to_rgb(rgb_to_compressed(halves, "jpeg", quality=95))
    assert jpeg.shape == halves.shape
    assert int(np.abs(jpeg[8:40, 4:28].astype(int) - (230, 20, 20)).max()) < 12  # red stays red (RGB order)
    assert int(np.abs(jpeg[8:40, 36:60].astype(int) - (20, 20, 230)).max()) < 12


def test_undecodable_empty_and_depth_compressed_images_are_refused():
    msg = rgb_to_compressed(sample_rgb(8, 8), "jpeg")
    msg.data = byte_array(np.frombuffer(b"definitely not a jpeg", np.uint8))
    with pytest.raises(ValueError, match="cannot decode compressed image"):
        compressed_to_rgb(msg)
    msg.data = byte_array(np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match="has no data"):
        compressed_to_rgb(msg)
    msg.format = "16UC1; compressedDepth"
    with pytest.raises(ValueError, match="compressed depth"):
        compressed_to_rgb(msg)


# ----------------------------------------------------------------------------- cv_bridge selection
class _Bridge:
    def __init__(self, fail):
        self.fail, self.calls = fail, 0

    def imgmsg_to_cv2(self, msg, desired_encoding):
        self.calls += 1
        if self.fail:
            raise RuntimeError("unsupported by this bridge")
        return np.full((msg.height, msg.width, 3), 7, np.uint8)


def test_cv_bridge_converts_when_present_and_own_conversion_covers_its_refusals(monkeypatch):
    rgb = sample_rgb(6, 4)
    msg = numpy_to_image(encode_rgb(rgb, "bgr8"), "bgr8")
    working = _Bridge(fail=False)
    monkeypatch.setattr(conv, "_BRIDGE", working)
    assert conv.conversion_backend() == "cv_bridge"
    assert int(image_to_rgb(msg).max()) == 7 and working.calls == 1
    refusing = _Bridge(fail=True)
    monkeypatch.setattr(conv, "_BRIDGE", refusing)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    assert refusing.calls == 1
    monkeypatch.setattr(conv, "_BRIDGE", None)
    assert conv.conversion_backend() == "numpy/opencv"


# ----------------------------------------------------------------------------- size checks from headers only
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_size_reads_width_and_height_from_the_header_alone(fmt):
    msg = rgb_to_compressed(sample_rgb(123, 45, seed=5), fmt)
    assert conv.compressed_size(msg) == (123, 45)
    msg.data = byte_array(np.frombuffer(bytes(msg.data)[:200], np.uint8))  # the header survives truncation
    assert conv.compressed_size(msg) == (123, 45)


def test_compressed_size_walks_past_exif_and_other_segments_before_the_frame_header():
    import cv2

    ok, jpeg = cv2.imencode(".jpg", np.zeros((30, 40, 3), np.uint8))
    app1 = b"\xff\xe1" + (2 + 5000).to_bytes(2, "big") + bytes(5000)  # a big EXIF-like segment
    data = bytes(jpeg)[:2] + app1 + bytes(jpeg)[2:]
    msg = rgb_to_compressed(sample_rgb(4, 4), "jpeg")
    msg.data = byte_array(np.frombuffer(data, np.uint8))
    assert conv.compressed_size(msg) == (40, 30)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\xff\xd8 not a jpeg", "corrupt JPEG: no marker"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(12), r"no frame header \(SOF\)"),
        (b"\x89PNG\r\n\x1a\n" + bytes(4), "corrupt PNG: no IHDR"),
        (b"GIF89a? surely not", "not a recognisable"),
    ],
)
def test_bytes_that_are_no_image_are_refused_by_compressed_size_with_a_decode_error(data, words):
    msg = rgb_to_compressed(sample_rgb(4, 4), "jpeg")
    msg.data = byte_array(np.frombuffer(data, np.uint8))
    with pytest.raises(conv.ImageError, match=words) as err:
        conv.compressed_size(msg)
    assert err.value.kind == "decode"


@pytest.mark.parametrize(
    "size, kind",
    [
        ((0, 5), "zero_size"),
        ((1, 1), "too_small"),
        ((5, 1), "too_small"),
        ((8193, 10), "too_large"),
        ((10, 16384), "too_large"),
    ],
)
def test_frame_sizes_outside_the_limits_are_refused_with_their_kind(size, kind):
    with pytest.raises(conv.ImageError) as err:
        conv.check_frame_size(*size, max_side=8192)
    assert err.value.kind == kind
    conv.check_frame_size(2, 2, max_side=8192)
    conv.check_frame_size(8192, 2, max_side=8192)
    conv.check_frame_size(100000, 2, max_side=0)  # 0: no upper limit


def test_malformed_raw_messages_raise_image_errors_with_a_kind():
    for msg, kind in ((_msg(step=8), "step"), (_msg(size=30), "data"), (_msg(encoding="yuv444"), "encoding")):
        with pytest.raises(conv.ImageError) as err:
            image_view(msg)
        assert err.value.kind == kind
