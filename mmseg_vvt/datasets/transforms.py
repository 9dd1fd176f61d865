"""Loading transforms that fail loudly, naming the file, on bad data.

Drop-in replacements for ``LoadImageFromFile`` (mmcv) and
``LoadAnnotations`` (mmseg), same arguments (the label loader adds
``num_classes`` and ``ignore_index``):

* ``CheckedLoadImageFromFile``: an image that cannot be read or decoded
  (missing, empty, not an image, header damaged, cut off) raises
  :class:`DataFileError` whose message starts with the image path. mmcv's
  own transform raises a bare ``cv2.error`` / ``AssertionError`` /
  ``PIL.UnidentifiedImageError`` for most of these, some without the path.
* ``CheckedLoadAnnotations``: a label map that cannot be read, is not
  single-channel, or whose height x width differs from its image's raises
  :class:`DataFileError` naming the label file (and the image). mmseg would
  otherwise resize/crop the two independently and fail much later with a
  shape mismatch in the loss or the metric, or not at all. With
  ``num_classes`` set, a value that is neither a class nor ignored (after
  ``reduce_zero_label`` and the class subset's ``label_map``) raises too,
  naming the file and the values: the loss would fail with a bare
  ``IndexError: Target ... is out of bounds`` and the metric would leave the
  pixels out without a word.

Use them in place of the standard two in any mmseg pipeline::

    dict(type='CheckedLoadImageFromFile'),
    dict(type='CheckedLoadAnnotations', reduce_zero_label=True,
         num_classes=150),
"""
import logging

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from .labels import IGNORE_INDEX, describe_invalid_labels, train_id_table


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
    read or decoded, when it is not a single-channel map, when its size
    differs from the image loaded before it (``results['ori_shape']``, set by
    the image loading transform; the check is skipped when that key is
    absent, e.g. for a pipeline that loads only labels), or when it holds
    values that are not classes.

    Args:
        num_classes (int, optional): Number of classes of the model. Every
            loaded value must then become a class id ``0..num_classes-1``
            or ``ignore_index`` (after ``reduce_zero_label`` and the
            dataset's ``label_map``); the error names the stored values,
            their pixel count and the values expected. None: values are not
            checked (a warning says so once). Default: None.
        ignore_index (int): The train id the loss and the metric ignore.
            Default: 255.
        Other arguments: as mmseg's ``LoadAnnotations``.
    """

    _warned_unchecked = False

    def __init__(self,
                 *args,
                 num_classes=None,
                 ignore_index=IGNORE_INDEX,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if num_classes is not None and (not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError(f'CheckedLoadAnnotations: num_classes must be a '
                             f'positive int or None, got {num_classes!r}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        cls = CheckedLoadAnnotations
        if num_classes is None and not cls._warned_unchecked:
            cls._warned_unchecked = True
            print_log(
                'CheckedLoadAnnotations without num_classes: label values '
                'are not checked against the classes (set num_classes to '
                'the model\'s number of classes)',
                logger='current',
                level=logging.WARNING)

    def transform(self, results):
        """Load the label map of a dataset's sample, as mmseg's
        ``LoadAnnotations`` does, with the checks above; pass an image that
        comes without a dataset (no ``seg_fields``) through unchanged.

        Args:
            results (dict): The sample so far.

        Raises:
            ValueError: A dataset's sample without ``seg_map_path``.
            DataFileError: A label map that fails a check.
        """
        if 'seg_map_path' not in results:
            if 'seg_fields' not in results:
                # not a dataset's sample: mmseg.apis.inference_model drops
                # only a step named exactly 'LoadAnnotations', so this one
                # meets images without labels, and there is none to load
                return results
            raise ValueError(
                f"CheckedLoadAnnotations: the sample {results.get('img_path')}"
                ' has no seg_map_path: its dataset lists no label maps '
                '(data_prefix.seg_map_path unset?); set it, or leave the '
                'label loader out of a pipeline that has no labels')
        return super().transform(results)

    def _load_seg_map(self, results):
        path = results['seg_map_path']
        dataset = results.get('reduce_zero_label')
        if None not in (self.reduce_zero_label, dataset) and \
                self.reduce_zero_label != dataset:
            # mmseg asserts it; a config's mistake, not the file's
            raise ValueError(
                f'CheckedLoadAnnotations: reduce_zero_label is '
                f'{self.reduce_zero_label}, but the dataset loads with '
                f'reduce_zero_label={dataset}; leave it out of the loader to '
                "follow the dataset's, or set the dataset's")
        try:
            super()._load_seg_map(results)
        except Exception as e:
            raise DataFileError(
                f'{path}: cannot load label map ({_describe(e)}); expected '
                f'a readable single-channel PNG') from e
        self._check_width(path)
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
        if self.num_classes is not None:
            self._check_values(path, seg, results.get('label_map'))

    def _check_width(self, path):
        """Refuse a label file wider than 8 bits holding values outside
        0..255: mmseg casts what it decodes to uint8, so 261 would silently
        become 5. An 8-bit PNG is told by its header, without decoding."""
        import mmcv
        from mmengine import fileio
        data = fileio.get(path, backend_args=self.backend_args)
        # PNG: signature, IHDR chunk; byte 24 is the bit depth
        if data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 24 \
                and data[24] <= 8:
            return
        raw = mmcv.imfrombytes(
            data, flag='unchanged', backend=self.imdecode_backend)
        if raw is None or raw.dtype == np.uint8:
            return
        outside = (raw < 0) | (raw > 255)
        if outside.any():
            values = np.unique(raw[outside])
            shown = ', '.join(str(v) for v in values[:5].tolist())
            more = ', ...' if values.size > 5 else ''
            raise DataFileError(
                f'{path}: label map has {raw.dtype} values outside 0..255 '
                f'({shown}{more}; {int(outside.sum())} pixels), which '
                'mmseg\'s 8-bit labels would wrap around (e.g. 261 to 5); '
                'expected an 8-bit single-channel PNG')

    def _check_values(self, path, seg, label_map):
        # one pass over the map; the table maps the few offending train ids
        # back to the values stored in the file, which is what users fix
        counts = np.bincount(seg.ravel(), minlength=256)
        ids = np.flatnonzero(counts)
        bad_ids = ids[(ids >= self.num_classes) & (ids != self.ignore_index)]
        if not bad_ids.size:
            return
        table = train_id_table(self.reduce_zero_label, label_map)
        stored = np.flatnonzero(np.isin(table, bad_ids)).tolist()
        msg = describe_invalid_labels(
            stored,
            self.num_classes,
            self.reduce_zero_label,
            label_map,
            self.ignore_index,
            pixels=int(counts[bad_ids].sum()))
        raise DataFileError(f'{path}: {msg}')

    def __repr__(self):
        return (f'{super().__repr__()[:-1]}, num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
