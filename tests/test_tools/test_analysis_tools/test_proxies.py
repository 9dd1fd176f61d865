"""The device-independent cost proxies: exact counts on a toy module, and
VVT-S held to a recorded baseline (counts, not times)."""
import contextlib

import pytest
import torch
import torch.nn as nn
from analysis_tools.benchmark import build_benchmark_model
from analysis_tools.proxies import (OpCounter, PeakLiveBytes, SavedTensorBytes,
                                    inference_proxies, training_step_proxies)


class _Toy(nn.Module):
    """y = relu(x @ W^T + b).sum() with a view in the middle."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.fc(x).view(-1)  # a view: not counted
        return torch.relu(h)


def test_op_counter_counts_compute_ops_not_views_or_detach():
    x = torch.randn(2, 4)
    with OpCounter() as c:
        y = x.mul(2)  # 1
        y.view(8).transpose(0, 0)  # views: 0
        y.detach()  # 0
        y.add_(1)  # 1
        torch.mm(y, y.t())  # t() is a view; mm: 1
    assert c.total == 3
    assert c.counts == {
        'aten.mul.Tensor': 1,
        'aten.add_.Tensor': 1,
        'aten.mm.default': 1
    }


def test_op_counter_leaves_out_ops_that_only_alias_an_input():
    # reshape of a non-viewable tensor: a copy (counted) then _unsafe_view
    # of the copy (no kernel); matmul of 3-d by 2-d folds its input the
    # same way
    x = torch.randn(2, 3, 4).transpose(1, 2)
    with OpCounter() as c:
        x.reshape(8, 3)
        torch.ops.aten._unsafe_view(x.contiguous(), [8, 3])
    assert c.counts == {'aten.clone.default': 2}
    with OpCounter() as c:
        x.add_(0)  # in place: counted though its output is its input
    assert c.counts == {'aten.add_.Tensor': 1}


def test_op_counter_counts_the_bytes_each_op_reads_and_writes():
    x = torch.randn(8, 4)  # 128 bytes
    row = torch.randn(4)  # 16 bytes
    with OpCounter() as c:
        y = x * 2  # reads x, writes y
        y.add_(row)  # reads y and row, writes y
        y.add_(row.expand(8, 4))  # a broadcast input: its 4 elements
        torch.mm(x, x.t(), out=torch.empty(8, 8))  # out= is only written
        x.view(32)  # a view: nothing
        x[::2].clone()  # reads the slice's 4 rows, writes 4
    assert c.bytes_by_op == {
        'aten.mul.Tensor': 128 + 128,
        'aten.add_.Tensor': 2 * (128 + 16 + 128),
        'aten.mm.out': 128 + 128 + 256,
        'aten.clone.default': 64 + 64
    }
    assert c.bytes_moved == sum(c.bytes_by_op.values())
    assert c.counts['aten.empty.memory_format'] == 1  # an op; no bytes


def test_op_counter_counts_what_an_op_writes_without_returning_it():
    # a Triton kernel's op that turns its last argument, a gradient, into
    # another in place (schema Tensor(a!), returns nothing): read and
    # written
    from mmseg_vvt.models.kernels.triton_mlp import dwconv_gelu_backward
    t = torch.randn(1, 3, 4, 2)  # 96 bytes
    w, b = torch.randn(2, 1, 3, 3), torch.randn(2)  # 72 and 8 bytes
    grad = torch.randn(1, 3, 4, 2)
    with OpCounter() as c:
        dwconv_gelu_backward(t, w, b, grad)
    assert c.bytes_by_op == {
        'mmseg_vvt.dwconv3x3_gelu_backward.default': 96 + 72 + 8 + 2 * 96
    }


def test_saved_bytes_counts_each_storage_once():
    a = torch.randn(256, requires_grad=True)  # 1 KiB
    with SavedTensorBytes() as s:
        b = a * a  # saves a twice: one storage
        c = b.view(16, 16)
        d = c.t() * c  # saves two views of b's storage
    assert s.tensors == 4
    assert s.nbytes == 2 * 256 * 4
    d.sum().backward()  # the saved tensors still serve backward
    a2 = a.detach().clone().requires_grad_()
    c2 = (a2 * a2).view(16, 16)
    (c2.t() * c2).sum().backward()
    assert torch.equal(a.grad, a2.grad)


def test_peak_live_bytes_counts_new_storages_while_they_live():
    x = torch.randn(256)  # 1 KiB, made before: not counted
    with PeakLiveBytes() as m:
        a = x * 2  # +1 KiB
        b = a.view(16, 16).t()  # a view: nothing new
        b.add_(1)  # in place: nothing new
        c = torch.cat([a, a])  # +2 KiB: 3 live, the peak
        del a, c  # a's storage lives on in b
        assert m.live == 1024
        del b  # a's storage dies
        torch.mul(x, 3, out=x)  # out=: nothing new
        d = x + 1  # +1 KiB
    assert m.peak == 3 * 1024
    assert m.live == 1024
    del d
    assert m.live == 0


def test_inference_proxies_of_a_toy_model():
    torch.manual_seed(0)
    model = _Toy().train()
    r = inference_proxies(model, torch.randn(5, 4))
    # the linear (addmm) and the relu; no gradient, nothing else
    assert r['ops_by_name'] == {
        'aten.addmm.default': 1,
        'aten.relu.default': 1
    }
    assert r['ops'] == 2
    # addmm reads x (20 floats), the weight (12) and bias (3) and writes 15;
    # relu reads those 15 and writes 15
    assert r['bytes_moved_by_name'] == {
        'aten.addmm.default': (20 + 12 + 3 + 15) * 4,
        'aten.relu.default': (15 + 15) * 4
    }
    assert r['bytes_moved'] == 80 * 4
    # addmm's 5x3 output, then relu's 15 beside it (the view's base alive)
    assert r['peak_bytes'] == 2 * 15 * 4
    assert not model.training


def test_training_step_proxies_of_a_toy_model():
    torch.manual_seed(0)
    model = _Toy()
    r = training_step_proxies(model, torch.randn(5, 4))
    # forward: addmm (the linear), relu, mean, add (sum() of one loss
    # term starts from 0); backward: ones_like (the loss's gradient),
    # div (mean), threshold_backward (relu), mm (weight grad), sum (bias
    # grad); the input needs no gradient, so nothing else
    assert r['ops_by_name'] == {
        'aten.addmm.default': 1,
        'aten.relu.default': 1,
        'aten.mean.default': 1,
        'aten.add.Tensor': 1,
        'aten.ones_like.default': 1,
        'aten.div.Scalar': 1,
        'aten.threshold_backward.default': 1,
        'aten.mm.default': 1,
        'aten.sum.dim_IntList': 1
    }
    assert r['ops'] == 9
    assert r['bytes_moved'] == sum(r['bytes_moved_by_name'].values()) > 0
    # saved: x (5x4) for the weight's gradient and relu's output (15);
    # the weight itself is not saved (x needs no gradient)
    assert r['saved_tensors'] == 2
    assert r['saved_bytes'] == (20 + 15) * 4
    assert all(p.grad is None for p in model.parameters())


# Measured with
#   python tools/benchmark_scaling.py --proxies --models vvt-s swin-t
# (256x256, batch 2, fp32, CPU; forward + backward, no optimizer step).
# Before the kernels package (commit 7294526): VVT-S 3429 ops and
# 915,506,576 bytes (873 MiB); Swin-T 1200 ops and 439,161,712 bytes
# (419 MiB). The training kernels brought VVT-S to 2666 ops and 378 MiB,
# one stochastic-depth draw per network to 2602. Counting the step after a
# warm-up step (the step a run repeats: VVT's position factors are built
# once per grid) gives 2542, Swin-T still 1200: less saved than Swin-T,
# 2.1x its ops in eager PyTorch (docs/benchmark.md; the Triton kernels,
# measured apart, bring it under Swin-T's). Queries, keys and values in one
# GEMM (no spatial reduction in VVT-S): 2443. Clamp gradients in one op
# each, KV clamped in place, -s in its column: 2251; q, k and v's weights
# and biases concatenated in one op: 2233; the core's backward without its
# cat and KV's clamp mask without its comparison: 2197; the gate's mean
# gradient inside the input projection's GEMM: 2161; q and k laid out and
# rectified together, both ReLUs' gradients in one mask: 2083; grad_o read
# by heads where it lies: 2068. The bound is today's count, so a change
# that adds ops fails here.
VVT_S_MAX_OPS = 2068
# the bytes its ops move (6248 MiB, 1.41x Swin-T's) when first counted
VVT_S_MAX_BYTES_MOVED = 6_552_014_468
SWIN_T_SAVED_BYTES = 439_161_712
# Swin-T's ops were counted as 1200 until ops that only alias an input
# were left out: 123 of them were its reshapes' `_unsafe_view`s (VVT-S's
# step has none)
SWIN_T_OPS = 1077
SWIN_T_BYTES_MOVED = 4_635_758_868


def test_vvt_s_training_step_is_no_costlier_than_the_baseline():
    torch.manual_seed(0)
    model = build_benchmark_model('vvt-s')
    r = training_step_proxies(model, torch.randn(2, 3, 256, 256))
    assert r['ops'] <= VVT_S_MAX_OPS, r['ops_by_name']
    assert r['bytes_moved'] <= VVT_S_MAX_BYTES_MOVED, r['bytes_moved_by_name']
    assert r['saved_bytes'] <= SWIN_T_SAVED_BYTES
    assert r['ops'] > 100 and r['saved_bytes'] > 50 * 2**20  # it measured


# VVT-S's training step with the opt-in Triton kernels: 1165 ops when
# first counted (84a2f48), 1021 at 60144a0 (as counted since 92c479c), 985
# and 3939 MiB moved with the MLP's conv + GELU kernels (2183e20)
VVT_S_TRITON_MAX_OPS = 985
VVT_S_TRITON_MAX_BYTES_MOVED = 4_130_029_556


def test_vvt_s_with_triton_kernels_counted_is_no_costlier_than_swin_t():
    # the device-independent targets: no more ops, bytes moved or
    # bytes saved for backward than Swin-T's step. The kernels counted, not
    # run: seconds, where running them in Triton's interpreter took 45
    # minutes on 2 cores (the MLP kernels' 3000 programs per call at stage
    # 1, one at a time); that counting them so gives the interpreted run's
    # ops, bytes moved and saved bytes is held by
    # test_triton_kernels_are_counted_without_the_interpreter
    from analysis_tools.proxies import triton_interpreter_skipped

    from mmseg_vvt.models.kernels import implementation
    torch.manual_seed(0)
    model = build_benchmark_model('vvt-s')
    with implementation('triton'), triton_interpreter_skipped():
        r = training_step_proxies(model, torch.randn(2, 3, 256, 256))
    assert r['ops'] <= min(VVT_S_TRITON_MAX_OPS, SWIN_T_OPS), r['ops_by_name']
    assert r['bytes_moved'] <= min(
        VVT_S_TRITON_MAX_BYTES_MOVED,
        SWIN_T_BYTES_MOVED), r['bytes_moved_by_name']
    assert r['saved_bytes'] <= SWIN_T_SAVED_BYTES
    assert r['ops_by_name']['mmseg_vvt.vicinity_queries.default'] == 18
    assert r['ops_by_name']['mmseg_vvt.dwconv3x3_gelu.default'] == 2 * 18


# Swin-T's peak live bytes in one 2048x2048 forward at batch 1 (fp32 and
# bf16 autocast), as `benchmark_scaling.py --proxies --mode forward` counts
# them (benchmarks/cpu/proxies_forward/2048): the memory target is
# half of it.
SWIN_T_PEAK_MIB_2048 = {'fp32': 1375, 'bf16': 864}

# ops of VVT-S's forward at 2048x2048, batch 1, by implementation() and
# precision, when written (benchmarks/cpu/proxies_forward/2048): 1043 / 1094
# on the whole path before fc2 wrote its bands in place (out=); 1007 / 1076
# (whole) and 503 / 494 (triton) before `_unsafe_view`s went uncounted
# (92c479c), 950 / 1019 and 503 / 494 after; triton 455 / 464 with the
# MLP's conv + GELU kernel (2183e20)
VVT_S_OPS_2048 = {
    'whole': {
        'fp32': 950,
        'bf16': 1019
    },
    'triton': {
        'fp32': 455,
        'bf16': 464
    }
}


@pytest.mark.slow
@pytest.mark.parametrize('dtype', ['fp32', 'bf16'])
@pytest.mark.parametrize('impl', ['whole', 'triton'])
def test_vvt_s_inference_at_2048(impl, dtype):
    # CUDA's inference kernels, counted on CPU (about half a minute each;
    # the Triton kernels not run): under the memory target with a margin
    # for CUDA's allocator and its fp32 LayerNorm outputs under autocast
    from analysis_tools.benchmark import autocast
    from analysis_tools.proxies import triton_interpreter_skipped

    from mmseg_vvt.models.kernels import implementation
    torch.manual_seed(0)
    model = build_benchmark_model('vvt-s')
    skipped = (
        triton_interpreter_skipped()
        if impl == 'triton' else contextlib.nullcontext())
    with implementation(impl), skipped:
        r = inference_proxies(
            model,
            torch.randn(1, 3, 2048, 2048),
            forward_context=lambda: autocast(dtype, 'cpu'))
    assert r['peak_bytes'] / 2**20 <= 0.45 * SWIN_T_PEAK_MIB_2048[dtype]
    assert r['ops'] <= VVT_S_OPS_2048[impl][dtype], r['ops_by_name']


@pytest.mark.slow
@pytest.mark.parametrize('dtype', ['fp32', 'bf16'])
def test_swin_t_peak_at_2048_is_what_the_counter_measures(dtype):
    from analysis_tools.benchmark import autocast
    torch.manual_seed(0)
    r = inference_proxies(
        build_benchmark_model('swin-t'),
        torch.randn(1, 3, 2048, 2048),
        forward_context=lambda: autocast(dtype, 'cpu'))
    assert round(r['peak_bytes'] / 2**20) == SWIN_T_PEAK_MIB_2048[dtype]


def test_swin_t_baseline_is_what_the_counters_measure():
    # the recorded peer figures must stay true for the comparison to hold
    torch.manual_seed(0)
    r = training_step_proxies(
        build_benchmark_model('swin-t'), torch.randn(2, 3, 256, 256))
    assert r['saved_bytes'] == SWIN_T_SAVED_BYTES
    assert r['ops'] == SWIN_T_OPS
    assert r['bytes_moved'] == SWIN_T_BYTES_MOVED


def test_proxies_under_autocast_count_the_casts():
    # the toy model's two linears under bf16 autocast: forward casts its
    # input and each weight and bias down and the output up for the loss;
    # backward casts each of their gradients back
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = torch.randn(5, 4, requires_grad=True)
    fp32 = training_step_proxies(model, x)
    amp = training_step_proxies(
        model,
        x,
        forward_context=lambda: torch.autocast('cpu', dtype=torch.bfloat16))
    assert 'aten._to_copy.default' not in fp32['ops_by_name']
    assert amp['ops_by_name']['aten._to_copy.default'] == 6 + 6
    assert amp['ops'] == fp32['ops'] + 12
    # the autocast ends with the forward: the loss and backward outside it
    assert not torch.is_autocast_enabled('cpu')


@pytest.mark.parametrize('mode', ['forward', 'train'])
def test_triton_kernels_are_counted_without_the_interpreter(mode):
    # the interpreted run's ops and bytes moved; its live bytes no more
    # (the interpreter keeps its kernels' arguments in reference cycles
    # until the garbage collector runs), its saved bytes the same
    from analysis_tools.proxies import triton_interpreter_skipped

    from mmseg_vvt.models.kernels import implementation
    torch.manual_seed(0)
    model = build_benchmark_model('vvt-test')
    x = torch.randn(2, 3, 64, 64)
    count = inference_proxies if mode == 'forward' else training_step_proxies
    with implementation('triton'):
        run = count(model, x)
        with triton_interpreter_skipped():
            skipped = count(model, x)
    assert skipped['ops_by_name'] == run['ops_by_name']
    assert skipped['bytes_moved_by_name'] == run['bytes_moved_by_name']
    from mmseg_vvt.models.layers import VicinityAttention
    blocks = sum(isinstance(m, VicinityAttention) for m in model.modules())
    assert skipped['ops_by_name'][
        'mmseg_vvt.vicinity_queries.default'] == blocks
    if mode == 'forward':
        assert 0 < skipped['peak_bytes'] <= run['peak_bytes']
    else:
        assert skipped['saved_bytes'] == run['saved_bytes']


def test_skipped_triton_kernels_do_not_run(monkeypatch):
    from analysis_tools.proxies import triton_interpreter_skipped
    from triton.runtime import interpreter

    from mmseg_vvt.models.kernels import common
    from mmseg_vvt.models.kernels import triton_attention as ta

    def ran(*args, **kwargs):
        raise AssertionError('a skipped kernel ran')

    monkeypatch.setattr(interpreter.GridExecutor, '__call__', ran)
    q = torch.randn(1, 16, 8)
    kvs = torch.randn(1, 4, 8, 9)
    w = common.position_weights(4, 4)
    with triton_interpreter_skipped():
        o, r = ta.queries(q, w, kvs, 1)
    assert o.shape == (1, 16, 8) and r.shape == (1, 16)
    with pytest.raises(AssertionError, match='a skipped kernel ran'):
        ta.queries(q, w, kvs, 1)  # the patch ends with the block


def test_skipped_triton_interpreter_is_said_in_the_report():
    from analysis_tools.benchmark import render_proxies, run_proxies
    data = run_proxies(['vvt-test-triton'],
                       resolution=64,
                       batch_size=1,
                       mode='forward',
                       skip_triton_interpreter=True,
                       progress=lambda msg: None)
    (r, ) = data['results']
    assert r['errors'] == [] and r['ops'] > 0
    assert data['meta']['triton_kernels_run'] is False
    assert '- Triton kernels counted, not run' in render_proxies(data)
    with pytest.raises(ValueError, match='skip_triton_interpreter is for CPU'):
        run_proxies(['vvt-test-triton'],
                    device='cuda',
                    skip_triton_interpreter=True)


def _proxies_cli(tmp_path, *args):
    """``benchmark_scaling.py --proxies`` on the tiny VVT at 64x64: its
    output and the one result of the JSON named ``stem``."""
    import json
    import subprocess
    import sys

    from tool_modules import REPO
    *args, stem = args
    proc = subprocess.run([
        sys.executable, f'{REPO}/tools/benchmark_scaling.py', '--proxies',
        '--models', 'vvt-test', '--proxy-resolution', '64', *args, '--out-dir',
        str(tmp_path)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.load(open(tmp_path / f'{stem}.json'))
    (r, ) = data['results']
    assert r['errors'] == [] and r['ops'] > 0
    assert f'| VVT tiny test arch | {r["ops"]} ' in proc.stdout
    assert '\n- CPU: ' in proc.stdout
    return proc.stdout + proc.stderr, data['meta'], r


@pytest.mark.parametrize('dtype', ['fp32', 'bf16'])
def test_proxies_are_printed_by_the_benchmark(dtype, tmp_path):
    stem = 'proxies' if dtype == 'fp32' else f'proxies_{dtype}'
    (tmp_path / f'{stem}.md').write_text('an earlier run')
    out, meta, r = _proxies_cli(tmp_path, '--dtype', dtype, stem)
    # replaced, and said so before the run
    assert f'will replace existing {tmp_path / stem}.md' in out
    assert 'an earlier run' not in (tmp_path / f'{stem}.md').read_text()
    assert r['saved_bytes'] > 0
    assert meta['batch_size'] == 2
    assert meta['dtype'] == dtype
    # casts only under autocast
    assert ('aten._to_copy.default' in r['top_ops']) == (dtype != 'fp32')
    assert (', bf16 autocast\n' in out) == (dtype == 'bf16')


def test_forward_proxies_are_printed_by_the_benchmark(tmp_path):
    out, meta, r = _proxies_cli(tmp_path, '--mode', 'forward', '--batch-size',
                                '1', 'proxies_forward')
    assert r['peak_bytes'] > 0 and 'saved_bytes' not in r
    assert meta['mode'] == 'forward'
    assert meta['batch_size'] == 1
    assert '- one inference forward (eval forward under no_grad), 64x64' in out


def test_proxies_files_are_named_by_device_and_precision():
    from analysis_tools.benchmark import proxies_stem, run_proxies
    assert proxies_stem() == 'proxies'  # the committed CPU fp32 files
    assert proxies_stem('bf16') == 'proxies_bf16'
    assert proxies_stem('fp16', 'cuda') == 'proxies_cuda_fp16'
    assert proxies_stem(mode='forward') == 'proxies_forward'
    assert proxies_stem('fp16', 'cuda',
                        'forward') == 'proxies_forward_cuda_fp16'
    with pytest.raises(ValueError, match="device must be one of"):
        run_proxies(['vvt-test'], device='tpu')
    with pytest.raises(ValueError, match="dtype must be one of"):
        run_proxies(['vvt-test'], dtype='fp8')
    with pytest.raises(ValueError, match="mode must be one of"):
        run_proxies(['vvt-test'], mode='backward')
