"""Which values a label map may hold, shared by the checked annotation
loader (:class:`~mmseg_vvt.datasets.CheckedLoadAnnotations`) and the
offline check (``ade20k_check.py``, ``tools/check_ade20k.py``).

A stored 8-bit value becomes a train id the way mmseg's ``LoadAnnotations``
maps it (``reduce_zero_label``, then the ``label_map`` of a class subset).
A value is valid when its train id is a class (``0..num_classes-1``) or the
ignore index; any other value would make the loss fail with a bare
``IndexError: Target ... is out of bounds`` (no file named) and be left out
of the metric's counts without a word.
"""
from typing import Dict, Iterable, List, Optional

import numpy as np

__all__ = [
    'IGNORE_INDEX', 'train_id_table', 'invalid_label_values',
    'describe_invalid_labels'
]

IGNORE_INDEX = 255


def train_id_table(reduce_zero_label: bool = False,
                   label_map: Optional[Dict[int, int]] = None) -> np.ndarray:
    """The train id of every stored value 0..255 (index = stored value).

    The same operations, in the same order and dtype, as mmseg 1.2.2's
    ``LoadAnnotations._load_seg_map``.
    """
    ids = np.arange(256, dtype=np.uint8)
    if reduce_zero_label:
        ids[ids == 0] = 255
        ids = ids - 1
        ids[ids == 254] = 255
    if label_map is not None:
        before = ids.copy()
        for old_id, new_id in label_map.items():
            ids[before == old_id] = new_id
    return ids


def _valid(table: np.ndarray, num_classes: int,
           ignore_index: int) -> np.ndarray:
    return (table < num_classes) | (table == ignore_index)


def invalid_label_values(values: Iterable[int],
                         num_classes: int,
                         reduce_zero_label: bool = False,
                         label_map: Optional[Dict[int, int]] = None,
                         ignore_index: int = IGNORE_INDEX) -> List[int]:
    """The stored values among ``values`` whose train id is neither a
    class (``0..num_classes-1``) nor ``ignore_index``, sorted."""
    valid = _valid(
        train_id_table(reduce_zero_label, label_map), num_classes,
        ignore_index)
    return sorted(
        {int(v)
         for v in values if not (0 <= v < 256) or not valid[int(v)]})


def _ranges(values: List[int]) -> str:
    """``[0, 1, 2, 3, 255]`` -> ``'0..3, 255'``."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(
                str(v) if v == start else f'{start}..{v}' if v > start +
                1 else f'{start}, {v}')
            start = None
    return ', '.join(parts)


def describe_invalid_labels(bad: List[int],
                            num_classes: int,
                            reduce_zero_label: bool = False,
                            label_map: Optional[Dict[int, int]] = None,
                            ignore_index: int = IGNORE_INDEX,
                            pixels: Optional[int] = None,
                            max_shown: int = 10) -> str:
    """One line saying which stored values are not classes and which are
    expected, e.g. ``label values 200 (64 pixels) are not among the 6
    classes; expected values 0..6, 255 (with reduce_zero_label=True: v is
    class v-1, 0 and 255 are ignored)``."""
    table = train_id_table(reduce_zero_label, label_map)
    allowed = np.flatnonzero(_valid(table, num_classes, ignore_index))
    shown = ', '.join(str(v) for v in bad[:max_shown])
    if len(bad) > max_shown:
        shown += f' ... ({len(bad)} values)'
    count = '' if pixels is None else \
        f" ({pixels} pixel{'' if pixels == 1 else 's'})"
    if reduce_zero_label:
        how = 'with reduce_zero_label=True: v is class v-1, 0 and 255 '
        how += ('are ignored' if ignore_index == 255 else
                f'become 255, the ignore index is {ignore_index}')
    else:
        how = (f'with reduce_zero_label=False: v is class v, '
               f'{ignore_index} is ignored')
    if label_map is not None:
        how += ", then the class subset's label_map"
    return (f'label values {shown}{count} are not among the {num_classes} '
            f'classes; expected values {_ranges(allowed.tolist())} ({how})')
