"""tools/get_flops.py on a tiny segmentor config."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from tool_modules import assert_refused

from mmseg_vvt.testing import write_tiny_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'get_flops.py')


@pytest.fixture
def cfg_file(tmp_path):
    # FCN head + auxiliary head, SyncBN as the multi-GPU recipes
    return write_tiny_config(
        tmp_path / 'fcn_vvt-tiny-test_64x64.py',
        decode_head='fcn',
        auxiliary_head=True,
        norm_type='SyncBN',
        data_preprocessor=False)


def test_get_flops_prints_and_writes_the_counts(cfg_file, tmp_path):
    from mmseg_vvt.utils.complexity import segmentor_complexity
    out = tmp_path / 'flops.json'
    proc = subprocess.run([
        sys.executable, TOOL, cfg_file, '--shape', '64', '96', '--out',
        str(out)
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.load(open(out))
    want = segmentor_complexity(cfg_file, shape=(64, 96))
    assert got['flops'] == want['flops'] > 0
    assert got['params'] == want['params'] < got['params_with_aux']
    assert got['shape'] == [64, 96]
    assert 'input shape: 1 x 3 x 64 x 96' in proc.stdout
    assert f'{want["flops"] / 1e9:.2f} G' in proc.stdout
    assert 'backbone' in proc.stdout  # the per-module table


def test_get_flops_reports_a_missing_config(tmp_path):
    proc = subprocess.run([sys.executable, TOOL,
                           str(tmp_path / 'missing.py')],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert 'config file' in proc.stderr and 'does not exist' in proc.stderr
    assert 'missing.py' in proc.stderr


def test_get_flops_refuses_bad_arguments_before_counting(
        cfg_file, tmp_path, capsys):
    from tool_modules import load_tool
    parse_args = load_tool('get_flops').parse_args
    existing = tmp_path / 'old.json'
    existing.write_text('{}')
    syntax = tmp_path / 'syntax.py'
    syntax.write_text('model = dict(\n')
    cases = [
        ([cfg_file, '--shape', '0'], 'argument --shape'),
        ([cfg_file, '--shape', '64', '-2'], 'argument --shape'),
        ([cfg_file, '--out', str(existing)], 'pass --overwrite'),
        ([cfg_file, '--out', str(tmp_path)], 'is a folder'),
        ([cfg_file, '--out', str(existing / 'x.json')], 'is a file'),
        ([str(syntax)], 'SyntaxError'),
        ([cfg_file, '--cfg-options',
          'model.backbone.arch=huge'], "Unknown VVT arch 'huge'"),
        ([cfg_file, '--overwrite'], 'there is no --out'),
    ]
    assert_refused(parse_args, cases, capsys)
    assert existing.read_text() == '{}'
    args = parse_args([cfg_file, '--out', str(existing), '--overwrite'])
    assert args.cfg.model.backbone.type == 'VVT'


def test_why_mmseg_packaged_get_flops_fails_on_this_mmengine():
    """mmseg 1.2.2's tools/analysis_tools/get_flops.py passes both
    ``input_shape`` and ``inputs``; mmengine 0.10.7 refuses that."""
    from mmengine.analysis import get_model_complexity_info
    model = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match='cannot be both set'):
        get_model_complexity_info(
            model, (3, 8, 8),
            inputs=torch.randn(1, 3, 8, 8),
            show_table=False,
            show_arch=False)
