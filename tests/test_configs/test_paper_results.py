"""The ADE20K configs build the segmentors of the paper's table: whole-model
parameter counts (UperNet's with its auxiliary head) within 0.15M of the
paper's (tests/paper_results.py). Builds only, no forward pass."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from paper_results import PARAMS_TOLERANCE_M, REPO, VVT_ADE20K, config_path

import mmseg_vvt  # noqa: F401
from mmseg_vvt.engine.runtime import replace_sync_bn


def _build(rel):
    cfg = Config.fromfile(osp.join(REPO, rel))
    cfg.model.backbone.init_cfg = None  # no checkpoint files in tests
    replace_sync_bn(cfg.model)  # SyncBN layers need CUDA tensors
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize(
    'key', sorted(VVT_ADE20K), ids=lambda k: f'{k[0]}-vvt-{k[1]}')
def test_segmentor_params_match_the_paper(key):
    rel = config_path(*key)
    model = _build(rel)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    paper = VVT_ADE20K[key]['params']
    assert abs(n_params - paper) <= PARAMS_TOLERANCE_M, (
        f'{rel}: {n_params:.2f}M parameters, the paper reports {paper}M')
    # the UperNet column counts the auxiliary head (train-only) as well
    assert model.with_auxiliary_head == (key[0] == 'upernet')
