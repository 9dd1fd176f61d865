"""Bad data through the real loading path (the demo config's datasets and
pipelines, mmengine's Runner) gives errors that name the file or path."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import DATASETS, TRANSFORMS
from PIL import Image

import mmseg_vvt.datasets  # noqa: F401  (registers the transforms)
from mmseg_vvt.datasets import (CheckedLoadAnnotations,
                                CheckedLoadImageFromFile, DataFileError,
                                demo_data)
from mmseg_vvt.testing import tiny_arch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'vvt_fpn_demo.py')


@pytest.fixture
def data(tmp_path):
    """A tiny demo set: (dataset root, demo config pointing at it)."""
    root = demo_data.generate(
        str(tmp_path / 'demo'),
        seed=0,
        num_train=3,
        num_val=2,
        size=(40, 48),
        verbose=False)
    cfg = Config.fromfile(DEMO_CONFIG)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = root
    return root, cfg


def _dataset(cfg, split):
    return DATASETS.build(cfg[f'{split}_dataloader'].dataset)


def test_transforms_are_registered():
    assert TRANSFORMS.get('CheckedLoadImageFromFile') is \
        CheckedLoadImageFromFile
    assert TRANSFORMS.get('CheckedLoadAnnotations') is CheckedLoadAnnotations
    assert issubclass(DataFileError, OSError)


def test_good_data_loads_with_reduce_zero_label(data):
    root, cfg = data
    for split, folder in (('train', 'training'), ('val', 'validation')):
        ds = _dataset(cfg, split)
        assert len(ds) == (3 if split == 'train' else 2)
        out = ds[0]
        gt = out['data_samples'].gt_sem_seg.data.numpy()
        values = set(np.unique(gt).tolist())
        assert values <= set(range(6)) | {255}
    # Validation keeps the original resolution: compare with the raw PNG.
    ds = _dataset(cfg, 'val')
    out = ds[1]
    raw = np.asarray(
        Image.open(
            osp.join(root, 'annotations', 'validation',
                     'ADE_val_00000002.png')))
    gt = out['data_samples'].gt_sem_seg.data.numpy()[0]
    expected = np.where(raw == 0, 255, raw.astype(np.int64) - 1)
    np.testing.assert_array_equal(gt, expected)
    # The image is resized to the test scale (short side 160), the label
    # stays at the original size (predictions are resized back to it).
    assert out['inputs'].shape == (3, 160, 192)
    assert out['data_samples'].ori_shape == (40, 48)


def test_missing_dataset_directory_names_path(tmp_path):
    cfg = Config.fromfile(DEMO_CONFIG)
    missing = str(tmp_path / 'no_such_dir' / 'ADEChallengeData2016')
    cfg.train_dataloader.dataset.data_root = missing
    with pytest.raises(FileNotFoundError) as exc:
        _dataset(cfg, 'train')
    assert osp.join(missing, 'images', 'training') in str(exc.value)


@pytest.mark.parametrize(
    'content', [b'', b'not an image at all', b'\xff\xd8\xff\xe0\x00\x10JFIF'],
    ids=['empty', 'garbage', 'cut-header'])
@pytest.mark.parametrize('split', ['train', 'val'])
def test_corrupt_image_names_file(data, split, content):
    root, cfg = data
    folder = 'training' if split == 'train' else 'validation'
    prefix = 'train' if split == 'train' else 'val'
    bad = osp.join(root, 'images', folder, f'ADE_{prefix}_00000002.jpg')
    with open(bad, 'wb') as f:
        f.write(content)
    ds = _dataset(cfg, split)
    ds[0]  # the others still load
    with pytest.raises(DataFileError) as exc:
        ds[1]
    assert str(exc.value).startswith(f'{bad}: cannot load image')


@pytest.mark.parametrize('split', ['train', 'val'])
def test_label_of_wrong_size_names_both_files(data, split):
    root, cfg = data
    folder = 'training' if split == 'train' else 'validation'
    prefix = 'train' if split == 'train' else 'val'
    seg = osp.join(root, 'annotations', folder, f'ADE_{prefix}_00000001.png')
    img = osp.join(root, 'images', folder, f'ADE_{prefix}_00000001.jpg')
    Image.open(seg).resize((24, 40), Image.NEAREST).save(seg)
    ds = _dataset(cfg, split)
    with pytest.raises(DataFileError) as exc:
        ds[0]
    assert str(exc.value) == (
        f'{seg}: label map is 24x40 (WxH) but image {img} is 48x40; a label '
        'map must have exactly the size of its image')


def test_label_not_single_channel_or_unreadable(data):
    root, cfg = data
    seg = osp.join(root, 'annotations', 'training', 'ADE_train_00000003.png')
    ds = _dataset(cfg, 'train')
    Image.open(seg).convert('RGB').save(seg)
    with pytest.raises(DataFileError) as exc:
        ds[2]
    assert str(exc.value).startswith(f'{seg}: label map has shape (40, 48, 3)')
    with open(seg, 'wb') as f:
        f.write(b'\x89PNG broken')
    with pytest.raises(DataFileError) as exc:
        ds[2]
    assert str(exc.value).startswith(f'{seg}: cannot load label map')


def _load_pair(img, seg, **kw):
    """One image and its label map through the checked loaders, as the
    pipeline runs them (``kw``: the label loader's arguments)."""
    results = dict(
        img_path=img,
        seg_map_path=seg,
        seg_fields=[],
        reduce_zero_label=kw.get('reduce_zero_label', True),
        label_map=None)
    CheckedLoadImageFromFile()(results)
    return CheckedLoadAnnotations(**kw)(results)


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_16bit_label_values_above_255_are_named_not_wrapped(data, backend):
    # mmseg casts the decoded map to uint8: 261 became class 4 (261 - 256,
    # then reduce_zero_label) without a word, 456 was reported as 200
    root, _ = data
    img = osp.join(root, 'images', 'training', 'ADE_train_00000001.jpg')
    seg = osp.join(root, 'annotations', 'training', 'ADE_train_00000001.png')
    labels = np.asarray(Image.open(seg)).astype(np.uint16)

    def load():
        return _load_pair(img, seg, num_classes=150, imdecode_backend=backend)

    # a 16-bit file with 8-bit values loads as the 8-bit one does
    want = load()['gt_seg_map']
    cv2.imwrite(seg, labels)
    assert Image.open(seg).mode.startswith('I;16')
    np.testing.assert_array_equal(load()['gt_seg_map'], want)
    # the bounds: 255 (ignored) is an 8-bit value, 256 is not
    labels[0, 0] = 255
    cv2.imwrite(seg, labels)
    assert load()['gt_seg_map'][0, 0] == 255
    labels[0, 0] = 256
    cv2.imwrite(seg, labels)
    with pytest.raises(DataFileError, match=r'outside 0\.\.255 \(256; 1 '):
        load()
    labels[:3] = 261
    labels[-1, :2] = 456
    cv2.imwrite(seg, labels)
    with pytest.raises(DataFileError) as exc:
        load()
    n = 3 * labels.shape[1] + 2
    assert str(exc.value) == (
        f'{seg}: label map has uint16 values outside 0..255 (261, 456; {n} '
        "pixels), which mmseg's 8-bit labels would wrap around (e.g. 261 to "
        '5); expected an 8-bit single-channel PNG')


def test_missing_label_file_names_it(data):
    root, cfg = data
    seg = osp.join(root, 'annotations', 'validation', 'ADE_val_00000001.png')
    ds = _dataset(cfg, 'val')
    os.remove(seg)
    with pytest.raises(DataFileError) as exc:
        ds[0]
    assert str(exc.value).startswith(f'{seg}: cannot load label map')
    assert isinstance(exc.value.__cause__, FileNotFoundError)


def test_dataset_without_label_maps_is_named(data):
    # data_prefix without seg_map_path: mmseg lists no label map per sample
    root, cfg = data
    cfg.val_dataloader.dataset.data_prefix = dict(img_path='images/validation')
    ds = _dataset(cfg, 'val')
    with pytest.raises(
            ValueError,
            match='has no seg_map_path: its dataset '
            r'lists no label maps \(data_prefix.seg_map_path'):
        ds[0]


def test_image_without_dataset_passes_the_label_loader():
    # mmseg.apis.inference_model keeps this loader (it drops only the step
    # named 'LoadAnnotations'): an image alone has no label map to load
    results = dict(img=np.zeros((4, 5, 3), np.uint8), img_shape=(4, 5))
    out = CheckedLoadAnnotations(num_classes=3)(dict(results))
    assert out.keys() == results.keys() and 'gt_seg_map' not in out


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
@pytest.mark.parametrize('keep', [0.5, 0.67, 0.9])
def test_truncated_jpeg_names_file(data, backend, keep):
    """A JPEG cut off in its scan data is refused by both decoders (the
    installed OpenCV returns no image, pillow raises), and the checked
    transform names the file."""
    root, _ = data
    path = osp.join(root, 'images', 'training', 'ADE_train_00000001.jpg')
    with open(path, 'rb') as f:
        content = f.read()
    with open(path, 'wb') as f:
        f.write(content[:int(len(content) * keep)])
    loader = CheckedLoadImageFromFile(imdecode_backend=backend)
    with pytest.raises(DataFileError) as exc:
        loader(dict(img_path=path))
    assert str(exc.value).startswith(f'{path}: cannot load image')


def _paint(seg_path, value, box=(slice(2, 6), slice(3, 7))):
    arr = np.asarray(Image.open(seg_path)).copy()
    arr[box] = value
    Image.fromarray(arr).save(seg_path)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_label_values_outside_classes_name_file_and_values(data, split):
    """The demo config's loader (6 classes, reduce_zero_label, the class
    subset's label_map) refuses a patch of 200 and names file and values;
    0 (other) and 255 (ignore) pass."""
    root, cfg = data
    folder = 'training' if split == 'train' else 'validation'
    prefix = 'train' if split == 'train' else 'val'
    seg = osp.join(root, 'annotations', folder, f'ADE_{prefix}_00000002.png')
    _paint(seg, 255)
    _paint(seg, 0, box=(slice(10, 12), slice(0, 48)))
    ds = _dataset(cfg, split)
    ds[1]  # 0 and 255 are fine
    _paint(seg, 200)
    with pytest.raises(DataFileError) as exc:
        ds[1]
    assert str(exc.value) == (
        f'{seg}: label values 200 (16 pixels) are not among the 6 classes; '
        'expected values 0..150, 255 (with reduce_zero_label=True: v is '
        "class v-1, 0 and 255 are ignored, then the class subset's "
        'label_map)')
    ds[0]  # the other files still load


def test_loader_checks_values_with_and_without_reduce_zero_label(data):
    root, _ = data
    img = osp.join(root, 'images', 'training', 'ADE_train_00000001.jpg')
    seg = osp.join(root, 'annotations', 'training', 'ADE_train_00000001.png')

    def load(**kw):
        return _load_pair(img, seg, **kw)

    _paint(seg, 6)
    assert load(num_classes=6)['gt_seg_map'].max() <= 255
    with pytest.raises(DataFileError) as exc:
        load(num_classes=5)  # 6 is class 5: one too many
    msg = str(exc.value)
    assert msg.startswith(f'{seg}: label values 6 (') and msg.endswith(
        'pixels) are not among the 5 classes; expected values 0..5, 255 '
        '(with reduce_zero_label=True: v is class v-1, 0 and 255 are '
        'ignored)')
    # without reduce_zero_label the stored value is the class itself
    with pytest.raises(DataFileError) as exc:
        load(num_classes=6, reduce_zero_label=False)
    msg = str(exc.value)
    assert msg.startswith(f'{seg}: label values 6 (')
    assert 'not among the 6 classes; expected values 0..5, 255 (with ' \
        'reduce_zero_label=False' in msg
    # another ignore index: 255 (stored 0) is now out of range
    with pytest.raises(DataFileError) as exc:
        load(num_classes=7, ignore_index=100)
    assert 'label values 0, 255 (' in str(exc.value)
    with pytest.raises(ValueError, match='num_classes must be a positive'):
        CheckedLoadAnnotations(num_classes=0)


def test_reduce_zero_label_unlike_the_datasets_is_a_config_error(data):
    # mmseg asserts it while loading; was reported as an unreadable file
    root, _ = data
    img = osp.join(root, 'images', 'training', 'ADE_train_00000001.jpg')
    seg = osp.join(root, 'annotations', 'training', 'ADE_train_00000001.png')
    results = dict(
        img_path=img,
        seg_map_path=seg,
        seg_fields=[],
        reduce_zero_label=False,  # the dataset's, e.g. Cityscapes
        label_map=None)
    CheckedLoadImageFromFile()(results)
    with pytest.raises(ValueError) as exc:
        CheckedLoadAnnotations(reduce_zero_label=True)(results)
    assert not isinstance(exc.value, DataFileError)
    assert str(exc.value) == (
        'CheckedLoadAnnotations: reduce_zero_label is True, but the dataset '
        'loads with reduce_zero_label=False; leave it out of the loader to '
        "follow the dataset's, or set the dataset's")
    # None follows the dataset
    assert CheckedLoadAnnotations()(results)['gt_seg_map'].ndim == 2


def test_loader_without_num_classes_warns_once(data, monkeypatch):
    import mmseg_vvt.datasets.transforms as transforms
    root, _ = data
    seg = osp.join(root, 'annotations', 'training', 'ADE_train_00000001.png')
    _paint(seg, 200)
    monkeypatch.setattr(CheckedLoadAnnotations, '_warned_unchecked', False)
    logged = []
    monkeypatch.setattr(transforms, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    loader = CheckedLoadAnnotations()
    CheckedLoadAnnotations()
    assert len(logged) == 1 and 'without num_classes' in logged[0], logged
    results = dict(
        seg_map_path=seg,
        seg_fields=[],
        reduce_zero_label=True,
        label_map=None)
    seg_map = loader(results)['gt_seg_map']
    assert (seg_map == 199).sum() == 16  # passed on unchecked, as mmseg's


def _runner_cfg(cfg, work_dir):
    """The demo config, shrunk so that building the runner is quick."""
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.batch_size = 3  # the first batch reads all images
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].num_workers = 0
        cfg[name].persistent_workers = False
    cfg.model.backbone.arch = tiny_arch()
    cfg.model.neck.in_channels = tiny_arch()['embed_dims']
    return cfg


def test_runner_train_reports_missing_dataset_directory(tmp_path):
    cfg = _runner_cfg(Config.fromfile(DEMO_CONFIG), tmp_path / 'work')
    missing = str(tmp_path / 'absent' / 'ADEChallengeData2016')
    cfg.train_dataloader.dataset.data_root = missing
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FileNotFoundError) as exc:
        runner.train()
    assert osp.join(missing, 'images', 'training') in str(exc.value)


def test_runner_train_reports_corrupt_image(data, tmp_path):
    root, cfg = data
    cfg = _runner_cfg(cfg, tmp_path / 'work')
    bad = osp.join(root, 'images', 'training', 'ADE_train_00000003.jpg')
    with open(bad, 'wb') as f:
        f.write(b'garbage')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(DataFileError) as exc:
        runner.train()
    assert str(exc.value).startswith(f'{bad}: cannot load image')


def test_runner_val_reports_label_of_wrong_size(data, tmp_path):
    root, cfg = data
    cfg = _runner_cfg(cfg, tmp_path / 'work')
    seg = osp.join(root, 'annotations', 'validation', 'ADE_val_00000002.png')
    Image.open(seg).resize((48, 41), Image.NEAREST).save(seg)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(DataFileError) as exc:
        runner.val()
    assert str(
        exc.value).startswith(f'{seg}: label map is 48x41 (WxH) but image')


def test_runner_train_reports_label_values_outside_classes(data, tmp_path):
    """Training (mmengine's Runner on the demo config) stops at the first
    batch, naming the file, instead of `Target 199 is out of bounds`."""
    root, cfg = data
    cfg = _runner_cfg(cfg, tmp_path / 'work')
    seg = osp.join(root, 'annotations', 'training', 'ADE_train_00000003.png')
    _paint(seg, 200)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(DataFileError) as exc:
        runner.train()
    assert str(exc.value).startswith(f'{seg}: label values 200 (16 pixels)')


def test_runner_test_reports_label_values_outside_classes(data, tmp_path):
    """Testing stops with the file named instead of reporting an mIoU that
    silently leaves the pixels out."""
    root, cfg = data
    cfg = _runner_cfg(cfg, tmp_path / 'work')
    seg = osp.join(root, 'annotations', 'validation', 'ADE_val_00000002.png')
    _paint(seg, 200)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(DataFileError) as exc:
        runner.test()
    assert str(exc.value).startswith(f'{seg}: label values 200 (16 pixels)')
