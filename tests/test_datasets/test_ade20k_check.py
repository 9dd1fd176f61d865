"""mmseg_vvt/datasets/ade20k_check.py: every kind of defect is found and
reported with its path."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from mmseg_vvt.datasets import ade20k_check as check
from mmseg_vvt.datasets import demo_data as mdd

COUNTS = dict(num_train=4, num_val=2, num_classes=mdd.NUM_CLASSES, jobs=1)


@pytest.fixture(scope='module')
def clean_tree(tmp_path_factory):
    out = tmp_path_factory.mktemp('clean') / 'ade'
    mdd.generate(
        str(out), seed=0, num_train=4, num_val=2, size=(32, 40), verbose=False)
    return out


@pytest.fixture
def tree(clean_tree, tmp_path):
    """A fresh copy of a valid tree; returns (parent dir, dataset root)."""
    out = tmp_path / 'ade'
    shutil.copytree(clean_tree, out)
    return out, out / 'ADEChallengeData2016'


def _problems(path, **kw):
    args = dict(COUNTS)
    args.update(kw)
    return check.check_dataset(str(path), **args)


def test_clean_tree_passes_from_parent_or_root(tree):
    out, root = tree
    assert _problems(out) == []
    assert _problems(root) == []


def test_real_ade20k_counts_are_the_default(tree):
    out, root = tree
    problems = check.check_dataset(str(out), num_classes=6, jobs=1)
    assert problems == [
        (str(root / 'images' / 'training'),
         'training: found 4 images and 4 labels, expected 20210 of each'),
        (str(root / 'images' / 'validation'),
         'validation: found 2 images and 2 labels, expected 2000 of each'),
    ]
    assert _problems(out, num_train=None, num_val=None) == []


def test_missing_dataset_directory(tmp_path):
    missing = tmp_path / 'nope'
    assert _problems(missing) == [(str(missing),
                                   'dataset directory does not exist')]
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    assert _problems(a_file) == [(str(a_file),
                                  'is a file, not a dataset directory')]


def test_missing_split_directories(tree):
    out, root = tree
    shutil.rmtree(root / 'annotations' / 'validation')
    shutil.rmtree(root / 'images' / 'training')
    problems = _problems(out)
    paths = [p for p, _ in problems]
    assert paths == [
        str(root / 'images' / 'training'),
        str(root / 'annotations' / 'validation')
    ]
    assert all('directory missing' in m for _, m in problems)


def test_unpaired_files_both_ways_and_stray_files(tree):
    out, root = tree
    os.remove(root / 'annotations' / 'training' / 'ADE_train_00000002.png')
    os.remove(root / 'images' / 'validation' / 'ADE_val_00000001.jpg')
    (root / 'images' / 'training' / 'notes.txt').write_text('x')
    (root / 'annotations' / 'validation' /
     'ADE_val_00000002.jpg').write_bytes(b'x')
    problems = dict(_problems(out, num_train=None, num_val=None))
    img2 = str(root / 'images' / 'training' / 'ADE_train_00000002.jpg')
    seg1 = str(root / 'annotations' / 'validation' / 'ADE_val_00000001.png')
    assert 'image has no label' in problems.pop(img2)
    assert 'label has no image' in problems.pop(seg1)
    assert 'unexpected file' in problems.pop(
        str(root / 'images' / 'training' / 'notes.txt'))
    assert 'unexpected file' in problems.pop(
        str(root / 'annotations' / 'validation' / 'ADE_val_00000002.jpg'))
    assert problems == {}


def test_corrupt_and_truncated_images(tree):
    out, root = tree
    bad = root / 'images' / 'training' / 'ADE_train_00000001.jpg'
    bad.write_bytes(b'this is not a jpeg')
    cut = root / 'images' / 'validation' / 'ADE_val_00000002.jpg'
    data = cut.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    problems = _problems(out)
    assert [p for p, _ in problems] == [str(bad), str(cut)]
    assert all('cannot be decoded' in m for _, m in problems)


def test_label_values_out_of_range_and_wrong_mode(tree):
    out, root = tree
    seg = root / 'annotations' / 'training' / 'ADE_train_00000003.png'
    arr = np.asarray(Image.open(seg)).copy()
    arr[0, :3] = (7, 200, 7)
    arr[1, :2] = 255  # ignored, as in training
    Image.fromarray(arr).save(seg)
    rgb = root / 'annotations' / 'validation' / 'ADE_val_00000001.png'
    Image.open(rgb).convert('RGB').save(rgb)
    problems = _problems(out)
    assert problems == [
        (str(seg), 'label values 7, 200 (3 pixels) are not among the 6 '
         'classes; expected values 0..6, 255 (with reduce_zero_label=True: '
         'v is class v-1, 0 and 255 are ignored)'),
        (str(rgb), 'label mode is RGB, expected an 8-bit single-channel PNG '
         '(mode L or P)'),
    ]
    # The real ADE20K allows 0..150: 7 passes, 200 does not.
    assert _problems(
        out, num_classes=150
    )[0] == (
        str(seg), 'label values 200 (1 pixel) are not among the 150 '
        'classes; expected values 0..150, 255 (with reduce_zero_label=True: '
        'v is class v-1, 0 and 255 are ignored)')


def test_label_size_differs_from_image(tree):
    out, root = tree
    seg = root / 'annotations' / 'training' / 'ADE_train_00000004.png'
    Image.open(seg).resize((20, 32), Image.NEAREST).save(seg)
    img = root / 'images' / 'training' / 'ADE_train_00000004.jpg'
    assert _problems(out) == [
        (str(seg), f'label size 20x32 (WxH) differs from image {img} size '
         '40x32')
    ]


def test_greyscale_images_and_palette_labels_pass(tree):
    # kills ade20k_check.py dropping 'L' from the image modes, and 'P' from
    # the label modes (ADE20K has greyscale JPEGs; palette PNGs are a common
    # label format, which mmseg reads as their indices)
    from PIL import Image

    from mmseg_vvt.datasets import ade20k_check
    out, root = tree
    img = next((root / 'images' / 'training').iterdir())
    Image.open(img).convert('L').save(img)
    seg = next((root / 'annotations' / 'validation').iterdir())
    label = Image.open(seg)
    assert label.mode == 'L'
    pal = label.convert('P')
    pal.putpalette([v for i in range(256) for v in (i, i, i)])
    pal.save(seg)
    assert Image.open(seg).mode == 'P'
    assert ade20k_check.check_dataset(
        str(out), num_train=4, num_val=2, num_classes=6, jobs=1) == []
