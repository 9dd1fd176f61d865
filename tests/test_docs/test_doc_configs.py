"""The configs the docs show are configs the tools accept and mmseg
builds: the drop-in example (VVT inside one of mmseg's own configs) of the
README and training.md, and training.md's config for another dataset."""
import os.path as osp
import re
import textwrap

import pytest
import torch

from mmseg_vvt.utils.cli import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BLOCK = re.compile(r"```python\n(_base_ = \['mmseg::.*?)```", re.S)


def _logits(cfg, height, width):
    """The logits of ``cfg``'s model, built without its ImageNet file (not
    here), for one random image."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        return model(torch.rand(1, 3, height, width), mode='tensor')


@pytest.mark.parametrize('doc', ['README.md', 'docs/training.md'])
def test_drop_in_example_loads_and_builds(doc, tmp_path):
    with open(osp.join(REPO, doc)) as f:
        (example, ) = BLOCK.findall(f.read())
    path = tmp_path / 'drop_in.py'
    path.write_text(example)
    cfg = load_config(path, data=('train_dataloader', 'val_dataloader'))
    assert cfg.model.backbone.type == 'VVT'
    assert cfg.model.pretrained is None
    assert _logits(cfg, 64, 64).shape == (1, 150, 16, 16)


def test_another_dataset_example_loads_and_builds(tmp_path):
    # training.md's Cityscapes config, where it says to save it
    with open(osp.join(REPO, 'docs', 'training.md')) as f:
        text = f.read()
    section = text[text.index('### Another dataset'):]
    example = re.findall(r"```python\n(_base_ = .*?)```", section, re.S)[0]
    configs = tmp_path / 'configs'
    (configs / 'my').mkdir(parents=True)
    (configs / '_base_').symlink_to(osp.join(REPO, 'configs', '_base_'))
    path = configs / 'my' / 'fpn_vvt-s_8xb2-80k_cityscapes-512x1024.py'
    path.write_text(example)
    cfg = load_config(path, data=('train_dataloader', 'val_dataloader'))
    assert cfg.train_dataloader.dataset.type == 'CityscapesDataset'
    assert cfg.model.decode_head.num_classes == 19
    # and the custom_hooks of our runtime came along
    assert [h['type'] for h in cfg.custom_hooks
            ] == ['CheckpointFitHook', 'VVTConfigCheckHook']
    # the paper's recipe and atomic checkpoints, as our ADE20K configs
    ours = load_config(
        osp.join(REPO, 'configs', 'vvt',
                 'fpn_vvt-s_8xb2-80k_ade20k-512x512.py'))
    assert cfg.optim_wrapper == ours.optim_wrapper
    assert cfg.param_scheduler == ours.param_scheduler
    assert cfg.default_hooks.checkpoint == ours.default_hooks.checkpoint
    assert _logits(cfg, 64, 128).shape == (1, 19, 16, 32)


def test_ocrnet_heads_example_loads_and_builds(tmp_path):
    # training.md's OCRNet model, in mmseg's ResNet OCRNet config
    with open(osp.join(REPO, 'docs', 'training.md')) as f:
        (model, ) = [
            b for b in re.findall(r'```python\n(.*?)```', f.read(), re.S)
            if '_base_.model.decode_head[0]' in b
        ]
    path = tmp_path / 'ocrnet_vvt.py'
    path.write_text(
        "_base_ = ['mmseg::ocrnet/ocrnet_r101-d8_4xb2-40k_cityscapes-"
        "512x1024.py']\n"
        "custom_imports = dict(imports=['mmseg_vvt'], "
        'allow_failed_imports=False)\n' +
        textwrap.dedent(model))  # a block inside a list item
    cfg = load_config(path, data=('train_dataloader', 'val_dataloader'))
    assert cfg.model.backbone.type == 'VVT'
    assert [h.type for h in cfg.model.decode_head] == ['FCNHead', 'OCRHead']
    assert [h.in_index for h in cfg.model.decode_head] == [3, 3]
    assert [h.in_channels for h in cfg.model.decode_head] == [512, 512]
    assert _logits(cfg, 64, 64).shape == (1, 19, 2, 2)
