"""The benchmark's markdown / PNG / JSON reports from given measurements."""
import json

import pytest
from analysis_tools.benchmark import (check_model_names, plot_results,
                                      render_markdown, write_outputs)


def _rec(model, label, res, gflops, ms, mem, errors=()):
    return dict(
        model=model,
        label=label,
        resolution=res,
        mode='forward',
        params=25_000_000,
        flops=int(gflops * 1e9),
        gflops=gflops,
        latency_ms=ms,
        latency_samples_ms=[ms],
        repeats=1,
        first_pass_ms=ms,
        mem_baseline_mb=300.0,
        mem_peak_mb=300.0 + mem,
        mem_extra_mb=mem,
        unsupported_ops={},
        errors=list(errors))


@pytest.fixture
def data():
    labels = {
        'vvt-s': 'VVT-S',
        'vvt-s-reference': 'VVT-S straightforward',
        'swin-t': 'Swin-T'
    }
    results = [
        _rec('vvt-s', 'VVT-S', 512, 10.0, 400.0, 100.0),
        _rec('vvt-s-reference', 'VVT-S straightforward', 512, 10.0, 1000.0,
             300.0),
        _rec('swin-t', 'Swin-T', 512, 12.0, 500.0, 200.0),
        _rec('vvt-s', 'VVT-S', 1024, 40.0, 1700.0, 400.0),
        _rec('vvt-s-reference', 'VVT-S straightforward', 1024, 40.0, 5100.0,
             1200.0),
        _rec(
            'swin-t',
            'Swin-T',
            1024,
            48.0,
            3400.0,
            800.0,
            errors=['memory: boom']),
    ]
    meta = dict(
        date_utc='2026-01-01 00:00 UTC',
        git_commit='abc123',
        cpu='Test CPU',
        cpu_count=2,
        load_avg_at_start=[0.5, 0.4, 0.3],
        python='3.11',
        torch='2.x',
        mmengine='0.10.7',
        mmseg='1.2.2',
        torch_threads=2,
        mode='forward',
        batch_size=1,
        dtype='fp32',
        repeats=3,
        warmup=1,
        budget_s=None,
        models=labels,
        resolutions=[512, 1024],
        command='x')
    return dict(meta=meta, results=results)


def _row(md, start):
    rows = [ln for ln in md.splitlines() if ln.startswith(start)]
    assert len(rows) == 1, (start, rows)
    return [c.strip() for c in rows[0].strip('|').split('|')]


def test_markdown_ratios_are_computed_from_the_numbers(data):
    md = render_markdown(data)
    header = _row(md, '| input')
    assert 'speed-up vs VVT-S straightforward' in header
    assert 'speed-up vs Swin-T' in header and 'mem / Swin-T' in header
    row = dict(zip(header, _row(md, '| 512x512 | VVT-S |')))
    assert row['latency (ms)'] == '400'
    assert row['speed-up vs VVT-S straightforward'] == '2.50×'  # 1000/400
    assert row['speed-up vs Swin-T'] == '1.25×'  # 500/400
    assert row['mem / Swin-T'] == '0.50×'  # 100/200
    assert row['GFLOPs'] == '10.0' and row['params (M)'] == '25.00'
    row = dict(zip(header, _row(md, '| 1024x1024 | VVT-S |')))
    assert row['speed-up vs VVT-S straightforward'] == '3.00×'
    assert row['speed-up vs Swin-T'] == '2.00×'
    # growth table: 512 -> 1024 is 4x the pixels
    assert '(pixels ×4)' in md
    growth = _row(md, '| VVT-S straightforward |')
    assert growth == ['VVT-S straightforward', '4.0×', '5.1×', '4.0×']
    # failures are shown, not hidden
    assert 'Swin-T (failed: see JSON)' in md
    assert '1024px Swin-T: memory: boom' in md


def test_markdown_without_reference_or_peer_omits_their_columns(data):
    md = render_markdown(data, reference='not-run', peer=None)
    assert 'speed-up' not in md and 'mem /' not in md


def test_write_outputs_writes_json_markdown_png(data, tmp_path):
    paths = write_outputs(data, str(tmp_path / 'out'), progress=lambda m: 0)
    assert json.load(open(paths['json'])) == data
    assert open(paths['markdown']).read() == render_markdown(data)
    with open(paths['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    notes = []
    write_outputs(data, str(tmp_path / 'out'), progress=notes.append)
    assert len(notes) == 3 and all('replacing' in n for n in notes)


def test_plot_has_one_line_per_model_in_each_panel(data, tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    captured = {}
    orig = plt.Figure.savefig

    def grab(fig, *a, **k):
        captured['fig'] = fig
        return orig(fig, *a, **k)

    plt.Figure.savefig = grab
    try:
        plot_results(data, str(tmp_path / 'p.png'))
    finally:
        plt.Figure.savefig = orig
    axes = captured['fig'].axes
    assert [a.get_title() for a in axes
            ] == ['GFLOPs', 'latency (ms)', 'peak extra memory (MiB)']
    # three models and the 'proportional to pixels' guide
    assert [len(a.get_lines()) for a in axes] == [4, 4, 4]
    ys = axes[1].get_lines()[0].get_ydata()
    assert list(ys) == [400.0, 1700.0]  # VVT-S latency
    guide = axes[1].get_lines()[-1]
    assert list(guide.get_ydata()) == [400.0, 1600.0]  # from the lowest
    # a failed cell keeps the numbers that were measured
    assert list(axes[2].get_lines()[2].get_ydata()) == [200.0, 800.0]


def test_unknown_model_names_are_rejected():
    with pytest.raises(ValueError, match="'vvt-xl'"):
        check_model_names(['vvt-s', 'vvt-xl'])
    with pytest.raises(ValueError, match='repeat'):
        check_model_names(['vvt-s', 'vvt-s'])


def test_partial_run_is_marked_in_the_markdown(data):
    data['meta']['complete'] = False
    assert '**Partial results' in render_markdown(data)
    data['meta']['complete'] = True
    assert 'Partial' not in render_markdown(data)


def test_plot_leaves_out_panels_that_were_not_measured(data, tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    for r in data['results']:
        r['gflops'] = r['flops'] = None  # as after --no-flops
    captured = {}
    orig = plt.Figure.savefig

    def grab(fig, *a, **k):
        captured['fig'] = fig
        return orig(fig, *a, **k)

    plt.Figure.savefig = grab
    try:
        plot_results(data, str(tmp_path / 'p.png'))
    finally:
        plt.Figure.savefig = orig
    assert [a.get_title() for a in captured['fig'].axes
            ] == ['latency (ms)', 'peak extra memory (MiB)']


def test_output_names_keep_cpu_fp32_and_separate_the_rest():
    from analysis_tools.benchmark import output_stem
    assert output_stem('forward') == 'scaling_forward'
    assert output_stem('train', 'cuda', 'fp16') == 'scaling_train_cuda_fp16'
    assert output_stem('forward', 'cuda', 'fp32', True) == \
        'scaling_forward_cuda_fp32_compiled'


def test_gpu_run_names_the_gpu_and_its_setting(data):
    meta = dict(
        data['meta'],
        device='cuda',
        gpu='NVIDIA H100 80GB HBM3',
        gpu_memory_gb=79.1,
        cuda='12.8',
        nvidia_driver='570.1',
        dtype='fp16',
        compiled=True,
        mode='train',
        optimizer_step='AdamW')
    md = render_markdown(dict(meta=meta, results=data['results']))
    assert 'GPU: NVIDIA H100 80GB HBM3 (79.1 GiB), CUDA 12.8' in md
    assert 'fp16 autocast, torch.compile' in md
    assert 'forward + backward + AdamW step' in md
    assert 'max_memory_allocated' in md
    # results measured before the optimizer step joined the train mode
    old = dict(data['meta'], mode='train')
    md = render_markdown(dict(meta=old, results=data['results']))
    assert 'no optimizer step' in md and 'Test CPU' in md


def test_device_label_names_threads_only_where_a_run_timed_with_them():
    from analysis_tools.benchmark import device_label
    meta = dict(cpu='AMD EPYC', cpu_count=2, torch='2.13.0+cpu')
    assert device_label(meta) == ('CPU: AMD EPYC, 2 logical cores, '
                                  'torch 2.13.0+cpu')
    assert device_label(dict(
        meta, torch_threads=2)).endswith('torch 2.13.0+cpu (2 threads)')


@pytest.mark.parametrize('name,impl', [('vvt-s', 'auto'),
                                       ('vvt-s-reference', 'reference'),
                                       ('vvt-s-triton', 'triton'),
                                       ('vvt-s-whole', 'whole')])
def test_each_vvt_model_runs_under_its_implementation(name, impl):
    if impl == 'triton':
        pytest.importorskip('triton')  # implementation('triton') needs it
    from analysis_tools.benchmark import formulation

    from mmseg_vvt.models.kernels import current_implementation
    with formulation(name):
        assert current_implementation() == impl
    assert current_implementation() == 'auto'
