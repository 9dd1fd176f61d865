"""tools/convert_vvt_checkpoint.py: published ImageNet checkpoint -> backbone."""
import argparse
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmseg_vvt.models.backbones import VVT
from mmseg_vvt.models.utils import detect_vvt_arch, vvt_convert

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'convert_vvt_checkpoint.py')


@pytest.fixture(scope='module')
def published(tmp_path_factory):
    """vvt_tiny as the authors' training script saves it: weights under
    ``model`` with the classifier, plus the script's argparse Namespace."""
    torch.manual_seed(0)
    backbone = VVT(arch='tiny')
    backbone.init_weights()
    sd = dict(backbone.state_dict())
    sd['head.weight'] = torch.randn(1000, 512)
    sd['head.bias'] = torch.randn(1000)
    path = tmp_path_factory.mktemp('ckpt') / 'vvt_tiny.pth'
    torch.save({'model': sd, 'epoch': 299,
                'args': argparse.Namespace(model='vvt_tiny', lr=1e-3)}, path)
    return path, backbone


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_convert_then_load_as_pretrained(tmp_path, published):
    src, backbone = published
    dst = tmp_path / 'out' / 'vvt_tiny_backbone.pth'
    res = _run(src, dst)
    assert res.returncode == 0, res.stderr
    assert 'VVT-tiny' in res.stdout and '12.37M' in res.stdout
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['arch'] == 'tiny'
    assert not any(k.startswith('head') for k in ckpt['state_dict'])
    model = VVT(arch='tiny',
                init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    for k, v in backbone.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_refuses_to_overwrite(tmp_path, published):
    src, _ = published
    dst = tmp_path / 'exists.pth'
    dst.write_bytes(b'keep me')
    res = _run(src, dst)
    assert res.returncode != 0 and '--force' in res.stderr
    assert dst.read_bytes() == b'keep me'
    assert _run(src, dst, '--force').returncode == 0


def test_missing_source_is_named(tmp_path):
    res = _run(tmp_path / 'nope.pth', tmp_path / 'out.pth')
    assert res.returncode != 0 and 'nope.pth' in res.stderr


def test_detect_arch_and_reject_incomplete():
    for arch in ('tiny', 'small'):
        assert detect_vvt_arch(VVT(arch=arch).state_dict()) == arch
    sd = dict(VVT(arch='tiny').state_dict())
    del sd['block3.1.attn.v_proj.bias']
    with pytest.raises(ValueError, match='block3.1.attn.v_proj.bias'):
        vvt_convert(sd)
    with pytest.raises(ValueError, match='not a VVT'):
        vvt_convert({'conv1.weight': torch.zeros(1)})
