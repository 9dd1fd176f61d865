"""PerClassIoUMetric (mmseg_vvt.evaluation.iou_metric): mmseg's IoUMetric
plus the per-class values, built from the METRICS registry as configs name
it."""
import pytest
import torch
from mmengine.evaluator import Evaluator

import mmseg_vvt  # noqa: F401  (registers PerClassIoUMetric)


def _sample(pred, gt):
    return dict(
        pred_sem_seg=dict(data=torch.tensor(pred)[None]),
        gt_sem_seg=dict(data=torch.tensor(gt)[None]))


def evaluate(iou_metrics=('mIoU', ), metric_type='PerClassIoUMetric'):
    """Results of an evaluator built from config dicts, as the runner does:
    class 0: 2 of 3 pixels right; class 1: 1 of 1; class 2 never appears
    in ground truth nor prediction (IoU 0/0 = NaN)."""
    evaluator = Evaluator(
        [dict(type=f'mmseg.{metric_type}', iou_metrics=list(iou_metrics))])
    evaluator.dataset_meta = dict(classes=('sky', 'road', 'tree'))
    evaluator.process(
        data_samples=[_sample([[0, 0], [1, 1]], [[0, 0], [0, 1]])],
        data_batch={})
    return evaluator.evaluate(1)


def test_per_class_values_match_hand_computed_values():
    results = evaluate()
    rows = {r['class']: r for r in results['per_class']}
    assert list(rows) == ['sky', 'road', 'tree']
    # sky: intersect 2, union 3, gt 3; road: intersect 1, union 2, gt 1
    assert rows['sky']['IoU'] == pytest.approx(66.67)
    assert rows['sky']['Acc'] == pytest.approx(66.67)
    assert rows['road']['IoU'] == pytest.approx(50.0)
    assert rows['road']['Acc'] == pytest.approx(100.0)
    assert rows['tree']['IoU'] is None and rows['tree']['Acc'] is None
    # the summary is the mean over the defined classes, as mmseg computes
    assert results['aAcc'] == pytest.approx(75.0)
    assert results['mIoU'] == pytest.approx(58.33)
    assert results['mAcc'] == pytest.approx(83.33)


def test_summary_is_mmseg_iou_metrics():
    ours = evaluate()
    ours.pop('per_class')
    assert ours == evaluate(metric_type='IoUMetric')


def test_extra_iou_metrics_are_kept():
    results = evaluate(('mIoU', 'mDice'))
    assert set(results['per_class'][0]) == {'class', 'IoU', 'Acc', 'Dice'}
    assert 'mDice' in results


def test_format_only_returns_nothing(tmp_path):
    evaluator = Evaluator([
        dict(
            type='mmseg.PerClassIoUMetric',
            format_only=True,
            output_dir=str(tmp_path))
    ])
    evaluator.dataset_meta = dict(classes=('sky', 'road'))
    sample = _sample([[0, 1]], [[0, 1]])
    sample['img_path'] = 'x.png'
    evaluator.process(data_samples=[sample], data_batch={})
    assert evaluator.evaluate(1) == {}
