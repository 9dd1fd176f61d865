"""The label-value rule shared by CheckedLoadAnnotations and
tools/check_ade20k.py (mmseg_vvt/datasets/labels.py)."""
import numpy as np
import pytest
from mmseg.datasets.transforms import LoadAnnotations

from mmseg_vvt.datasets.labels import (describe_invalid_labels,
                                       invalid_label_values, train_id_table)

# ADE20K with the demo's six classes: old ids 6..149 are left out
SUBSET_MAP = {i: (i if i < 6 else 255) for i in range(150)}


@pytest.mark.parametrize('reduce_zero_label', [False, True])
@pytest.mark.parametrize('label_map', [None, SUBSET_MAP], ids=['', 'subset'])
def test_table_is_mmseg_mapping(tmp_path, reduce_zero_label, label_map):
    """Every stored value maps to the train id mmseg's own loader gives."""
    import cv2
    stored = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = str(tmp_path / 'label.png')
    assert cv2.imwrite(path, stored)
    results = dict(
        seg_map_path=path,
        reduce_zero_label=reduce_zero_label,
        label_map=label_map,
        seg_fields=[])
    LoadAnnotations(reduce_zero_label=reduce_zero_label)(results)
    np.testing.assert_array_equal(
        train_id_table(reduce_zero_label, label_map),
        results['gt_seg_map'].ravel())


def test_invalid_values():
    # reduce_zero_label: 0 and 255 ignored, 1..K the classes
    assert invalid_label_values([0, 1, 6, 255], 6, True) == []
    assert invalid_label_values([0, 7, 200, 6, 254], 6, True) == [7, 200, 254]
    # plain: 0..K-1 the classes, 255 ignored
    assert invalid_label_values([0, 5, 255], 6, False) == []
    assert invalid_label_values([6, 0, 254], 6, False) == [6, 254]
    # another ignore index
    assert invalid_label_values([6, 255], 6, False, ignore_index=6) == [255]
    # a class subset: the classes left out become 255 (ignored), values
    # beyond the full set's classes stay invalid
    assert invalid_label_values([7, 150], 6, True, SUBSET_MAP) == []
    assert invalid_label_values([151, 200], 6, True, SUBSET_MAP) == [151, 200]
    # out of the 8-bit range altogether
    assert invalid_label_values([300], 6, True) == [300]


def test_message_names_values_and_expectation():
    msg = describe_invalid_labels([7, 200], 6, True, pixels=12)
    assert msg == (
        'label values 7, 200 (12 pixels) are not among the 6 classes; '
        'expected values 0..6, 255 (with reduce_zero_label=True: v is class '
        'v-1, 0 and 255 are ignored)')
    msg = describe_invalid_labels([6], 6, False)
    assert msg == (
        'label values 6 are not among the 6 classes; expected values 0..5, '
        '255 (with reduce_zero_label=False: v is class v, 255 is ignored)')
    msg = describe_invalid_labels(list(range(20, 40)), 6, True)
    assert msg.startswith('label values 20, 21, 22, 23, 24, 25, 26, 27, 28, '
                          '29 ... (20 values) are not among')
    assert describe_invalid_labels([200], 6, True, SUBSET_MAP).endswith(
        "expected values 0..150, 255 (with reduce_zero_label=True: v is class "
        "v-1, 0 and 255 are ignored, then the class subset's label_map)")


def test_two_adjacent_values_are_listed_not_made_a_range():
    # kills labels.py _ranges `v > start + 1` -> `v > start`
    from mmseg_vvt.datasets.labels import describe_invalid_labels
    msg = describe_invalid_labels([7], 1, True)
    assert msg.endswith('expected values 0, 1, 255 (with reduce_zero_label='
                        'True: v is class v-1, 0 and 255 are ignored)')
    msg = describe_invalid_labels([9], 2, False, pixels=1)
    assert 'label values 9 (1 pixel) are not among the 2 classes; expected '\
        'values 0, 1, 255 ' in msg
