"""Evaluation: ``PerClassIoUMetric`` (registered in mmseg's ``METRICS``)
and the ``eval_*.json`` file that ``tools/test.py`` writes."""
from .eval_json import write_eval_json
from .iou_metric import PerClassIoUMetric

__all__ = ['PerClassIoUMetric', 'write_eval_json']
