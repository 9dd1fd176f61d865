"""Check a dataset directory in the ADE20K layout before training on it.

Verifies, and reports every problem it finds with the path it concerns:

* layout: ``images/{training,validation}`` and
  ``annotations/{training,validation}`` exist under the dataset root
  (``DIR`` itself, or ``DIR/ADEChallengeData2016``);
* pairing both ways: every ``.jpg`` image has a ``.png`` label with the same
  relative path and stem, and every label has an image; any other file in
  those folders is reported too (mmseg would silently skip it);
* every image decodes completely (truncated or corrupt files are caught);
* labels are 8-bit single-channel PNGs with values in ``0..NUM_CLASSES``
  or 255 (0 = "other" and 255 are ignored with ``reduce_zero_label=True``;
  the same rule as the training pipeline's ``CheckedLoadAnnotations``,
  ``labels.py``);
* image and label have the same width and height;
* the number of image/label pairs per split: 20210 training and 2000
  validation for the real ADE20K (``num_train`` / ``num_val`` for other
  sets, e.g. the demo's).

The command line is ``tools/check_ade20k.py``; ``tools/run_demo.py``
checks its data with :func:`check_dataset`.
"""
import os
import os.path as osp
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

from .labels import describe_invalid_labels, invalid_label_values

ADE20K_NUM_TRAIN = 20210
ADE20K_NUM_VAL = 2000
ADE20K_NUM_CLASSES = 150
DATASET_DIRNAME = 'ADEChallengeData2016'
SPLITS = ('training', 'validation')
IMG_SUFFIX = '.jpg'
SEG_SUFFIX = '.png'


def find_root(path):
    """The dataset root: ``path`` or ``path/ADEChallengeData2016``."""
    nested = osp.join(path, DATASET_DIRNAME)
    if osp.isdir(nested):
        return nested
    return path


def _list_files(folder):
    """Relative paths of all files under ``folder`` (recursive, sorted)."""
    out = []
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            out.append(osp.relpath(osp.join(dirpath, name), folder))
    return sorted(out)


def check_pair(img_path, seg_path, num_classes):
    """Decode one image/label pair; return a list of (path, message)."""
    problems = []
    img_size = seg_size = None
    try:
        with Image.open(img_path) as img:
            img.load()  # full decode: catches truncated / corrupt data
            img_size = img.size
            if img.mode not in ('RGB', 'L'):
                problems.append((img_path, f'image mode is {img.mode}, '
                                 'expected RGB (or greyscale L)'))
    except Exception as e:  # PIL raises several types for bad files
        problems.append((img_path, f'image cannot be decoded ({e})'))
    try:
        with Image.open(seg_path) as seg:
            seg.load()
            seg_size = seg.size
            if seg.mode not in ('L', 'P'):
                problems.append((seg_path, f'label mode is {seg.mode}, '
                                 'expected an 8-bit single-channel PNG '
                                 '(mode L or P)'))
            else:
                arr = np.asarray(seg)
                bad = invalid_label_values(
                    np.unique(arr), num_classes, reduce_zero_label=True)
                if bad:
                    problems.append((seg_path,
                                     describe_invalid_labels(
                                         bad,
                                         num_classes,
                                         reduce_zero_label=True,
                                         pixels=int(np.isin(arr, bad).sum()))))
    except Exception as e:
        problems.append((seg_path, f'label cannot be decoded ({e})'))
    if img_size is not None and seg_size is not None and img_size != seg_size:
        problems.append((seg_path, f'label size {seg_size[0]}x{seg_size[1]} '
                         f'(WxH) differs from image {img_path} size '
                         f'{img_size[0]}x{img_size[1]}'))
    return problems


def _check_pair_args(args):
    return check_pair(*args)


def check_dataset(path,
                  num_train=ADE20K_NUM_TRAIN,
                  num_val=ADE20K_NUM_VAL,
                  num_classes=ADE20K_NUM_CLASSES,
                  jobs=None,
                  progress=None):
    """Check the dataset at ``path``; return a list of (path, message).

    ``num_train`` / ``num_val``: expected pair counts, None to skip that
    check. ``jobs``: worker processes for decoding (None: one per CPU, 0 or
    1: in this process). ``progress``: optional callable(done, total).
    """
    problems = []
    if osp.exists(path) and not osp.isdir(path):
        return [(path, 'is a file, not a dataset directory')]
    if not osp.isdir(path):
        return [(path, 'dataset directory does not exist')]
    root = find_root(path)
    expected = {'training': num_train, 'validation': num_val}
    pairs = []
    for split in SPLITS:
        img_dir = osp.join(root, 'images', split)
        seg_dir = osp.join(root, 'annotations', split)
        missing = False
        for d in (img_dir, seg_dir):
            if not osp.isdir(d):
                problems.append((d, 'directory missing (expected layout: '
                                 'images/{training,validation} and '
                                 'annotations/{training,validation})'))
                missing = True
        if missing:
            continue
        imgs, segs = {}, {}
        for rel in _list_files(img_dir):
            if rel.endswith(IMG_SUFFIX):
                imgs[rel[:-len(IMG_SUFFIX)]] = osp.join(img_dir, rel)
            else:
                problems.append(
                    (osp.join(img_dir,
                              rel), f'unexpected file in image folder (images '
                     f'must end with {IMG_SUFFIX})'))
        for rel in _list_files(seg_dir):
            if rel.endswith(SEG_SUFFIX):
                segs[rel[:-len(SEG_SUFFIX)]] = osp.join(seg_dir, rel)
            else:
                problems.append(
                    (osp.join(seg_dir,
                              rel), f'unexpected file in annotation folder '
                     f'(labels must end with {SEG_SUFFIX})'))
        for stem in sorted(set(imgs) - set(segs)):
            problems.append((imgs[stem], 'image has no label (expected '
                             f'{osp.join(seg_dir, stem + SEG_SUFFIX)})'))
        for stem in sorted(set(segs) - set(imgs)):
            problems.append((segs[stem], 'label has no image (expected '
                             f'{osp.join(img_dir, stem + IMG_SUFFIX)})'))
        both = sorted(set(imgs) & set(segs))
        pairs += [(imgs[s], segs[s], num_classes) for s in both]
        want = expected[split]
        if want is not None and (len(imgs) != want or len(segs) != want):
            problems.append((img_dir if len(imgs) != want else seg_dir,
                             f'{split}: found {len(imgs)} images and '
                             f'{len(segs)} labels, expected {want} of each'))

    total = len(pairs)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs > 1 and total > 64:
        with ProcessPoolExecutor(jobs) as pool:
            results = pool.map(_check_pair_args, pairs, chunksize=64)
            for i, res in enumerate(results, 1):
                problems += res
                if progress:
                    progress(i, total)
    else:
        for i, pair in enumerate(pairs, 1):
            problems += check_pair(*pair)
            if progress:
                progress(i, total)
    return problems
