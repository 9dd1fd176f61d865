"""mmseg_vvt/datasets/demo_data.py: the synthetic ADE20K-layout demo set."""
import filecmp
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmseg_vvt.datasets import demo_data as mdd

SMALL = dict(num_train=4, num_val=3, size=(48, 40))


def _all_files(root):
    out = []
    for dirpath, _, names in os.walk(root):
        out += [osp.relpath(osp.join(dirpath, n), root) for n in names]
    return sorted(out)


def test_layout_names_and_pairing(tmp_path):
    root = mdd.generate(str(tmp_path / 'demo'), seed=3, verbose=False, **SMALL)
    assert root == str(tmp_path / 'demo' / 'ADEChallengeData2016')
    expected = ['demo_info.json']
    for split, prefix, n in (('training', 'train', 4), ('validation', 'val',
                                                        3)):
        for i in range(1, n + 1):
            expected.append(f'images/{split}/ADE_{prefix}_{i:08d}.jpg')
            expected.append(f'annotations/{split}/ADE_{prefix}_{i:08d}.png')
    assert _all_files(root) == sorted(expected)
    for rel in expected[1:]:
        if rel.endswith('.jpg'):
            img = cv2.imread(osp.join(root, rel), cv2.IMREAD_UNCHANGED)
            assert img.shape == (48, 40, 3)  # height, width, colour
            seg = cv2.imread(
                osp.join(
                    root,
                    rel.replace('images',
                                'annotations').replace('.jpg', '.png')),
                cv2.IMREAD_UNCHANGED)
            assert seg.shape == (48, 40) and seg.dtype == np.uint8


def test_same_seed_gives_identical_bytes(tmp_path):
    a = mdd.generate(str(tmp_path / 'a'), seed=7, verbose=False, **SMALL)
    b = mdd.generate(str(tmp_path / 'b'), seed=7, verbose=False, **SMALL)
    c = mdd.generate(str(tmp_path / 'c'), seed=8, verbose=False, **SMALL)
    files = _all_files(a)
    assert files == _all_files(b) == _all_files(c)
    data = [f for f in files if f != 'demo_info.json']
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == len(files)
    _, mismatch, _ = filecmp.cmpfiles(a, c, data, shallow=False)
    assert sorted(mismatch) == sorted(data)  # another seed: every file


def test_more_samples_keep_existing_ones(tmp_path):
    a = mdd.generate(
        str(tmp_path / 'a'),
        seed=1,
        num_train=2,
        num_val=1,
        size=(32, 32),
        verbose=False)
    b = mdd.generate(
        str(tmp_path / 'b'),
        seed=1,
        num_train=3,
        num_val=1,
        size=(32, 32),
        verbose=False)
    shared = [f for f in _all_files(a) if f != 'demo_info.json']
    _, mismatch, errors = filecmp.cmpfiles(a, b, shared, shallow=False)
    assert mismatch == [] and errors == []
    assert len(_all_files(b)) == len(_all_files(a)) + 2


def test_label_convention_and_textures():
    """Labels: 0 only as "other" (boundaries / clutter), classes 1..K, each
    class with its own look (mean colour far from the other classes')."""
    k = mdd.NUM_CLASSES
    counts = np.zeros(256, np.int64)
    colour_sum = np.zeros((k + 1, 3))
    for i in range(40):
        img, label = mdd.make_sample(mdd.sample_rng(0, 0, i), 64, 64)
        assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
        assert label.dtype == np.uint8 and label.shape == (64, 64)
        counts += np.bincount(label.ravel(), minlength=256)
        for c in range(k + 1):
            colour_sum[c] += img[label == c].astype(np.float64).sum(0)
        # Every region boundary is "other": two different class labels
        # are never horizontally or vertically adjacent.
        a, b = label[:, :-1], label[:, 1:]
        assert not np.any((a != b) & (a > 0) & (b > 0))
        a, b = label[:-1], label[1:]
        assert not np.any((a != b) & (a > 0) & (b > 0))
    assert counts[k + 1:].sum() == 0, 'label values above K'
    assert np.all(counts[1:k + 1] > 0), 'every class appears'
    assert 0 < counts[0] < 0.2 * counts.sum(), 'some, not much, ignore'
    means = colour_sum[1:] / counts[1:k + 1, None]
    dists = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert dists[~np.eye(k, dtype=bool)].min() > 20
    sky = mdd.CLASS_NAMES.index('sky')
    assert means[sky, 2] > means[sky, 0] + 40  # sky is blue


def test_class_names_are_ade20k_prefix():
    """mmseg maps custom classes by name; the names must be ADE20K's first K
    for label k to stay train id k-1."""
    ade_first = ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road',
                 'bed ')
    assert mdd.CLASS_NAMES == ade_first[:mdd.NUM_CLASSES]


@pytest.mark.parametrize('size', [(15, 16), (16, 15)])
def test_demo_images_under_16_pixels_either_way_are_refused(tmp_path, size):
    # kills demo_data.py `width < 16` -> `width < 8`
    from mmseg_vvt.datasets import demo_data
    with pytest.raises(ValueError, match='at least 16x16'):
        demo_data.generate(
            str(tmp_path / 'd'),
            num_train=1,
            num_val=1,
            size=size,
            verbose=False)
