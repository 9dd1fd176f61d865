"""The eval_*.json of tools/test.py (mmseg_vvt.evaluation.eval_json)."""
import json

from test_iou_metric import evaluate

from mmseg_vvt.evaluation import write_eval_json


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
        'test'
    }
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
