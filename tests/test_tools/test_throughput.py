"""tools/throughput.py on a tiny config in fp32 and bf16 (no timing
assertions)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from tool_modules import assert_refused

from mmseg_vvt.testing import write_tiny_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'throughput.py')


@pytest.fixture
def cfg_file(tmp_path):
    return write_tiny_config(
        tmp_path / 'fcn_vvt-tiny-test_64x64.py',
        decode_head='fcn',
        norm_type='SyncBN',
        data_preprocessor=False)


def test_throughput_runs_in_fp32_and_bf16(cfg_file, tmp_path):
    out = tmp_path / 'tp.json'
    proc = subprocess.run([
        sys.executable, TOOL, cfg_file, '--shape', '64', '64', '--batch-size',
        '2', '--dtype', 'fp32', 'bf16', '--iters', '2', '--warmup', '1',
        '--out',
        str(out)
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.load(open(out))['results']
    assert sorted(res) == ['bf16', 'fp32']
    for name, r in res.items():
        assert r['batch_size'] == 2 and r['shape'] == [64, 64]
        assert len(r['ms_per_batch_samples']) == r['iters'] == 2
        # images/s is consistent with the measured batch times
        total_s = sum(r['ms_per_batch_samples']) / 1e3
        assert r['images_per_s'] == pytest.approx(2 * 2 / total_s)
        assert r['output_finite'] is True
        assert f'| {name} |' in proc.stdout


def test_bf16_really_runs_under_autocast(cfg_file):
    """The bf16 pass must run the backbone in bf16 (autocast on)."""
    import torch
    from analysis_tools.throughput import segmentor_throughput

    from mmseg_vvt.utils.complexity import build_segmentor
    model = build_segmentor(cfg_file)
    seen = []
    # VVT's kernels call F.linear on the weights, so a hook on an
    # nn.Linear would not fire; the backbone's feature maps tell the dtype
    model.backbone.register_forward_hook(
        lambda m, i, o: seen.append(o[0].dtype))
    segmentor_throughput(
        None,
        shape=(64, 64),
        batch_size=1,
        dtypes=['fp32', 'bf16'],
        iters=1,
        warmup=0,
        model=model)
    assert seen == [torch.float32, torch.bfloat16]


def test_throughput_rejects_bad_arguments(cfg_file, tmp_path, capsys):
    from analysis_tools.throughput import segmentor_throughput
    with pytest.raises(ValueError, match="'int8'"):
        segmentor_throughput(cfg_file, shape=(64, 64), dtypes=['int8'])
    with pytest.raises(ValueError, match='batch_size'):
        segmentor_throughput(cfg_file, shape=(64, 64), batch_size=0)
    proc = subprocess.run(
        [sys.executable, TOOL, cfg_file, '--shape', '1', '2', '3'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120)
    assert proc.returncode == 2 and '--shape' in proc.stderr
    from tool_modules import load_tool
    parse_args = load_tool('throughput').parse_args
    existing = tmp_path / 'old.json'
    existing.write_text('{}')
    no_model = tmp_path / 'no_model.py'
    no_model.write_text('a = 1\n')
    cases = [
        # a flag of the other kind of run is refused, not silently ignored
        ([cfg_file, '--train', '--dtype', 'bf16'], '--dtype is for'),
        ([cfg_file, '--amp', 'fp16'], '--amp is for'),
        ([cfg_file, '--backbone', 'vvt-test'], 'argument --backbone'),
        ([cfg_file, '--shape', '0'], 'argument --shape'),
        ([cfg_file, '--batch-size', '0'], 'argument --batch-size'),
        ([cfg_file, '--warmup', '-1'], 'argument --warmup'),
        ([cfg_file, '--out', str(existing)], 'pass --overwrite'),
        ([cfg_file, '--out', str(tmp_path)], 'is a folder'),
        ([cfg_file, '--out', str(existing / 'x.json')], 'is a file'),
        ([str(no_model)], 'has no model entry'),
        ([cfg_file, '--cfg-options',
          'model.backbone.arch=huge'], "Unknown VVT arch 'huge'"),
        ([cfg_file, '--overwrite'], 'there is no --out'),
        # the fixture's config has no optimizer: refused before the build
        ([cfg_file, '--train'], 'has no optim_wrapper'),
    ]
    assert_refused(parse_args, cases, capsys)
    assert existing.read_text() == '{}'
    assert parse_args([cfg_file]).dtype == ['fp32', 'bf16']
    assert parse_args([cfg_file]).amp == ['fp32']
    assert parse_args([cfg_file, '--out', str(existing), '--overwrite'])


def test_inference_throughput_swaps_the_backbone(cfg_file, tmp_path,
                                                 monkeypatch):
    """--backbone without --train times the named backbone in the config's
    neck and heads (it was once timed as the config's own VVT)."""
    from tool_modules import load_tool
    tool = load_tool('throughput')
    seen = []
    from analysis_tools import throughput
    build = throughput.build_segmentor

    def spy(cfg, *args, **kwargs):
        model = build(cfg, *args, **kwargs)
        seen.append(type(model.backbone).__name__)
        return model

    out = tmp_path / 'swin.json'
    monkeypatch.setattr(throughput, 'build_segmentor', spy)
    code = tool.main([
        cfg_file, '--backbone', 'swin-t', '--shape', '64', '--batch-size', '1',
        '--dtype', 'fp32', '--iters', '1', '--warmup', '0', '--out',
        str(out)
    ])
    assert code == 0
    assert seen == ['SwinTransformer']
    got = json.load(open(out))
    assert got['backbone'] == 'swin-t'
    assert got['results']['fp32']['output_finite'] is True


def test_training_throughput_runs_the_runner_step(tmp_path):
    """--train: train_step with the config's optimizer; images/s from the
    measured iterations, peak memory reported, losses finite."""
    cfg = write_tiny_config(
        tmp_path / 'fpn_tiny.py',
        optim_wrapper=dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)))
    out = tmp_path / 'train.json'
    proc = subprocess.run([
        sys.executable, TOOL, cfg, '--train', '--shape', '64', '--batch-size',
        '2', '--iters', '2', '--warmup', '1', '--out',
        str(out)
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.load(open(out))['train']['fp32']
    assert r['optim_wrapper'] == 'OptimWrapper' and r['amp'] is None
    assert len(r['ms_per_iter_samples']) == 2
    total_s = sum(r['ms_per_iter_samples']) / 1e3
    assert r['images_per_s'] == pytest.approx(2 * 2 / total_s)
    assert r['peak_mib'] > 0 and r['losses_finite'] is True
    assert '| fp32 (OptimWrapper) |' in proc.stdout
    assert json.load(open(out))['cpu_allocator'] == (
        'MMSEG_VVT_CPU_ALLOCATOR=default: glibc malloc left as it is')


def test_swap_backbone_sets_the_input_widths():
    from analysis_tools.throughput import swap_backbone
    from mmengine.config import Config
    fpn = Config.fromfile(
        osp.join(ROOT, 'configs/vvt/fpn_vvt-s_8xb2-80k_ade20k-512x512.py'))
    swap_backbone(fpn, 'swin-t')
    assert fpn.model.backbone.type == 'SwinTransformer'
    assert fpn.model.neck.in_channels == [96, 192, 384, 768]
    uper = Config.fromfile(
        osp.join(ROOT,
                 'configs/vvt/upernet_vvt-s_8xb2-160k_ade20k-512x512.py'))
    swap_backbone(uper, 'swin-t')
    assert uper.model.decode_head.in_channels == [96, 192, 384, 768]
    assert uper.model.auxiliary_head.in_channels == 384
    with pytest.raises(ValueError, match="'vvt-test' cannot be swapped"):
        swap_backbone(uper, 'vvt-test')
