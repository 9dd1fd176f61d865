"""tools/profile_step.py: the op table of a model's step, per model."""
import re

import pytest
from tool_modules import load_tool

profile_step = load_tool('profile_step')


def test_writes_one_table_per_model_sorted_by_time(tmp_path, capsys):
    profile_step.main([
        '--models', 'vvt-test', 'swin-t', '--size', '64', '--warmup', '1',
        '--steps', '1', '--rows', '5', '--out-dir',
        str(tmp_path)
    ])
    text = (tmp_path / 'profile_train_cpu_fp32.md').read_text()
    assert text.count('## ') == 2
    # where and with what it ran, first
    head = text.split('## ')[0]
    assert re.search(r'- 20\d\d-\d\d-\d\d \d\d:\d\d UTC, commit `', head)
    assert 'CPU: ' in head and 'load average at start: ' in head
    assert '- command: `tools/profile_step.py --models vvt-test swin-t' in head
    vvt, swin = text.split('## ')[1:]
    assert vvt.startswith('vvt-test: train, 64x64, batch 1, fp32 on cpu')
    assert swin.startswith('swin-t: train')
    # the profiler's table, its rows the step's ops (with the backward)
    assert 'Self CPU time total' in vvt
    # and the step's time without the profiler beside it
    assert re.search(
        r'[0-9.]+ ms per step under the profiler, '
        r'[0-9.]+ ms without\n', vvt), vvt[:300]
    rows = [
        line for line in vvt.splitlines()
        if line.lstrip().startswith(('aten::', 'autograd::', 'mmseg_vvt::',
                                     'Optimizer', 'ProfilerStep'))
    ]
    assert 1 <= len(rows) <= 5, vvt
    assert 'written:' in capsys.readouterr().out


def test_functions_times_the_training_kernels_without_the_profiler(tmp_path):
    from mmseg_vvt.models.kernels.autograd import ConvGeluLinear
    forward = ConvGeluLinear.__dict__['forward']
    profile_step.main([
        '--functions', '--models', 'vvt-test', 'swin-t', '--size', '64',
        '--warmup', '1', '--steps', '1', '--out-dir',
        str(tmp_path)
    ])
    text = (tmp_path / 'profile_functions_train_cpu_fp32.md').read_text()
    # the policy tools/train.py trains with on CPU (the suite opts out)
    assert ('- CPU allocator: MMSEG_VVT_CPU_ALLOCATOR=default: glibc malloc '
            'left as it is\n') in text
    vvt, swin = text.split('## ')[1:]
    assert re.match(
        r'vvt-test: train, 64x64, batch 1, fp32 on cpu; '
        r'[0-9.]+ ms per step with the functions timed', vvt)
    rows = {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.strip('|').split('|')]
                      for line in vvt.splitlines() if line.startswith('| '))
    }
    # the block's functions, each timed forward and backward
    for name in ('ConvGeluLinear', 'VicinityCore', 'GatedClamp'):
        fwd, bwd, share = rows[name]
        assert float(fwd) > 0 and float(bwd) > 0, rows
    shares = [
        int(cells[-1].rstrip('%')) for cells in rows.values()
        if cells[-1].endswith('%')
    ]
    assert abs(sum(shares) - 100) <= len(shares)  # each rounded
    assert 0 < int(rows['everything else'][-1].rstrip('%')) < 100
    # Swin-T calls none; the timing wrappers are gone afterwards
    assert 'none: the model calls none of them' in swin
    assert '| everything else | | | 100% |' in swin
    assert ConvGeluLinear.__dict__['forward'] is forward


@pytest.mark.parametrize('argv,message', [
    (['--models', 'vvt-x'], 'vvt-x'),
    (['--steps', '0'], '--steps must be at least 1, got 0'),
    (['--warmup', '-1'], '--warmup must be 0 or more, got -1'),
    (['--out-dir', __file__], 'is a file; expected a folder'),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        profile_step.parse_args(argv)
    assert message in capsys.readouterr().err


def test_cuda_without_a_gpu_is_named(capsys, monkeypatch):
    import torch

    # a machine without CUDA, whatever this one has
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit):
        profile_step.parse_args(['--device', 'cuda'])
    err = capsys.readouterr().err
    assert '--device cuda' in err and 'sees no CUDA device' in err
