"""The demo config trains from scratch without a gradient explosion at its
first step (issue: ~1e15 at batch 8 when padding fed LayerNorms constant
zero tokens), measured with tools/first_step_grad.py."""
import copy
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from tool_modules import load_tool

from mmseg_vvt.datasets import demo_data

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'vvt_fpn_demo.py')

fsg = load_tool('first_step_grad')

# seed 5 of this 16-image set: 10.7% of the batch's pixels are padding,
# the worst batch of seeds 0-5 (grad norm 1e19 with the zero pad)
SEED = 5


@pytest.fixture(scope='module')
def demo_cfg(tmp_path_factory):
    root = demo_data.generate(
        str(tmp_path_factory.mktemp('demo') / 'demo'),
        seed=0,
        num_train=16,
        num_val=1,
        verbose=False)
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.train_dataloader.dataset.data_root = root
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.model.backbone.init_cfg is None  # from scratch
    return cfg


def _analyse(cfg):
    torch.manual_seed(SEED)
    return fsg.analyse(cfg, seed=SEED)


def test_demo_first_step_gradient_is_bounded(demo_cfg):
    out = _analyse(copy.deepcopy(demo_cfg))
    assert out['batch_size'] == 8 and out['padded_fraction'] > 0.05
    assert math.isfinite(out['grad_norm'])
    assert out['grad_norm'] < 100, out['top']
    # no LayerNorm of the backbone sees a constant token
    assert all(n['degenerate'] == 0 for n in out['norms']), out['norms']


def test_zero_padding_is_the_cause(demo_cfg):
    """The same batch and initialisation padded with mmseg's default 0:
    the padded tokens are exact zeros at every LayerNorm of stage 1, each
    backward multiplies their gradient by 1/sqrt(eps), and the first
    layer's bias gets almost all of the norm."""
    cfg = copy.deepcopy(demo_cfg)
    cfg.model.data_preprocessor.pad_val = 0
    out = _analyse(cfg)
    assert out['grad_norm'] > 1e9, out['top']
    assert out['top'][0][0] == 'backbone.patch_embed1.proj.bias'
    gains = {n['name']: n['gain'] for n in out['norms'] if n['degenerate']}
    assert gains['patch_embed1.norm'] == pytest.approx(1e5**0.5, rel=0.05)
    assert gains['block1.0.norm2'] == pytest.approx(1e6**0.5, rel=0.05)


def test_a_config_without_training_data_is_one_error_line(tmp_path, capsys):
    config = tmp_path / 'model_only.py'
    config.write_text("model = dict(type='EncoderDecoder')\n")
    with pytest.raises(SystemExit) as exit_:
        fsg.parse_args([str(config)])
    assert exit_.value.code == 2
    assert 'has no train_dataloader entry' in capsys.readouterr().err


def test_a_head_with_fewer_classes_than_the_data_is_one_error_line(capsys):
    # not the loss's 'IndexError: Target 5 is out of bounds'
    demo = osp.join(REPO, 'configs', 'vvt_fpn_demo.py')
    with pytest.raises(SystemExit) as exit_:
        fsg.parse_args(
            [demo, '--cfg-options', 'model.decode_head.num_classes=5'])
    assert exit_.value.code == 2
    assert ('model.decode_head.num_classes is 5, but the dataset of '
            'train_dataloader (ADE20KDataset) has 6 classes: its label 5 is '
            "out of the head's range") in capsys.readouterr().err


def test_missing_data_or_weights_is_one_error_line(demo_cfg, tmp_path):
    recipe = osp.join(REPO, 'configs', 'vvt',
                      'fpn_vvt-t_8xb2-80k_ade20k-512x512.py')
    with pytest.raises(SystemExit) as exit_:
        fsg.main([
            recipe, '--cfg-options',
            f'train_dataloader.dataset.data_root={tmp_path / "none"}'
        ])
    assert str(exit_.value).startswith('error: train_dataloader: ')
    assert 'does not exist' in str(exit_.value)
    # the data is there, the recipe's ImageNet weights are not
    root = demo_cfg.train_dataloader.dataset.data_root
    with pytest.raises(SystemExit) as exit_:
        fsg.main([
            recipe, '--batch-size', '1', '--cfg-options',
            f'train_dataloader.dataset.data_root={root}',
            'model.backbone.init_cfg.checkpoint='
            f'{tmp_path / "vvt_tiny_backbone.pth"}'
        ])
    message = str(exit_.value)
    assert message.startswith('error: ') and 'vvt_tiny_backbone.pth' in message
    assert '--scratch' in message
