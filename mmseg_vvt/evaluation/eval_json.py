"""Evaluation results of ``tools/test.py`` as a JSON file.

:func:`write_eval_json` stores the summary and the per-class values that
:class:`~mmseg_vvt.evaluation.PerClassIoUMetric` returns in
``<work_dir>/eval_<timestamp>.json``, the file ``tools/collect_results.py``
reads::

    {"config": str, "checkpoint": str, "dataset": str,
     "metrics": {"aAcc": float, "mIoU": float, "mAcc": float},
     "per_class": [{"class": str, "IoU": float, "Acc": float}, ...],
     "timestamp": str,
     "checkpoint_iter": int | null, "checkpoint_epoch": int | null,
     "test": {"tta": bool, "partial_checkpoint": bool,
              "cfg_options": {str: value, ...}}}

``checkpoint_iter`` / ``checkpoint_epoch`` are the iteration / epoch the
tested checkpoint had reached (its ``meta``, as mmengine's runner saves it):
a results table shows how far the model was trained, not only the config's
schedule. ``null`` when the checkpoint has no such ``meta`` (a converted or
hand-made file); files written before they existed have neither key.

``test`` says how the result was made, so that a table of results can tell
them apart: ``tta``, with the config's test-time augmentation (``--tta``:
mmseg's ADE20K recipe is six scales and flips, its model zoo's
"mIoU(ms+flip)"); ``partial_checkpoint``, from a checkpoint that did not fit
the model whole (``--allow-partial-checkpoint``: some weights kept their
initial values); ``cfg_options``, the ``--cfg-options`` overrides of the
config file. Files written before it existed have no ``test`` key.

Values are percentages rounded to 2 decimals, as ``IoUMetric`` reports them.
A value that is undefined (0/0) is written as ``null``. If the metric was
configured with more ``iou_metrics`` (mDice, mFscore), their summary and
per-class values are included under their mmseg names too.
"""
import json
import math
import numbers
import os
import os.path as osp
from typing import Any, Dict, List, Optional

__all__ = ['write_eval_json', 'checkpoint_progress']


def _percent(value: Any) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value


def _count(value: Any) -> Optional[int]:
    # bool is an int, but never an iteration count; collect_results.py
    # refuses anything but a count >= 0 or null
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value) if value >= 0 else None


def checkpoint_progress(checkpoint: Any) -> Dict[str, Optional[int]]:
    """``{'iter': int | None, 'epoch': int | None}`` from a loaded
    checkpoint's ``meta`` (mmengine's runner stores both in every checkpoint
    it saves); None where the checkpoint does not say (no ``meta``, a bare
    state dict, a value that is not an integer >= 0)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        meta = {}
    return dict(iter=_count(meta.get('iter')), epoch=_count(meta.get('epoch')))


def write_eval_json(work_dir: str,
                    timestamp: str,
                    config: str,
                    checkpoint: str,
                    dataset: str,
                    metrics: Dict[str, Any],
                    per_class: Optional[List[Dict[str, Any]]],
                    tta: bool = False,
                    partial_checkpoint: bool = False,
                    cfg_options: Optional[Dict[str, Any]] = None,
                    checkpoint_iter: Optional[int] = None,
                    checkpoint_epoch: Optional[int] = None) -> str:
    """Write ``<work_dir>/eval_<timestamp>.json``; never overwrites.

    If that name exists (two runs in the same second), ``_1``, ``_2``, ...
    is appended. Returns the path written. The record's layout is in the
    module's docstring.

    Args:
        work_dir (str): The folder to write into.
        timestamp (str): The run's timestamp (the file's name, and
            ``timestamp`` in it).
        config (str): The config file tested.
        checkpoint (str): The checkpoint tested.
        dataset (str): The test dataset's name.
        metrics (dict): The summary metrics (``aAcc``, ``mIoU``, ``mAcc``
            and any other ``iou_metrics``), in percent; NaN is written as
            null.
        per_class (list[dict], optional): ``{'class', 'IoU', 'Acc', ...}``
            per class, as ``PerClassIoUMetric`` returns them; None: ``[]``.
        tta (bool): Made with test-time augmentation (``--tta``).
            Default: False.
        partial_checkpoint (bool): Made from a checkpoint that did not fit
            the model whole. Default: False.
        cfg_options (dict, optional): The ``--cfg-options`` overrides.
            Default: None (written as ``{}``).
        checkpoint_iter (int, optional): The iteration the checkpoint had
            reached (:func:`checkpoint_progress`); None: unknown.
        checkpoint_epoch (int, optional): Its epoch; None: unknown.
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
        'checkpoint_iter': _count(checkpoint_iter),
        'checkpoint_epoch': _count(checkpoint_epoch),
        'test': {
            'tta':
            bool(tta),
            'partial_checkpoint':
            bool(partial_checkpoint),
            # a value JSON cannot hold is written as its repr, not dropped
            'cfg_options':
            json.loads(json.dumps(dict(cfg_options or {}), default=repr)),
        },
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
