"""tools/benchmark_scaling.py end to end on tiny sizes (plumbing only: no
timing assertions)."""
import json
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'benchmark_scaling.py')


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, TOOL, *args],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=timeout)


def _png_size(path):
    with open(path, 'rb') as f:
        head = f.read(24)
    assert head[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG file'
    return int.from_bytes(head[16:20],
                          'big'), int.from_bytes(head[20:24], 'big')


def test_forward_benchmark_writes_valid_json_markdown_png(tmp_path):
    out = tmp_path / 'bench'
    proc = _run('--quick', '--resolutions', '64', '--models', 'vvt-test',
                'vvt-test-reference', 'swin-t', '--repeats', '2',
                '--reference', 'vvt-test-reference', '--out-dir', str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # progress is shown while it runs
    assert 'starting worker' in proc.stderr and 'repeat 2/2' in proc.stderr

    data = json.load(open(out / 'scaling_forward.json'))
    assert data['meta']['mode'] == 'forward'
    assert data['meta']['resolutions'] == [64]
    res = {r['model']: r for r in data['results']}
    assert sorted(res) == ['swin-t', 'vvt-test', 'vvt-test-reference']
    for r in res.values():
        assert r['errors'] == [], r['errors']
        assert r['resolution'] == 64
        assert r['params'] > 0 and r['flops'] > 0
        assert r['gflops'] == pytest.approx(r['flops'] / 1e9)
        assert len(r['latency_samples_ms']) == r['repeats'] == 2
        assert r['latency_ms'] == pytest.approx(
            sum(r['latency_samples_ms']) / 2)  # median of two
        assert r['mem_peak_mb'] >= r['mem_baseline_mb'] > 0
        assert r['mem_extra_mb'] == pytest.approx(r['mem_peak_mb'] -
                                                  r['mem_baseline_mb'])
    # same network, same parameter count and FLOPs in both formulations
    assert res['vvt-test']['params'] == res['vvt-test-reference']['params']
    assert res['swin-t']['params'] > 20e6  # the real Swin-T settings

    md = (out / 'scaling_forward.md').read_text()
    assert 'speed-up vs VVT tiny test arch, straightforward' in md
    assert 'speed-up vs Swin-T' in md
    for label in ('| 64x64 | VVT tiny test arch |', '| 64x64 | Swin-T |'):
        assert label in md
    assert 'failed' not in md
    w, h = _png_size(out / 'scaling_forward.png')
    assert w > 500 and h > 200


def test_train_mode_measures_forward_backward(tmp_path):
    out = tmp_path / 'bench'
    # a tiny time budget: one timed repeat of the three asked for
    proc = _run('--quick', '--mode', 'train', '--resolutions', '64', '80',
                '--models', 'vvt-test', '--no-flops', '--repeats', '3',
                '--budget-s', '1e-9', '--out-dir', str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # reports are written after each resolution, final ones at the end
    assert proc.stderr.count('partial results written') == 1
    data = json.load(open(out / 'scaling_train.json'))
    assert data['meta']['budget_s'] == 1e-9
    assert data['meta']['complete'] is True
    assert data['meta']['resolutions'] == [64, 80]
    assert [r['resolution'] for r in data['results']] == [64, 80]
    assert data['meta']['optimizer_step'] == 'AdamW'
    assert data['meta']['device'] == 'cpu'
    # the workers set the allocator policy tools/train.py trains with (the
    # suite opts out of it) and the report says which
    why = 'MMSEG_VVT_CPU_ALLOCATOR=default: glibc malloc left as it is'
    assert data['meta']['cpu_allocator'] == why
    assert f'- CPU allocator: {why}\n' in (out /
                                           'scaling_train.md').read_text()
    for r in data['results']:
        assert r['mode'] == 'train' and r['errors'] == []
        assert r['repeats'] == 1 == len(r['latency_samples_ms'])
        assert r['latency_ms'] > 0 and r['mem_extra_mb'] >= 0
        assert r['flops'] is None  # skipped on request, shown as such
    assert 'Partial results' not in (out / 'scaling_train.md').read_text()
    assert (out / 'scaling_train.md').exists()
    assert (out / 'scaling_train.png').exists()


def test_failed_worker_is_reported_not_hidden(tmp_path):
    # an address-space limit far too small for torch: the worker fails
    out = tmp_path / 'bench'
    out.mkdir()
    (out / 'scaling_forward.json').write_text('{}')
    proc = _run('--quick', '--resolutions', '64', '--models', 'vvt-test',
                '--mem-limit-gb', '0.01', '--out-dir', str(out))
    # an earlier result is replaced, and it says so
    assert f'will replace existing {out}/scaling_forward.json' in proc.stderr
    assert proc.returncode == 1
    data = json.load(open(out / 'scaling_forward.json'))
    (r, ) = data['results']
    assert r['errors'] and r['errors'][0].startswith('build:')
    assert r['latency_ms'] is None
    assert 'failed' in (out / 'scaling_forward.md').read_text()


def test_bad_arguments_name_the_problem(tmp_path):
    proc = _run('--models', 'vvt-s', 'vvt-xxl', '--out-dir', str(tmp_path))
    assert proc.returncode == 2
    assert "'vvt-xxl'" in proc.stderr and 'vvt-s-reference' in proc.stderr
    proc = _run('--quick', '--reference', 'nope', '--out-dir', str(tmp_path))
    assert proc.returncode == 2 and "--reference 'nope'" in proc.stderr
    # numbers are checked by the parser, before any worker starts
    from tool_modules import load_tool
    parse_args = load_tool('benchmark_scaling').parse_args
    for argv, flag in ((['--proxies', '--proxy-resolution',
                         '0'], '--proxy-resolution'),
                       (['--resolutions', '64',
                         '0'], '--resolutions'), (['--repeats',
                                                   '0'], '--repeats'),
                       (['--warmup',
                         '-1'], '--warmup'), (['--budget-s',
                                               '-1'], '--budget-s'),
                       (['--budget-s',
                         'nan'], '--budget-s'), (['--threads',
                                                  '0'], '--threads')):
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv + ['--out-dir', str(tmp_path)])
        assert exit_.value.code == 2, argv
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    proc = _run('--quick', '--out-dir', str(a_file / 'reports'))
    assert proc.returncode == 2
    assert f'{a_file} is a file, not a folder' in proc.stderr
    import torch
    if not torch.cuda.is_available():  # this machine: say so, clearly
        proc = _run('--quick', '--device', 'cuda', '--out-dir', str(tmp_path))
        assert proc.returncode == 2 and 'sees no CUDA GPU' in proc.stderr


def test_recount_flops_updates_only_the_counts(tmp_path):
    out = tmp_path / 'bench'
    proc = _run('--quick', '--resolutions', '64', '--models', 'vvt-test',
                '--out-dir', str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = out / 'scaling_forward.json'
    data = json.load(open(path))
    (before, ) = data['results']
    tampered = dict(before, flops=1, gflops=1e-9)
    data['results'] = [tampered]
    path.write_text(json.dumps(data))

    again = tmp_path / 'again'
    proc = _run('--recount-flops', str(path), '--models', 'vvt-test',
                '--out-dir', str(again))
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = json.load(open(again / 'scaling_forward.json'))
    (after, ) = new['results']
    assert after['flops'] == before['flops']  # counted again, not copied
    assert after['latency_samples_ms'] == before['latency_samples_ms']
    assert after['mem_extra_mb'] == before['mem_extra_mb']
    assert new['meta']['flops_recount']['models'] == ['vvt-test']
    assert 'recounted' in (again / 'scaling_forward.md').read_text()

    proc = _run('--recount-flops', str(path), '--models', 'swin-t',
                '--out-dir', str(again))
    assert proc.returncode == 2 and "['swin-t'] are not in" in proc.stderr
