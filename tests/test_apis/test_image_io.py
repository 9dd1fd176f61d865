"""Conversion of image files to the BGR uint8 arrays mmseg's pipeline
expects (mmseg_vvt.apis.image_io)."""
import cv2
import numpy as np
import pytest

from mmseg_vvt.apis.image_io import (ImageReadError, read_image_bgr,
                                     to_bgr_uint8)


def test_uint8_bgr_is_unchanged():
    img = np.random.RandomState(0).randint(0, 256, (5, 7, 3), np.uint8)
    out = to_bgr_uint8(img)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize('shape', [(6, 4), (6, 4, 1)])
def test_gray_is_replicated_to_three_channels(shape):
    img = np.arange(24, dtype=np.uint8).reshape(shape)
    out = to_bgr_uint8(img)
    assert out.shape == (6, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], img.reshape(6, 4))


def test_alpha_is_dropped():
    rng = np.random.RandomState(1)
    bgra = rng.randint(0, 256, (3, 5, 4), np.uint8)
    np.testing.assert_array_equal(to_bgr_uint8(bgra), bgra[:, :, :3])
    gray_alpha = rng.randint(0, 256, (3, 5, 2), np.uint8)
    out = to_bgr_uint8(gray_alpha)
    np.testing.assert_array_equal(out, np.dstack([gray_alpha[:, :, 0]] * 3))


def test_16bit_is_scaled_over_the_full_range():
    img = np.array([[0, 257, 32768, 65535]], np.uint16)
    out = to_bgr_uint8(img)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])


def test_float_in_unit_range_is_scaled_and_out_of_range_rejected():
    img = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(to_bgr_uint8(img)[0, :, 2], [0, 128, 255])
    with pytest.raises(ImageReadError, match=r'x\.tif.*\[0, 1\]'):
        to_bgr_uint8(np.array([[0.0, 2.0]], np.float32), 'x.tif')
    with pytest.raises(ImageReadError, match='non-finite'):
        to_bgr_uint8(np.array([[0.0, np.nan]], np.float32), 'y')


def test_unsupported_layouts_are_rejected_with_the_name():
    with pytest.raises(ImageReadError, match=r'im\.png.*channels, got 5'):
        to_bgr_uint8(np.zeros((2, 2, 5), np.uint8), 'im.png')
    with pytest.raises(ImageReadError, match='int16'):
        to_bgr_uint8(np.zeros((2, 2), np.int16), 'im.png')
    with pytest.raises(ImageReadError, match='shape'):
        to_bgr_uint8(np.zeros((2, 2, 3, 1), np.uint8), 'im.png')


def test_read_image_bgr_reads_16bit_and_rgba_files(tmp_path):
    img16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    cv2.imwrite(str(tmp_path / 'a.png'), img16)
    out = read_image_bgr(tmp_path / 'a.png')
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0],
                                  np.round(img16 / 257).astype(np.uint8))

    bgra = np.random.RandomState(2).randint(0, 256, (4, 6, 4), np.uint8)
    cv2.imwrite(str(tmp_path / 'b.png'), bgra)
    np.testing.assert_array_equal(
        read_image_bgr(tmp_path / 'b.png'), bgra[:, :, :3])


def test_read_image_bgr_names_unreadable_files(tmp_path):
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'garbage')
    with pytest.raises(ImageReadError) as exc:
        read_image_bgr(bad)
    assert exc.value.name == str(bad) and 'cannot decode' in exc.value.reason
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(ImageReadError, match='empty'):
        read_image_bgr(empty)
    with pytest.raises(ImageReadError, match='cannot open'):
        read_image_bgr(tmp_path / 'missing.png')
