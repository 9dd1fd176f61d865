"""tools/convert_vvt_checkpoint.py: published ImageNet checkpoint to
backbone."""
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
    torch.save(
        {
            'model': sd,
            'epoch': 299,
            'args': argparse.Namespace(model='vvt_tiny', lr=1e-3)
        }, path)
    return path, backbone


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)],
                          capture_output=True,
                          text=True,
                          cwd=ROOT)


def test_convert_then_load_as_pretrained(tmp_path, published):
    src, backbone = published
    dst = tmp_path / 'out' / 'vvt_tiny_backbone.pth'
    res = _run(src, dst)
    assert res.returncode == 0, res.stderr
    assert 'VVT-tiny' in res.stdout and '12.37M' in res.stdout
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['arch'] == 'tiny'
    assert not any(k.startswith('head') for k in ckpt['state_dict'])
    model = VVT(
        arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    for k, v in backbone.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_refuses_to_overwrite(tmp_path, published):
    src, _ = published
    dst = tmp_path / 'exists.pth'
    dst.write_bytes(b'keep me')
    res = _run(src, dst)
    assert res.returncode == 2 and 'pass --force' in res.stderr
    assert dst.read_bytes() == b'keep me'
    assert _run(src, dst, '--force').returncode == 0


def test_folders_and_the_source_itself_are_refused(tmp_path, published):
    src, _ = published
    before = src.read_bytes()
    for args, message in (((tmp_path, tmp_path / 'x.pth'), 'is a folder'),
                          ((src, f'{tmp_path}/new/'), 'names a folder'),
                          ((src, src, '--force'), 'is the source file')):
        res = _run(*args)
        assert res.returncode == 2, args
        assert message in res.stderr and 'Traceback' not in res.stderr
    assert src.read_bytes() == before
    assert not (tmp_path / 'new').exists()


def test_unwritable_dst_is_refused_before_reading(tmp_path):
    # the source does not exist: the dst refusal comes first, in one line
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    for dst, message in ((tmp_path, 'is a folder'),
                         (a_file / 'out.pth', 'is a file, not a folder')):
        res = _run(tmp_path / 'nope.pth', dst)
        assert res.returncode == 2
        assert message in res.stderr and 'Traceback' not in res.stderr


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
    with pytest.raises(ValueError, match='x.pth: not a VVT'):
        vvt_convert({'conv1.weight': torch.zeros(1)}, source='x.pth')


# inf: kills ckpt_convert.py refusing only NaN weights
@pytest.mark.parametrize('value', ['nan', 'inf', '-inf'])
def test_non_finite_weights_are_refused(value):
    sd = dict(VVT(arch='tiny').state_dict())
    sd['block2.0.mlp.fc1.weight'] = sd['block2.0.mlp.fc1.weight'].clone()
    sd['block2.0.mlp.fc1.weight'][0, 0] = float(value)
    with pytest.raises(ValueError) as info:
        vvt_convert(sd, source='w.pth')
    assert str(info.value) == ('w.pth: 1 tensor(s) hold NaN or inf values '
                               '(block2.0.mlp.fc1.weight); not converted')


# with head keys: kills ckpt_convert.py's hint needing every key under
# backbone. (a segmentor checkpoint has its heads' too)
@pytest.mark.parametrize('heads', [False, True])
def test_a_segmentor_checkpoint_is_named_as_one(heads):
    sd = {f'backbone.{k}': v for k, v in VVT(arch='tiny').state_dict().items()}
    if heads:
        sd['decode_head.conv_seg.weight'] = torch.zeros(4, 16, 1, 1)
    with pytest.raises(ValueError) as info:
        vvt_convert({'state_dict': sd, 'meta': {}}, source='seg.pth')
    msg = str(info.value)
    assert msg.startswith('seg.pth: not a VVT backbone state dict')
    assert "prefix='backbone.'" in msg


def test_published_file_loads_directly_as_pretrained(published):
    """The authors' file (with its argparse.Namespace) loads through
    init_cfg as it does through the converter: one loader, one list."""
    src, backbone = published
    model = VVT(
        arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    model.init_weights()
    for k, v in backbone.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_malicious_source_is_refused_in_one_line(tmp_path):
    from ckpt_helpers import write_malicious
    marker = tmp_path / 'pickle_ran_code'
    src = write_malicious(tmp_path / 'evil.pth', marker)
    dst = tmp_path / 'out.pth'
    res = _run(src, dst)
    assert res.returncode == 1
    assert 'Traceback' not in res.stderr, res.stderr
    (line, ) = res.stderr.strip().splitlines()
    assert line.startswith('error: Refusing to load checkpoint')
    assert src in line and 'os.makedirs' in line
    assert not marker.exists() and not dst.exists()


def test_empty_or_truncated_source_is_one_line(tmp_path, published):
    from ckpt_helpers import write_truncated
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    half = write_truncated(published[0], tmp_path / 'half.pth')
    for src, what in ((str(empty), '(0 bytes)'),
                      (half, f'({osp.getsize(half)} bytes)')):
        res = _run(src, tmp_path / 'out.pth')
        assert res.returncode == 1 and 'Traceback' not in res.stderr
        (line, ) = res.stderr.strip().splitlines()
        assert src in line and what in line, line
    assert not (tmp_path / 'out.pth').exists()


def test_pretrained_url_that_runs_code_is_refused(tmp_path, monkeypatch):
    from ckpt_helpers import NO_PROXY_ENV, serve_directory, write_malicious

    from mmseg_vvt.engine import UnsafeCheckpointError
    for key, value in NO_PROXY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    marker = tmp_path / 'pickle_ran_code'
    (tmp_path / 'www').mkdir()
    write_malicious(tmp_path / 'www' / 'vvt_tiny.pth', marker)
    with serve_directory(tmp_path / 'www') as url:
        model = VVT(
            arch='tiny',
            init_cfg=dict(type='Pretrained', checkpoint=url + '/vvt_tiny.pth'))
        with pytest.raises(UnsafeCheckpointError, match='vvt_tiny.pth'):
            model.init_weights()
    assert not marker.exists()


def test_detect_arch_of_every_preset():
    # kills ckpt_convert.py: one-digit block index regex, 'large' dropped
    for arch in ('tiny', 'small', 'medium', 'large'):
        assert detect_vvt_arch(VVT(arch=arch).state_dict()) == arch


def test_unexpected_keys_are_refused():
    # kills ckpt_convert.py: unexpected keys silently dropped
    sd = dict(VVT(arch='tiny').state_dict())
    sd['extra.weight'] = torch.zeros(3)
    with pytest.raises(ValueError) as info:
        vvt_convert(sd, source='extra.pth')
    assert str(info.value) == ('extra.pth: not a complete VVT-tiny '
                               "checkpoint; missing keys [], unexpected "
                               "keys ['extra.weight']")
