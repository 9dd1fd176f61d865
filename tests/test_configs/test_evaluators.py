"""Every config that evaluates names PerClassIoUMetric, so the per-class
IoU/Acc reach mmengine's logs and tools/test.py's eval JSON."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if osp.join('configs', '_base_', 'models') not in p)


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_evaluators_are_per_class_iou(path):
    cfg = Config.fromfile(path)
    for key in ('val_evaluator', 'test_evaluator'):
        if cfg.get(key) is not None:
            assert cfg[key]['type'] == 'PerClassIoUMetric', (path, key)
    assert cfg.get('test_evaluator') is not None or 'datasets' not in path
