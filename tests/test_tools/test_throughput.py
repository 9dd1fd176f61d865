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
        # mmseg's layer decay knows no VVT parameters (NotImplementedError)
        ([
            cfg_file, '--train', '--cfg-options',
            'optim_wrapper.constructor=LayerDecayOptimizerConstructor'
        ], "optim_wrapper.constructor is 'LayerDecayOptimizerConstructor'"),
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


def _train(cfg, out, *args):
    """``throughput.py CFG --train ARGS --out OUT``: the finished process
    and its fp32 result."""
    proc = subprocess.run(
        [sys.executable, TOOL,
         str(cfg), '--train', *args, '--out',
         str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.load(open(out))['train']['fp32']


def test_training_throughput_runs_the_runner_step(tmp_path):
    """--train: train_step with the config's optimizer; images/s from the
    measured iterations, peak memory reported, losses finite."""
    cfg = write_tiny_config(
        tmp_path / 'fpn_tiny.py',
        crop_size=(96, 96),
        optim_wrapper=dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)))
    out = tmp_path / 'train.json'
    proc, r = _train(cfg, out, '--shape', '64', '--batch-size', '2', '--iters',
                     '2', '--warmup', '1')
    assert r['optim_wrapper'] == 'OptimWrapper' and r['amp'] is None
    assert len(r['ms_per_iter_samples']) == 2
    total_s = sum(r['ms_per_iter_samples']) / 1e3
    assert r['images_per_s'] == pytest.approx(2 * 2 / total_s)
    assert r['peak_mib'] > 0 and r['losses_finite'] is True
    assert '| fp32 (OptimWrapper) |' in proc.stdout
    # timed at the asked size, not padded up to the config's 96x96 crop
    assert r['shape'] == [64, 64] and r['batch_shape'] == [64, 64]
    assert 'training on cpu: 2 x 3 x 64 x 64, 2 timed' in proc.stdout
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
    # a cascade's heads are a list (mmseg's OCRNet reads stages 3 and 4)
    import mmseg
    ocr = Config.fromfile(
        osp.join(
            osp.dirname(mmseg.__file__), '.mim', 'configs', 'ocrnet',
            'ocrnet_r101-d8_4xb2-40k_cityscapes-512x1024.py'))
    swap_backbone(ocr, 'swin-t')
    assert [h.in_channels for h in ocr.model.decode_head] == [384, 768]
    with pytest.raises(ValueError, match="'vvt-test' cannot be swapped"):
        swap_backbone(uper, 'vvt-test')


def test_training_throughput_of_a_cascade_says_what_was_padded(tmp_path):
    # OCRNet's CascadeEncoderDecoder: its decode_head is a list (reading
    # its num_classes was an AttributeError); a size_divisor still pads
    # 40x40 to 64x64, and the tool says so
    from mmengine.config import Config
    path = tmp_path / 'ocr_tiny.py'
    cfg = Config.fromfile(
        write_tiny_config(
            path,
            decode_head='ocr',
            optim_wrapper=dict(
                type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-3))))
    cfg.model.data_preprocessor.update(size=None, size_divisor=32)
    cfg.dump(str(path))
    proc, r = _train(path, tmp_path / 'train.json', '--shape', '40',
                     '--batch-size', '1', '--iters', '1', '--warmup', '0')
    assert r['shape'] == [40, 40] and r['batch_shape'] == [64, 64]
    assert r['losses_finite'] is True
    assert ('training on cpu: 1 x 3 x 40 x 40 (padded to 64 x 64 by the '
            'data preprocessor), 1 timed') in proc.stdout
