"""The README's and training.md's drop-in example (VVT inside one of
mmseg's own configs) is a config the tools accept and mmseg builds."""
import os.path as osp
import re

import pytest
import torch

from mmseg_vvt.utils.cli import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BLOCK = re.compile(r"```python\n(_base_ = \['mmseg::.*?)```", re.S)


@pytest.mark.parametrize('doc', ['README.md', 'docs/training.md'])
def test_drop_in_example_loads_and_builds(doc, tmp_path):
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    with open(osp.join(REPO, doc)) as f:
        (example, ) = BLOCK.findall(f.read())
    path = tmp_path / 'drop_in.py'
    path.write_text(example)
    cfg = load_config(path, data=('train_dataloader', 'val_dataloader'))
    assert cfg.model.backbone.type == 'VVT'
    assert cfg.model.pretrained is None
    # the ImageNet file is not here: build without loading it
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 64, 64), mode='tensor')
    assert logits.shape == (1, 150, 16, 16)
