"""mmseg_vvt.datasets.checks: the datasets a run will use exist and are
not empty (what tools/train.py and tools/test.py check before starting)."""
import os
import os.path as osp

import pytest
from mmengine.config import Config

import mmseg_vvt  # noqa: F401
from mmseg_vvt.datasets.checks import (DatasetNotFoundError, EmptyDatasetError,
                                       check_dataloader_datasets,
                                       runner_dataloader_keys)


def _split(root, split, n):
    for sub in ('images', 'annotations'):
        os.makedirs(osp.join(root, sub, split), exist_ok=True)
    for i in range(n):
        name = f'ADE_{split}_{i:08d}'
        # the check lists files, it does not decode them
        open(osp.join(root, 'images', split, name + '.jpg'), 'wb').close()
        open(osp.join(root, 'annotations', split, name + '.png'), 'wb').close()


def _dataset(root, split, pipeline=None):
    return dict(
        type='ADE20KDataset',
        data_root=root,
        data_prefix=dict(
            img_path=f'images/{split}', seg_map_path=f'annotations/{split}'),
        pipeline=pipeline if pipeline is not None else [
            dict(type='CheckedLoadImageFromFile'),
            dict(type='CheckedLoadAnnotations', reduce_zero_label=True)
        ])


def _cfg(**loaders):
    return Config(
        dict(
            default_scope='mmseg',
            **{
                k: dict(dataset=v)
                for k, v in loaders.items()
            }))


def test_sizes_of_present_datasets(tmp_path):
    root = str(tmp_path)
    _split(root, 'training', 3)
    _split(root, 'validation', 2)
    cfg = _cfg(
        train_dataloader=_dataset(root, 'training'),
        val_dataloader=_dataset(root, 'validation'))
    assert check_dataloader_datasets(
        cfg, ['train_dataloader', 'val_dataloader', 'test_dataloader']) == {
            'train_dataloader': 3,
            'val_dataloader': 2
        }


def test_empty_dataset_names_its_paths(tmp_path):
    root = str(tmp_path)
    _split(root, 'training', 0)
    # images with another suffix do not count
    open(osp.join(root, 'images', 'training', 'a.png'), 'wb').close()
    cfg = _cfg(train_dataloader=_dataset(root, 'training'))
    with pytest.raises(EmptyDatasetError) as info:
        check_dataloader_datasets(cfg, ['train_dataloader'])
    msg = str(info.value)
    assert msg.startswith('train_dataloader: the ADE20KDataset has no '
                          'samples')
    assert f'data_root={root!r}' in msg
    assert f"img_path={osp.join(root, 'images', 'training')!r}" in msg
    assert "img_suffix='.jpg'" in msg


def test_wrapped_datasets(tmp_path):
    root = str(tmp_path)
    _split(root, 'training', 2)
    _split(root, 'validation', 0)
    repeat = dict(
        type='RepeatDataset', times=3, dataset=_dataset(root, 'training'))
    assert check_dataloader_datasets(
        _cfg(train_dataloader=repeat), ['train_dataloader']) == {
            'train_dataloader': 6
        }

    empty = dict(
        type='RepeatDataset', times=3, dataset=_dataset(root, 'validation'))
    with pytest.raises(
            EmptyDatasetError,
            match='RepeatDataset has no '
            'samples.*images/validation'):
        check_dataloader_datasets(
            _cfg(train_dataloader=empty), ['train_dataloader'])

    # a missing directory inside a ConcatDataset is named
    concat = dict(
        type='ConcatDataset',
        datasets=[_dataset(root, 'training'),
                  _dataset(root, 'test')])
    missing = osp.join(root, 'images', 'test')
    with pytest.raises(
            DatasetNotFoundError, match=f'image directory {missing!r}'):
        check_dataloader_datasets(
            _cfg(train_dataloader=concat), ['train_dataloader'])


def test_label_directory_only_needed_when_labels_load(tmp_path):
    root = str(tmp_path)
    os.makedirs(osp.join(root, 'images', 'test'))
    open(osp.join(root, 'images', 'test', 'x.jpg'), 'wb').close()
    no_labels = _dataset(
        root, 'test', pipeline=[dict(type='CheckedLoadImageFromFile')])
    assert check_dataloader_datasets(
        _cfg(test_dataloader=no_labels), ['test_dataloader']) == {
            'test_dataloader': 1
        }
    with pytest.raises(DatasetNotFoundError, match='label map directory'):
        check_dataloader_datasets(
            _cfg(test_dataloader=_dataset(root, 'test')), ['test_dataloader'])


def test_runner_dataloader_keys():
    full = Config(
        dict(
            train_dataloader={},
            val_dataloader={},
            val_cfg={},
            val_evaluator={},
            test_dataloader={}))
    assert runner_dataloader_keys(
        full, 'train') == ['train_dataloader', 'val_dataloader']
    assert runner_dataloader_keys(full, 'test') == ['test_dataloader']
    no_val = Config(dict(train_dataloader={}, val_dataloader=None))
    assert runner_dataloader_keys(no_val, 'train') == ['train_dataloader']
    # validation switched off, its loader still inherited from a base: the
    # runner builds no validation loop, so its data is not required
    val_off = Config(
        dict(
            train_dataloader={},
            val_dataloader={},
            val_evaluator={},
            val_cfg=None))
    assert runner_dataloader_keys(val_off, 'train') == ['train_dataloader']
    with pytest.raises(ValueError, match='mode'):
        runner_dataloader_keys(full, 'val')
