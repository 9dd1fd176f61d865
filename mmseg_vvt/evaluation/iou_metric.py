"""``PerClassIoUMetric``: mmseg's ``IoUMetric`` that also returns the
per-class values it prints.

mmseg's ``IoUMetric`` logs a per-class table but returns only the summary
(aAcc, mIoU, mAcc, ...). This subclass returns, besides the summary, the
per-class values computed from the very same accumulated areas under the key
``per_class``::

    [{"class": str, "IoU": float, "Acc": float}, ...]

(more columns, e.g. ``Dice``, when ``iou_metrics`` asks for them). Values are
percentages rounded to 2 decimals as ``IoUMetric`` reports them; a value that
is undefined (a class absent from both the ground truth and the predictions
gives 0/0) is ``None``. mmengine's ``RuntimeInfoHook`` / ``LoggerHook`` log
it with the summary and write it into the run's JSON log
(``<work_dir>/<timestamp>/<timestamp>.json`` for a test run); the configs of
this repository name it as their ``val_evaluator`` / ``test_evaluator``.
"""
import math
from typing import Any, Dict, List, Optional

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

__all__ = ['PerClassIoUMetric']


def _percent(value: Any) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """``IoUMetric`` (same arguments) whose results also hold ``per_class``
    (see the module docstring)."""

    def compute_metrics(self, results: list) -> Dict[str, Any]:
        metrics = super().compute_metrics(results)
        if self.format_only or not results:
            return metrics
        # the same arithmetic as IoUMetric.compute_metrics
        columns = tuple(zip(*results))
        ret_metrics = self.total_area_to_metrics(
            sum(columns[0]), sum(columns[1]), sum(columns[2]), sum(columns[3]),
            self.metrics, self.nan_to_num, self.beta)
        ret_metrics.pop('aAcc', None)
        per_class: List[Dict[str, Any]] = []
        for i, name in enumerate(self.dataset_meta['classes']):
            row: Dict[str, Any] = {'class': str(name)}
            for key, values in ret_metrics.items():
                row[key] = _percent(np.round(np.asarray(values)[i] * 100, 2))
            per_class.append(row)
        metrics['per_class'] = per_class
        return metrics
