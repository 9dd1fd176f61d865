"""Reading image files into the array layout mmseg's pipeline expects.

mmseg's ``LoadImageFromFile`` (``color_type='color'``, cv2 backend) hands the
model a 3-channel **BGR uint8** array, and the segmentor's data preprocessor
(``bgr_to_rgb=True`` in the usual configs) and normalisation are tuned for
that. Images found in the wild are often something else: grayscale, with an
alpha channel, 16-bit, or float TIFFs. :func:`to_bgr_uint8` converts them the
following documented way, so inference sees what training saw:

* **Channels.** 2-D (grayscale) or 1-channel: replicated to 3 channels.
  2 channels (gray + alpha): the gray channel replicated, alpha dropped.
  3 channels: taken as BGR (what OpenCV decodes). 4 channels (BGRA): the
  alpha channel is dropped; fully transparent pixels keep the colour stored
  in them (often black). Any other channel count is an error.
* **Bit depth.** ``uint8``: unchanged. ``uint16``: scaled linearly over the
  full range, ``v8 = round(v16 / 257)`` (65535 -> 255); no per-image
  contrast stretching, so a 12-bit image stored in 16 bits looks dark, as
  it would to any viewer. Float images must hold values in ``[0, 1]`` and
  are scaled by 255. Other dtypes (signed integers, ``uint32``, floats
  outside ``[0, 1]``) are rejected with an error naming the dtype/range.

:class:`CheckedInferencerLoader` is that reading as the first step of an
inference pipeline (mmseg's ``InferencerLoader`` with these conversions and
errors that name the file).
"""
from pathlib import Path
from typing import Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

#: File name suffixes treated as images when a folder is given as input.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp',
                  '.ppm', '.pgm', '.pbm', '.jp2')


class ImageReadError(Exception):
    """An input file could not be read or converted to a BGR uint8 image.

    ``str(err)`` is ``'<name>: <reason>'``; both parts are also attributes.
    """

    def __init__(self, name: str, reason: str):
        super().__init__(f'{name}: {reason}')
        self.name = name
        self.reason = reason


def to_bgr_uint8(img: np.ndarray, name: str = 'image') -> np.ndarray:
    """Convert a decoded image to a contiguous ``H x W x 3`` BGR uint8 array.

    Args:
        img: the array as decoded with ``cv2.IMREAD_UNCHANGED`` (so colour
            images are BGR / BGRA).
        name: how to call the image in error messages (e.g. its path).

    Raises:
        ImageReadError: for layouts and dtypes that have no sensible
            conversion (see the module docstring).
    """
    if not isinstance(img, np.ndarray):
        raise ImageReadError(
            name, 'expected a numpy array, got '
            f'{type(img).__name__}')
    if img.ndim not in (2, 3) or img.size == 0:
        raise ImageReadError(
            name, 'expected an H x W or H x W x C image, got shape '
            f'{img.shape}')

    img = _to_uint8(img, name)

    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels in (1, 2):
        # gray, or gray + alpha: replicate the gray channel
        img = np.repeat(img[:, :, :1], 3, axis=2)
    elif channels == 4:
        img = img[:, :, :3]
    elif channels != 3:
        raise ImageReadError(
            name, 'expected 1 (gray), 2 (gray+alpha), 3 (BGR) or 4 (BGRA) '
            f'channels, got {channels}')
    return np.ascontiguousarray(img)


def _to_uint8(img: np.ndarray, name: str) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.floating):
        finite = np.isfinite(img)
        lo = float(img[finite].min()) if finite.any() else float('nan')
        hi = float(img[finite].max()) if finite.any() else float('nan')
        if not finite.all() or lo < 0.0 or hi > 1.0:
            raise ImageReadError(
                name, 'float image must hold finite values in [0, 1], got '
                f'range [{lo}, {hi}]' +
                ('' if finite.all() else ' and non-finite values') +
                '; convert it to 8-bit first')
        return np.round(img * 255.0).astype(np.uint8)
    raise ImageReadError(
        name, f'unsupported pixel type {img.dtype}; expected uint8, uint16 '
        'or float in [0, 1]')


def read_image_bgr(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as ``H x W x 3`` BGR uint8 (see module docstring).

    Raises:
        ImageReadError: naming the path, when the file cannot be opened,
            is not a decodable image, or has an unsupported layout.
    """
    path = Path(path)
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise ImageReadError(str(path), f'cannot open file ({err})') from err
    if buf.size == 0:
        raise ImageReadError(str(path), 'file is empty')
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(
            str(path),
            'cannot decode as an image (corrupt file or unsupported format)')
    return to_bgr_uint8(img, str(path))


@TRANSFORMS.register_module()
class CheckedInferencerLoader(BaseTransform):
    """First step of the inference pipeline: a path or an array in, a BGR
    uint8 image out (see the module docstring), then mmseg's
    ``LoadImageFromNDArray`` with the config loader's arguments (e.g.
    ``to_float32``).

    Takes what mmseg's ``InferencerLoader`` takes: a path, an array, or a
    dict with ``img_path`` and/or ``img``. An unreadable file raises
    :class:`ImageReadError` naming it.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.from_ndarray = TRANSFORMS.build(
            dict(type='mmseg.LoadImageFromNDArray', **kwargs))

    def transform(self, results):
        if isinstance(results, (str, Path)):
            results = dict(img_path=str(results))
        elif isinstance(results, np.ndarray):
            results = dict(img=results)
        elif not isinstance(results, dict):
            raise TypeError('expected an image path, an array or a dict, '
                            f'got {type(results).__name__}')
        results = dict(results)
        if results.get('img') is None:
            results['img'] = read_image_bgr(results['img_path'])
        else:
            results['img'] = to_bgr_uint8(
                results['img'], str(results.get('img_path') or 'image'))
        return self.from_ndarray(results)
