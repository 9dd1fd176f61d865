"""Per-class results JSON of tools/test.py (mmseg_vvt.engine.results)."""
import json

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmseg.evaluation import IoUMetric

import mmseg_vvt  # noqa: F401
from mmseg_vvt.engine.results import capture_per_class, write_eval_json


def _sample(pred, gt):
    return dict(
        pred_sem_seg=dict(data=torch.tensor(pred)[None]),
        gt_sem_seg=dict(data=torch.tensor(gt)[None]))


def _evaluate(iou_metrics=('mIoU', )):
    metric = IoUMetric(iou_metrics=list(iou_metrics))
    evaluator = Evaluator([metric])
    evaluator.dataset_meta = dict(classes=('sky', 'road', 'tree'))
    capture = capture_per_class(evaluator)
    # class 0: 2 of 3 pixels right; class 1: 1 of 1; class 2 never appears
    # in ground truth nor prediction (IoU 0/0 = NaN)
    evaluator.process(
        data_samples=[_sample([[0, 0], [1, 1]], [[0, 0], [0, 1]])],
        data_batch={})
    summary = evaluator.evaluate(1)
    return summary, capture


def test_capture_matches_hand_computed_values():
    summary, capture = _evaluate()
    assert capture.captured
    rows = {r['class']: r for r in capture.per_class}
    assert list(rows) == ['sky', 'road', 'tree']
    # sky: intersect 2, union 3, gt 3; road: intersect 1, union 2, gt 1
    assert rows['sky']['IoU'] == pytest.approx(66.67)
    assert rows['sky']['Acc'] == pytest.approx(66.67)
    assert rows['road']['IoU'] == pytest.approx(50.0)
    assert rows['road']['Acc'] == pytest.approx(100.0)
    assert rows['tree']['IoU'] is None and rows['tree']['Acc'] is None
    # the summary is the mean over the defined classes, as mmseg computes
    assert summary['aAcc'] == pytest.approx(75.0)
    assert summary['mIoU'] == pytest.approx(58.33)
    assert summary['mAcc'] == pytest.approx(83.33)


def test_extra_iou_metrics_are_kept():
    _, capture = _evaluate(('mIoU', 'mDice'))
    assert set(capture.per_class[0]) == {'class', 'IoU', 'Acc', 'Dice'}


def test_evaluator_without_iou_metric_is_an_error():

    class Other:
        pass

    evaluator = Evaluator([])
    evaluator.metrics = [Other()]
    with pytest.raises(ValueError, match='Other'):
        capture_per_class(evaluator)


def test_write_eval_json_schema_and_no_overwrite(tmp_path):
    summary, capture = _evaluate()
    kwargs = dict(
        timestamp='20260101_000000',
        config='configs/x.py',
        checkpoint='work/iter_2.pth',
        dataset='ADE20KDataset',
        metrics=summary,
        per_class=capture.per_class)
    first = write_eval_json(str(tmp_path), **kwargs)
    assert first == str(tmp_path / 'eval_20260101_000000.json')
    before = open(first).read()
    second = write_eval_json(str(tmp_path), **kwargs)
    assert second == str(tmp_path / 'eval_20260101_000000_1.json')
    assert open(first).read() == before

    record = json.loads(before)
    assert set(record) == {
        'config', 'checkpoint', 'dataset', 'metrics', 'per_class',
        'timestamp'
    }
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
