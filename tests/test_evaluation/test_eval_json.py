"""The eval_*.json of tools/test.py (mmseg_vvt.evaluation.eval_json)."""
import json

import pytest
from test_iou_metric import evaluate

from mmseg_vvt.evaluation import write_eval_json
from mmseg_vvt.evaluation.eval_json import checkpoint_progress


def test_write_eval_json_schema_and_no_overwrite(tmp_path):
    results = evaluate()
    per_class = results.pop('per_class')
    kwargs = dict(
        timestamp='20260101_000000',
        config='configs/x.py',
        checkpoint='work/iter_2.pth',
        dataset='ADE20KDataset',
        metrics=results,
        per_class=per_class)
    first = write_eval_json(str(tmp_path), **kwargs)
    assert first == str(tmp_path / 'eval_20260101_000000.json')
    before = open(first).read()
    second = write_eval_json(str(tmp_path), **kwargs)
    assert second == str(tmp_path / 'eval_20260101_000000_1.json')
    assert open(first).read() == before

    record = json.loads(before)
    assert set(record) == {
        'config', 'checkpoint', 'dataset', 'metrics', 'per_class', 'timestamp',
        'checkpoint_iter', 'checkpoint_epoch', 'test'
    }
    # not given: unknown, written as null
    assert record['checkpoint_iter'] is None
    assert record['checkpoint_epoch'] is None
    assert record['test'] == dict(
        tta=False, partial_checkpoint=False, cfg_options={})
    assert record['config'] == 'configs/x.py'
    assert record['checkpoint'] == 'work/iter_2.pth'
    assert record['dataset'] == 'ADE20KDataset'
    assert record['timestamp'] == '20260101_000000'
    assert set(record['metrics']) == {'aAcc', 'mIoU', 'mAcc'}
    assert all(isinstance(v, float) for v in record['metrics'].values())
    assert record['per_class'][1] == {
        'class': 'road',
        'IoU': 50.0,
        'Acc': 100.0
    }
    assert record['per_class'][2]['IoU'] is None


def test_write_eval_json_records_how_the_result_was_made(tmp_path):
    results = evaluate()
    per_class = results.pop('per_class')
    path = write_eval_json(
        str(tmp_path),
        timestamp='20260101_000000',
        config='configs/x.py',
        checkpoint='work/iter_2.pth',
        dataset='ADE20KDataset',
        metrics=results,
        per_class=per_class,
        tta=True,
        partial_checkpoint=True,
        # as DictAction parses them: a tuple, and a value JSON cannot hold
        cfg_options={
            'model.test_cfg.mode': 'slide',
            'crop_size': (256, 256),
            'odd': {1, 2}
        })
    test = json.loads(open(path).read())['test']
    assert test == dict(
        tta=True,
        partial_checkpoint=True,
        cfg_options={
            'model.test_cfg.mode': 'slide',
            'crop_size': [256, 256],
            'odd': '{1, 2}'
        })


def test_write_eval_json_records_how_far_the_checkpoint_was_trained(tmp_path):
    results = evaluate()
    per_class = results.pop('per_class')
    # as tools/test.py reads them from the loaded checkpoint
    progress = checkpoint_progress({
        'state_dict': {},
        'meta': {
            'iter': 2,
            'epoch': 0
        }
    })
    assert progress == dict(iter=2, epoch=0)
    path = write_eval_json(
        str(tmp_path),
        timestamp='20260101_000000',
        config='configs/x.py',
        checkpoint='work/iter_2.pth',
        dataset='ADE20KDataset',
        metrics=results,
        per_class=per_class,
        checkpoint_iter=progress['iter'],
        checkpoint_epoch=progress['epoch'])
    record = json.loads(open(path).read())
    assert (record['checkpoint_iter'], record['checkpoint_epoch']) == (2, 0)


def test_checkpoint_progress_unknown_without_meta():
    unknown = dict(iter=None, epoch=None)
    # a bare state dict, an empty or odd meta, values that are no counts
    assert checkpoint_progress({'weight': 1}) == unknown
    assert checkpoint_progress({'state_dict': {}, 'meta': {}}) == unknown
    assert checkpoint_progress({'meta': 'x'}) == unknown
    assert checkpoint_progress({'meta': {'iter': -1}}) == unknown
    assert checkpoint_progress(None) == unknown
    assert checkpoint_progress({'meta': {
        'iter': True,
        'epoch': '3'
    }}) == unknown
    assert checkpoint_progress({'meta': {
        'iter': 400
    }}) == dict(
        iter=400, epoch=None)


@pytest.mark.parametrize('tta, partial', [(True, False), (False, True)])
def test_tta_and_partial_checkpoint_are_recorded_apart(tmp_path, tta, partial):
    # kills eval_json.py `'partial_checkpoint': bool(partial_checkpoint)`
    # -> `bool(tta)` (the existing test sets both True)
    from mmseg_vvt.evaluation.eval_json import write_eval_json
    path = write_eval_json(
        str(tmp_path),
        '20260101_000000',
        'c.py',
        'x.pth',
        'ADE20KDataset',
        dict(aAcc=1., mIoU=2., mAcc=3.), [],
        tta=tta,
        partial_checkpoint=partial)
    test = json.loads(open(path).read())['test']
    assert (test['tta'], test['partial_checkpoint']) == (tta, partial)
