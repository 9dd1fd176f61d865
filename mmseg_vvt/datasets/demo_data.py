"""Write a small synthetic segmentation dataset in the ADE20K layout.

The dataset is what ``configs/vvt_fpn_demo.py`` trains on: random shapes
(ellipses, rectangles, triangles, polygons) filled with one of a handful of
class textures (bricks, window grid, sky gradient, checkerboard floor, leafy
noise, diagonal stripes) on a background that is itself one of the classes.

Layout (the one mmseg's ``ADE20KDataset`` reads)::

    OUT/ADEChallengeData2016/
        images/training/ADE_train_00000001.jpg ...
        images/validation/ADE_val_00000001.jpg ...
        annotations/training/ADE_train_00000001.png ...
        annotations/validation/ADE_val_00000001.png ...
        demo_info.json   (seed, counts, size and class names)

Labels follow ADE20K's reduce-zero-label convention: 0 means "other /
unlabelled" (here: a 1-pixel band along every region boundary and the
occasional grey clutter object), classes are 1..K. mmseg's ``ADE20KDataset``
(``reduce_zero_label=True``) turns them into 0..K-1 and 0 into 255 (ignored).
The class names are the first K of ADE20K's classes, so that
``ADE20KDataset(metainfo=dict(classes=CLASS_NAMES))`` keeps label k as
train id k-1 (mmseg maps custom classes by name); they are placeholders, the
textures do not try to look like walls or trees.

Everything is a pure function of ``seed``: every sample draws from its own
generator seeded with (seed, split, index), so the same seed and options give
byte-identical files, and adding samples does not change the existing ones.

The command line is ``tools/make_demo_data.py``; ``tools/run_demo.py``
generates the data through :func:`generate` when it is missing.
"""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np

# ADE20K's first classes, in order: label k in the PNGs (1-based) is class
# CLASS_NAMES[k - 1]. Must stay a prefix of mmseg's ADE20KDataset classes.
CLASS_NAMES = ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling')
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_LABEL = 0
SPLITS = (('training', 'train', 0), ('validation', 'val', 1))
DATASET_DIRNAME = 'ADEChallengeData2016'
# in the dataset root while it is being written: an interrupted run's folder
# is still known as this generator's (``force`` may replace it)
GENERATING_MARK = '.generating'
JPEG_QUALITY = 90

DEFAULT_SEED = 0
DEFAULT_NUM_TRAIN = 300
DEFAULT_NUM_VAL = 60
DEFAULT_SIZE = (160, 160)  # (height, width)


# --------------------------------------------------------------------------
# Class textures: each returns an H x W x 3 float32 RGB image in [0, 255].
# Every texture has its own colours *and* pattern; parameters (period, phase,
# shade) vary per instance so the network has to generalise a little.
# --------------------------------------------------------------------------
def _jitter(rng, rgb, amount=18):
    return np.clip(
        np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _grid(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return yy.astype(np.float32), xx.astype(np.float32)


def _tex_wall(rng, h, w):
    """Red-brown bricks with light mortar lines, rows offset by half a
    brick."""
    yy, xx = _grid(h, w)
    bh = rng.integers(6, 10)
    bw = 2 * bh + rng.integers(0, 6)
    oy, ox = rng.integers(0, bh), rng.integers(0, bw)
    row = np.floor((yy + oy) / bh)
    shift = (row % 2) * (bw // 2)
    mortar = (((yy + oy) % bh) < 1.5) | (((xx + ox + shift) % bw) < 1.5)
    brick = _jitter(rng, (165, 70, 50))
    img = np.empty((h, w, 3), np.float32)
    img[:] = brick
    img[mortar] = _jitter(rng, (215, 210, 200), 10)
    return img


def _tex_building(rng, h, w):
    """Grey facade with a regular grid of dark blue windows."""
    yy, xx = _grid(h, w)
    p = rng.integers(9, 15)
    win = rng.integers(4, p - 3)
    oy, ox = rng.integers(0, p, 2)
    windows = (((yy + oy) % p) < win) & (((xx + ox) % p) < win)
    img = np.empty((h, w, 3), np.float32)
    img[:] = _jitter(rng, (125, 125, 130), 12)
    img[windows] = _jitter(rng, (35, 55, 105), 12)
    return img


def _tex_sky(rng, h, w):
    """Smooth vertical light-blue gradient."""
    yy, _ = _grid(h, w)
    top = _jitter(rng, (95, 150, 225), 12)
    bottom = _jitter(rng, (200, 225, 250), 8)
    t = (yy / max(h - 1, 1))[..., None]
    return top * (1 - t) + bottom * t


def _tex_floor(rng, h, w):
    """Tan / brown checkerboard."""
    yy, xx = _grid(h, w)
    p = rng.integers(7, 13)
    oy, ox = rng.integers(0, p, 2)
    check = ((np.floor((yy + oy) / p) + np.floor((xx + ox) / p)) % 2) == 0
    img = np.empty((h, w, 3), np.float32)
    img[:] = _jitter(rng, (205, 170, 115), 12)
    img[check] = _jitter(rng, (120, 80, 40), 12)
    return img


def _tex_tree(rng, h, w):
    """Blotchy green foliage: blurred noise between two greens."""
    noise = rng.random((h, w)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=float(rng.uniform(1, 2)))
    noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
    dark = _jitter(rng, (25, 85, 25), 10)
    light = _jitter(rng, (110, 185, 60), 10)
    t = noise[..., None]
    return dark * (1 - t) + light * t


def _tex_ceiling(rng, h, w):
    """Cream and pale-violet diagonal stripes."""
    yy, xx = _grid(h, w)
    p = rng.integers(6, 11)
    sign = 1 if rng.random() < 0.5 else -1
    stripes = ((xx + sign * yy + rng.integers(0, p)) % p) < p / 2
    img = np.empty((h, w, 3), np.float32)
    img[:] = _jitter(rng, (240, 235, 205), 10)
    img[stripes] = _jitter(rng, (175, 140, 210), 12)
    return img


TEXTURES = (_tex_wall, _tex_building, _tex_sky, _tex_floor, _tex_tree,
            _tex_ceiling)
assert len(TEXTURES) == NUM_CLASSES


def _tex_clutter(rng, h, w):
    """Grey noise for "other" objects (label 0)."""
    base = rng.uniform(60, 200)
    img = base + rng.normal(0, 25, (h, w, 1)).astype(np.float32)
    return np.repeat(img, 3, axis=2)


# --------------------------------------------------------------------------
# Shapes: each returns a boolean H x W mask.
# --------------------------------------------------------------------------
def _shape_mask(rng, h, w):
    mask = np.zeros((h, w), np.uint8)
    s = min(h, w)
    cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
    kind = rng.integers(0, 4)
    if kind == 0:  # ellipse
        axes = (int(rng.integers(s // 10,
                                 s // 3)), int(rng.integers(s // 10, s // 3)))
        cv2.ellipse(
            mask, (cx, cy),
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            1,
            thickness=-1)
    elif kind == 1:  # axis-aligned rectangle
        rw, rh = rng.integers(s // 6, s // 2, 2)
        x0, y0 = cx - int(rw) // 2, cy - int(rh) // 2
        cv2.rectangle(
            mask, (x0, y0), (x0 + int(rw), y0 + int(rh)), 1, thickness=-1)
    else:  # triangle (kind 2) or irregular polygon (kind 3)
        n = 3 if kind == 2 else int(rng.integers(5, 8))
        radius = rng.uniform(s / 8, s / 3)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = radius * rng.uniform(0.6, 1.0, n)
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(bool)


def make_sample(rng, height, width):
    """Return (RGB uint8 image, uint8 label map) for one synthetic scene."""
    h, w = height, width
    label = np.empty((h, w), np.uint8)
    img = np.empty((h, w, 3), np.float32)

    bg = int(rng.integers(0, NUM_CLASSES))
    img[:] = TEXTURES[bg](rng, h, w)
    label[:] = bg + 1

    for _ in range(int(rng.integers(2, 6))):
        mask = _shape_mask(rng, h, w)
        if not mask.any():
            continue
        cls = int(rng.integers(0, NUM_CLASSES))
        img[mask] = TEXTURES[cls](rng, h, w)[mask]
        label[mask] = cls + 1

    if rng.random() < 0.3:  # an "other" object, labelled 0 like in ADE20K
        mask = _shape_mask(rng, h, w)
        img[mask] = _tex_clutter(rng, h, w)[mask]
        label[mask] = IGNORE_LABEL

    # 1-pixel "unlabelled" band along region boundaries, as in ADE20K where
    # object outlines are often left at 0.
    kernel = np.ones((3, 3), np.uint8)
    boundary = cv2.dilate(label, kernel) != cv2.erode(label, kernel)
    label[boundary] = IGNORE_LABEL

    # Global brightness change and sensor noise.
    img = img * rng.uniform(0.85, 1.15) + rng.normal(0, 6, img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return img, label


def sample_rng(seed, split_id, index):
    """Independent generator per sample: adding samples or changing the
    other split leaves existing samples unchanged."""
    return np.random.default_rng([seed, split_id, index])


def _encode(ext, array, params=()):
    ok, buf = cv2.imencode(ext, array, list(params))
    if not ok:
        raise RuntimeError(f'OpenCV failed to encode a {ext} image')
    return buf.tobytes()


def generate(out_dir,
             seed=DEFAULT_SEED,
             num_train=DEFAULT_NUM_TRAIN,
             num_val=DEFAULT_NUM_VAL,
             size=DEFAULT_SIZE,
             force=False,
             verbose=True):
    """Write the dataset under ``out_dir/ADEChallengeData2016``.

    Raises FileExistsError if ``out_dir`` exists and is not empty, unless
    ``force`` (then ``out_dir/ADEChallengeData2016`` is replaced; anything
    else in ``out_dir`` is left alone). ``force`` replaces only a folder this
    function wrote (it holds ``demo_info.json``, or the mark of a run that
    was interrupted): a real ADE20K copy there is refused, never deleted.
    Returns the dataset root.
    """
    height, width = size
    if num_train < 1 or num_val < 1:
        raise ValueError(f'need at least one training and one validation '
                         f'sample, got num_train={num_train}, '
                         f'num_val={num_val}')
    if height < 16 or width < 16:
        raise ValueError(f'image size must be at least 16x16, got '
                         f'{height}x{width} (height x width)')
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise FileExistsError(f'output path {out_dir} exists and is not a '
                              f'directory')
    root = osp.join(out_dir, DATASET_DIRNAME)
    if osp.isdir(out_dir) and os.listdir(out_dir):
        if not force:
            raise FileExistsError(
                f'output directory {out_dir} already exists and is not '
                f'empty; pass --force to replace {root}')
        if osp.isdir(root):
            if not any(
                    osp.exists(osp.join(root, name))
                    for name in ('demo_info.json', GENERATING_MARK)):
                raise FileExistsError(
                    f'{root} was not written by this generator (it has no '
                    'demo_info.json): --force replaces only a generated '
                    'demo set; move that folder away or give another '
                    'output directory')
            shutil.rmtree(root)
        elif osp.exists(root):
            raise FileExistsError(f'{root} is a file; --force replaces only '
                                  'a generated demo set')

    os.makedirs(root, exist_ok=True)
    open(osp.join(root, GENERATING_MARK), 'w').close()
    for split, _, _ in SPLITS:
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)

    counts = {'training': num_train, 'validation': num_val}
    for split, prefix, split_id in SPLITS:
        for i in range(counts[split]):
            rng = sample_rng(seed, split_id, i)
            img, label = make_sample(rng, height, width)
            stem = f'ADE_{prefix}_{i + 1:08d}'
            jpg = _encode('.jpg', cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                          (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY))
            png = _encode('.png', label)
            with open(osp.join(root, 'images', split, stem + '.jpg'),
                      'wb') as f:
                f.write(jpg)
            with open(
                    osp.join(root, 'annotations', split, stem + '.png'),
                    'wb') as f:
                f.write(png)
        if verbose:
            print(f'wrote {counts[split]} {split} samples to '
                  f'{osp.join(root, "images", split)} and '
                  f'{osp.join(root, "annotations", split)}')

    info = dict(
        seed=seed,
        num_train=num_train,
        num_val=num_val,
        height=height,
        width=width,
        classes=list(CLASS_NAMES),
        label_convention='0 = other/ignore, class k = label k '
        '(1..%d); ADE20KDataset reduce_zero_label=True' % NUM_CLASSES)
    with open(osp.join(root, 'demo_info.json'), 'w') as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write('\n')
    os.remove(osp.join(root, GENERATING_MARK))
    return root
