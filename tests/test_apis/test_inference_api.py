"""Building blocks of mmseg_vvt.apis.inference that need no model."""
import cv2
import numpy as np
import pytest
from mmengine.config import Config

from mmseg_vvt.apis import (drop_resize, expand_inputs, inference_pipeline,
                            label_dtype, plan_outputs, resolve_dataset_meta,
                            save_label, set_test_mode)


def _touch(path, data=b'x'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_expand_inputs_files_folders_globs(tmp_path):
    a = _touch(tmp_path / 'd' / 'a.png')
    b = _touch(tmp_path / 'd' / 'b.JPG')
    txt = _touch(tmp_path / 'd' / 'readme.txt')
    _touch(tmp_path / 'd' / 'sub' / 'c.png')  # folders are not recursive
    d = _touch(tmp_path / 'e' / 'd.tif')
    odd = _touch(tmp_path / 'odd.dat')  # an explicit file is always taken
    images, ignored = expand_inputs(
        [tmp_path / 'd', str(tmp_path / 'e' / '*.tif'), odd, a])
    assert images == [a, b, d, odd]  # a only once
    assert ignored == [txt]

    images, _ = expand_inputs([str(tmp_path / '**' / '*.png')])
    assert sorted(p.name for p in images) == ['a.png', 'c.png']


def test_expand_inputs_errors_name_the_input(tmp_path):
    with pytest.raises(
            FileNotFoundError,
            match='nothing_here.*the glob pattern matches no file'):
        expand_inputs([str(tmp_path / 'nothing_here*.png')])
    # a plain path: it does not exist (was: "not an image file, a folder, or
    # a glob pattern matching any file")
    with pytest.raises(FileNotFoundError, match=r'nope\.jpg. does not exist'):
        expand_inputs([str(tmp_path / 'nope.jpg')])
    _touch(tmp_path / 'only.txt')
    with pytest.raises(FileNotFoundError, match='no image files'):
        expand_inputs([tmp_path])


def test_plan_outputs_paths_clashes_and_overwrite(tmp_path):
    a = tmp_path / 'in' / 'a.jpg'
    b = tmp_path / 'in2' / 'b.png'
    plans = plan_outputs([a, b], tmp_path / 'out')
    assert plans[0].label == tmp_path / 'out' / 'labels' / 'a.png'
    assert plans[1].overlay == tmp_path / 'out' / 'overlays' / 'b.png'
    assert plan_outputs([a], tmp_path / 'out', overlay=False)[0].overlay \
        is None

    with pytest.raises(
            ValueError,
            match=r'separate --out-dir:\n.*a\.png <- .*a\.jpg, '
            r'.*a\.png'):
        plan_outputs([a, tmp_path / 'x' / 'a.png'], tmp_path / 'out')
    # an earlier run's outputs among the inputs ('in/**'): another --out-dir
    # would not help, leaving them out does
    earlier = tmp_path / 'in' / 'pred' / 'labels' / 'a.png'
    with pytest.raises(ValueError) as info:
        plan_outputs([a, earlier], tmp_path / 'out')
    assert f"inputs in {earlier.parent} look like an earlier run's outputs" \
        in str(info.value)

    _touch(tmp_path / 'out' / 'overlays' / 'b.png')
    with pytest.raises(FileExistsError, match=r'overlays/b\.png'):
        plan_outputs([a, b], tmp_path / 'out')
    assert len(plan_outputs([a, b], tmp_path / 'out', overwrite=True)) == 2
    # without overlays the existing overlay is not in the way
    assert len(plan_outputs([a, b], tmp_path / 'out', overlay=False)) == 2


def _cfg(**kw):
    base = dict(
        crop_size=(512, 512),
        model=dict(type='EncoderDecoder', test_cfg=dict(mode='whole')),
        test_pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(2048, 512), keep_ratio=True),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ])
    base.update(kw)
    return Config(base)


def test_set_test_mode_switches_whole_and_slide():
    cfg = _cfg()
    slide = set_test_mode(cfg, 'slide')
    assert slide.model.test_cfg == dict(
        mode='slide', crop_size=(512, 512), stride=(341, 341))
    assert cfg.model.test_cfg == dict(mode='whole')  # input untouched
    custom = set_test_mode(cfg, 'slide', crop_size=[256], stride=[100, 80])
    assert custom.model.test_cfg.crop_size == (256, 256)
    assert custom.model.test_cfg.stride == (100, 80)
    # the config's own slide settings are the defaults
    back = set_test_mode(custom, None)
    assert back.model.test_cfg.crop_size == (256, 256)
    whole = set_test_mode(custom, 'whole')
    assert whole.model.test_cfg == dict(mode='whole')


def test_set_test_mode_errors():
    with pytest.raises(ValueError, match='mode'):
        set_test_mode(_cfg(), 'tiles')
    with pytest.raises(ValueError, match='--crop-size'):
        set_test_mode(_cfg(crop_size=None), 'slide')
    with pytest.raises(ValueError, match='unpredicted'):
        set_test_mode(_cfg(), 'slide', crop_size=64, stride=65)
    with pytest.raises(ValueError, match='slide mode'):
        set_test_mode(_cfg(), 'whole', crop_size=64)


def test_drop_resize_keeps_the_other_steps():
    cfg = drop_resize(_cfg())
    assert [t['type'] for t in cfg.test_pipeline
            ] == ['LoadImageFromFile', 'LoadAnnotations', 'PackSegInputs']


def test_inference_pipeline_loads_arrays_and_drops_annotations():
    import mmseg_vvt  # noqa: F401  (registers the Checked* transforms)
    pipeline = [
        dict(type='CheckedLoadImageFromFile', to_float32=True),
        dict(type='Resize', scale=(2048, 512), keep_ratio=True),
        dict(type='CheckedLoadAnnotations', reduce_zero_label=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ]
    assert inference_pipeline(pipeline) == [
        dict(type='CheckedInferencerLoader', to_float32=True),
        dict(type='Resize', scale=(2048, 512), keep_ratio=True),
        dict(type='PackSegInputs')
    ]
    assert pipeline[0]['type'] == 'CheckedLoadImageFromFile'  # untouched
    with pytest.raises(ValueError, match="'Resize'"):
        inference_pipeline(pipeline[1:])


def test_label_dtype_and_save_label(tmp_path):
    assert label_dtype(150) == np.uint8
    assert label_dtype(255) == np.uint8
    assert label_dtype(256) == np.uint16
    label = np.array([[0, 300], [299, 5]])
    save_label(label, tmp_path / 'x' / 'l.png', num_classes=301)
    back = cv2.imread(str(tmp_path / 'x' / 'l.png'), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, label)
    save_label(label[None] % 7, tmp_path / 'l8.png', num_classes=7)
    back = cv2.imread(str(tmp_path / 'l8.png'), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and back.shape == (2, 2)


def test_resolve_dataset_meta_order():
    import mmseg_vvt  # noqa: F401  (mmseg registries)
    cfg = Config(
        dict(test_dataloader=dict(dataset=dict(type='ADE20KDataset'))))
    ckpt = dict(
        dataset_meta=dict(classes=('a', 'b'), palette=[[1, 2, 3], [4, 5, 6]]))
    meta, source = resolve_dataset_meta(cfg, ckpt, 2)
    assert source == 'checkpoint meta'
    assert meta == dict(classes=['a', 'b'], palette=[[1, 2, 3], [4, 5, 6]])

    meta, source = resolve_dataset_meta(cfg, None, 150)
    assert 'ADE20KDataset' in source
    assert meta['classes'][0] == 'wall' and len(meta['palette']) == 150

    meta, source = resolve_dataset_meta(Config(dict()), {}, 19)
    assert 'cityscapes' in source and meta['classes'][0] == 'road'

    # no mmseg dataset has 9 classes
    meta, source = resolve_dataset_meta(Config(dict()), {}, 9)
    assert source == 'generic class names'
    assert meta['classes'] == [f'class_{i}' for i in range(9)]
    assert len(meta['palette']) == 9

    # checkpoint meta without a palette, fewer names than classes
    with pytest.warns(UserWarning, match='3 classes'):
        meta, _ = resolve_dataset_meta(
            cfg, dict(dataset_meta=dict(classes=['x', 'y', 'z'])), 4)
    assert meta['classes'] == ['x', 'y', 'z', 'class_3']
    assert len(meta['palette']) == 4


def test_resolve_dataset_meta_palette_fits_the_classes():
    """One colour per class whatever the source (mmseg's visualizer
    refuses anything else), and always the model's number of classes."""
    from mmseg.utils import get_classes, get_palette

    import mmseg_vvt  # noqa: F401  (mmseg registries)
    ade_classes, ade_palette = get_classes('ade20k'), get_palette('ade20k')

    def config(**metainfo):
        return Config(
            dict(
                test_dataloader=dict(
                    dataset=dict(type='ADE20KDataset', metainfo=metainfo))))

    # a subset of the dataset's classes (the demo config): their colours,
    # as mmseg's dataset gives them (150 colours for 6 classes crashed)
    names = ('wall', 'sky', 'tree', 'floor', 'building', 'ceiling')
    meta, source = resolve_dataset_meta(config(classes=names), None, 6)
    assert meta['classes'] == list(names)
    assert meta['palette'] == [
        list(ade_palette[ade_classes.index(n)]) for n in names
    ]
    assert 'ADE20KDataset' in source and "dataset's colours" in source

    # names the dataset does not have: which colour is whose is unknown
    meta, source = resolve_dataset_meta(
        config(classes=('cat', 'dog', 'wall')), None, 3)
    assert meta['classes'] == ['cat', 'dog', 'wall']
    assert len(meta['palette']) == 3
    assert 'palette: generated (150 colours for 3 classes)' in source

    # more names than the model predicts: the first num_classes
    with pytest.warns(UserWarning, match='150 classes.*predicts 4'):
        meta, source = resolve_dataset_meta(config(), None, 4)
    assert meta['classes'] == list(ade_classes[:4])
    assert meta['palette'] == [list(c) for c in ade_palette[:4]]
    assert 'the first 4 of 150' in source

    # a checkpoint's meta with more colours than classes
    ckpt = dict(dataset_meta=dict(classes=['a', 'b'], palette=[[1, 1, 1]] * 5))
    meta, source = resolve_dataset_meta(Config(dict()), ckpt, 2)
    assert meta['classes'] == ['a', 'b'] and len(meta['palette']) == 2
    assert source.startswith('checkpoint meta; palette: generated')


def test_expand_inputs_keeps_one_image_under_two_spellings(tmp_path):
    # kills inference.py `key = path.resolve()` -> `key = path`
    import cv2
    import numpy as np

    from mmseg_vvt.apis import expand_inputs
    (tmp_path / 'sub').mkdir()
    img = tmp_path / 'a.png'
    cv2.imwrite(str(img), np.zeros((4, 4, 3), np.uint8))
    images, _ = expand_inputs(
        [str(img),
         str(tmp_path / 'sub' / '..' / 'a.png'),
         str(tmp_path)])
    assert images == [img]


def test_a_stride_wider_than_the_window_is_refused():
    # kills inference.py checking only the stride's height against the
    # window
    from mmseg_vvt.apis import set_test_mode
    cfg = Config(dict(model=dict(test_cfg=dict(mode='whole'))))
    for stride in ((80, 32), (32, 80)):
        with pytest.raises(ValueError, match='larger than the window'):
            set_test_mode(cfg, 'slide', crop_size=(64, 64), stride=stride)


def test_one_class_too_many_in_the_meta_is_cut():
    # kills inference.py `elif n > num_classes` -> `n > num_classes + 1`
    from mmseg_vvt.apis.inference import resolve_dataset_meta
    meta = dict(
        dataset_meta=dict(
            classes=['a', 'b', 'c'], palette=[[1, 1, 1], [2, 2, 2], [3, 3, 3]
                                              ]))
    with pytest.warns(UserWarning, match='using the first 2'):
        out, source = resolve_dataset_meta(Config(dict()), meta, 2)
    assert out == dict(classes=['a', 'b'], palette=[[1, 1, 1], [2, 2, 2]])
