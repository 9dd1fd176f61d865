"""Loading transforms that fail loudly, naming the file, on bad data.

Drop-in replacements for ``LoadImageFromFile`` (mmcv) and
``LoadAnnotations`` (mmseg), same arguments:

* ``CheckedLoadImageFromFile``: an image that cannot be read or decoded
  (missing, empty, not an image, header damaged) raises
  :class:`DataFileError` whose message starts with the image path. mmcv's
  own transform raises a bare ``cv2.error`` / ``AssertionError`` /
  ``PIL.UnidentifiedImageError`` for most of these, some without the path.
* ``CheckedLoadAnnotations``: a label map that cannot be read, is not
  single-channel, or whose height x width differs from its image's raises
  :class:`DataFileError` naming the label file (and the image). mmseg would
  otherwise resize/crop the two independently and fail much later with a
  shape mismatch in the loss or the metric, or not at all.

Use them in place of the standard two in any mmseg pipeline::

    dict(type='CheckedLoadImageFromFile'),
    dict(type='CheckedLoadAnnotations', reduce_zero_label=True),

Note: with the default ``imdecode_backend='cv2'`` a JPEG cut off in the
middle of its image data still decodes (libjpeg fills the rest with grey and
only prints a warning); pass ``imdecode_backend='pillow'`` to turn that into
an error too, or run ``tools/check_ade20k.py`` on the dataset once.
"""
from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


class DataFileError(OSError):
    """An image or label file of a dataset is missing, unreadable or does
    not match its counterpart. The message starts with the file's path."""


def _describe(err):
    msg = str(err).strip() or repr(err)
    return f'{type(err).__name__}: {msg}'


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` whose read/decode errors name the image file.

    ``ignore_empty=True`` keeps mmcv's behaviour (return ``None`` so that the
    dataset picks another sample) for unreadable files.
    """

    def transform(self, results):
        filename = results['img_path']
        try:
            out = super().transform(results)
        except AssertionError as e:
            # mmcv asserts when the decoder returns None (data not decodable)
            raise DataFileError(
                f'{filename}: cannot load image (the {self.imdecode_backend} '
                f'decoder could not decode it); expected a readable image '
                f'file') from e
        except Exception as e:
            raise DataFileError(
                f'{filename}: cannot load image ({_describe(e)}); expected a '
                f'readable image file') from e
        return out


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that checks the label map it loads.

    Raises :class:`DataFileError` naming the label file when it cannot be
    read or decoded, when it is not a single-channel map, or when its size
    differs from the image loaded before it (``results['ori_shape']``, set by
    the image loading transform; the check is skipped when that key is
    absent, e.g. for a pipeline that loads only labels).
    """

    def _load_seg_map(self, results):
        path = results['seg_map_path']
        try:
            super()._load_seg_map(results)
        except Exception as e:
            raise DataFileError(
                f'{path}: cannot load label map ({_describe(e)}); expected '
                f'a readable single-channel PNG') from e
        seg = results['gt_seg_map']
        if seg.ndim != 2:
            raise DataFileError(
                f'{path}: label map has shape {tuple(seg.shape)}, expected '
                f'a single-channel (H, W) map')
        ori_shape = results.get('ori_shape')
        if ori_shape is not None and tuple(seg.shape) != tuple(ori_shape[:2]):
            img = results.get('img_path', 'its image')
            raise DataFileError(
                f'{path}: label map is {seg.shape[1]}x{seg.shape[0]} (WxH) '
                f'but image {img} is {ori_shape[1]}x{ori_shape[0]}; a label '
                f'map must have exactly the size of its image')
