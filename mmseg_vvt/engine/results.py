"""Evaluation results of ``tools/test.py`` as a JSON file.

mmseg's ``IoUMetric`` prints a per-class table but returns only the summary
(aAcc, mIoU, mAcc). :func:`capture_per_class` wraps the metric objects of a
built evaluator so the per-class values computed from the very same
accumulated areas are kept, and :func:`write_eval_json` stores them with the
summary in ``<work_dir>/eval_<timestamp>.json``::

    {"config": str, "checkpoint": str, "dataset": str,
     "metrics": {"aAcc": float, "mIoU": float, "mAcc": float},
     "per_class": [{"class": str, "IoU": float, "Acc": float}, ...],
     "timestamp": str}

Values are percentages rounded to 2 decimals, as ``IoUMetric`` reports them.
A per-class value that is undefined (a class absent from both the ground
truth and the predictions gives 0/0) is written as ``null``. If the metric
was configured with more ``iou_metrics`` (mDice, mFscore), their summary and
per-class values are included under their mmseg names too.
"""
import json
import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional

import numpy as np

__all__ = ['PerClassCapture', 'capture_per_class', 'write_eval_json']


def _percent(value: Any) -> Optional[float]:
    value = float(value)
    if math.isnan(value):
        return None
    return value


class PerClassCapture:
    """Holds the per-class results of the wrapped ``IoUMetric``."""

    def __init__(self) -> None:
        self.per_class: Optional[List[Dict[str, Any]]] = None
        self.metric_name: Optional[str] = None

    @property
    def captured(self) -> bool:
        return self.per_class is not None

    def _wrap(self, metric) -> None:
        compute_metrics = metric.compute_metrics

        def compute_and_keep(results: list) -> Dict[str, float]:
            summary = compute_metrics(results)
            if getattr(metric, 'format_only', False) or not results:
                return summary
            # the same arithmetic as IoUMetric.compute_metrics
            columns = tuple(zip(*results))
            ret_metrics = metric.total_area_to_metrics(
                sum(columns[0]), sum(columns[1]), sum(columns[2]),
                sum(columns[3]), metric.metrics, metric.nan_to_num,
                metric.beta)
            ret_metrics.pop('aAcc', None)
            classes = metric.dataset_meta['classes']
            per_class = []
            for i, name in enumerate(classes):
                row: Dict[str, Any] = {'class': str(name)}
                for key, values in ret_metrics.items():
                    values = np.asarray(values)
                    row[key] = _percent(np.round(values[i] * 100, 2))
                per_class.append(row)
            self.per_class = per_class
            self.metric_name = type(metric).__name__
            return summary

        metric.compute_metrics = compute_and_keep


def capture_per_class(evaluator) -> PerClassCapture:
    """Wrap every ``IoUMetric`` of an mmengine ``Evaluator``.

    Raises ``ValueError`` if the evaluator has none (for example a config
    evaluating with a different metric), since then there are no per-class
    IoU/Acc values to write.
    """
    from mmseg.evaluation import IoUMetric

    capture = PerClassCapture()
    metrics = [m for m in evaluator.metrics if isinstance(m, IoUMetric)]
    if not metrics:
        names = [type(m).__name__ for m in evaluator.metrics]
        raise ValueError(
            'the test evaluator has no IoUMetric (it has '
            f'{names}); per-class IoU/Acc can not be written')
    for metric in metrics:
        capture._wrap(metric)
    return capture


def write_eval_json(work_dir: str,
                    timestamp: str,
                    config: str,
                    checkpoint: str,
                    dataset: str,
                    metrics: Dict[str, Any],
                    per_class: Optional[List[Dict[str, Any]]]) -> str:
    """Write ``<work_dir>/eval_<timestamp>.json``; never overwrites.

    If that name exists (two runs in the same second), ``_1``, ``_2``, ...
    is appended. Returns the path written.
    """
    record = {
        'config': str(config),
        'checkpoint': str(checkpoint),
        'dataset': str(dataset),
        'metrics': {
            str(k): _percent(v)
            for k, v in metrics.items()
        },
        'per_class': per_class if per_class is not None else [],
        'timestamp': str(timestamp),
    }
    text = json.dumps(record, indent=2, allow_nan=False)
    os.makedirs(work_dir, exist_ok=True)
    stem = osp.join(work_dir, f'eval_{timestamp}')
    suffix = 0
    while True:
        path = f'{stem}.json' if suffix == 0 else f'{stem}_{suffix}.json'
        try:
            # 'x': exclusive creation, fails if the file exists
            with open(path, 'x', encoding='utf-8') as f:
                f.write(text + '\n')
            return path
        except FileExistsError:
            suffix += 1
