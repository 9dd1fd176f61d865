"""The attention core in Triton kernels, run in Triton's interpreter on CPU
(tests/conftest.py sets ``TRITON_INTERPRET=1``): the same forward and
gradients as :class:`VicinityCore` and the readable formulation. The tests
that take ``device`` also run compiled on a GPU
(``MMSEG_VVT_TEST_DEVICE=cuda pytest -m on_device``)."""
import os
import subprocess
import sys

import pytest
import torch
from analysis_tools.proxies import OpCounter
from op_helpers import block_inference_ops
from triton_compile import run_compile_script

from mmseg_vvt.models import kernels
from mmseg_vvt.models.backbones.vvt import Mlp, VVTBlock
from mmseg_vvt.models.kernels import common, implementation
from mmseg_vvt.models.kernels.autograd import GatedClamp, VicinityCore
from mmseg_vvt.models.kernels.triton_attention import (FusedGatedClamp,
                                                       FusedVicinityCore)
from mmseg_vvt.models.layers import VicinityAttention

REPO = os.path.dirname(
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _inputs(batch, heads, d, hw, kv_hw, dtype, device='cpu', seed=0):
    """Projections for the core. From the second sample on, small keys and
    large values: ``q~ KV`` large where the normaliser is small, so the
    upper bounds of the later clamps are reached too."""
    g = torch.Generator().manual_seed(seed)
    n, nk = hw[0] * hw[1], kv_hw[0] * kv_hw[1]
    q = torch.randn(batch, n, heads * d, generator=g, dtype=dtype) * 0.7
    kv = torch.randn(batch, nk, 2 * heads * d, generator=g, dtype=dtype)
    scale = torch.ones(batch, 1, 2 * heads * d, dtype=dtype) * 0.7
    scale[1:, :, :heads * d], scale[1:, :, heads * d:] = 0.05, 20.0
    ct = common.core_dtype(dtype)
    wq = common.position_weights(*hw, dtype=ct).to(device)
    wk = common.position_weights(*kv_hw, dtype=ct).to(device)
    return (q.to(device).requires_grad_(),
            (kv * scale).to(device).requires_grad_(), wq, wk)


def _clamp_hits(q, kv, wq, wk, heads, lo, hi):
    """Which bound each clamp of the core reaches: ``{name: (lo, hi)}``."""
    from mmseg_vvt.models.kernels.autograd import _by_head, _modulate
    hd = q.shape[-1]
    qt = _modulate(_by_head(q, heads, q.dtype).relu(), wq)
    kt = _modulate(_by_head(kv[..., :hd], heads, q.dtype).relu(), wk)
    kv_sum = kt.transpose(1, 2) @ _by_head(kv[..., hd:], heads, q.dtype)
    r = 1 / (
        qt @ kt.sum(1, keepdim=True).transpose(1, 2) + common.DENOMINATOR_EPS)
    num = qt @ (kv_sum.sign() * kv_sum.abs().clamp(lo, hi))
    product = num.abs().clamp(lo, hi) * r.clamp(lo, hi)
    return {
        name: ((t < lo).any().item(), (t > hi).any().item())
        for name, t in (('KV', kv_sum.abs()), ('z', r), ('q~KV', num.abs()),
                        ('product', product))
    }


# heads, d, grid, key grid, chunks of the token sums
CASES = [
    (1, 5, (8, 8), (8, 8), 1),
    (2, 12, (9, 7), (3, 3), 3),  # spatial reduction: fewer keys
    (3, 20, (10, 13), (10, 13), None),  # tiles wider than d, 3 chunks
]
LO, HI = 0.05, 3.0  # narrow clamp bounds: every clamp bites


def _run(core, q, kv, wq, wk, heads, *extra):
    o = core(q, kv, wq, wk, heads, *extra)
    g = torch.linspace(
        -1, 1, o.numel(), dtype=torch.float64, device=o.device).view_as(o)
    grads = torch.autograd.grad(o, (q, kv), g.to(o.dtype))
    return (o, *grads)


def test_fused_core_gradcheck(device):
    q, kv, wq, wk = _inputs(1, 2, 2, (2, 3), (1, 2), torch.float64, device)
    # fast mode (random projections): the interpreter is slow; the exact
    # comparisons below cover every element
    assert torch.autograd.gradcheck(
        lambda a, b: FusedVicinityCore.apply(a, b, wq, wk, 2, 2), (q, kv),
        fast_mode=True)


def test_the_cases_reach_both_bounds_of_every_clamp():
    reached = {}
    for heads, d, hw, kv_hw, _ in CASES:
        q, kv, wq, wk = _inputs(2, heads, d, hw, kv_hw, torch.float64)
        for name, (lo, hi) in _clamp_hits(q, kv, wq, wk, heads, LO,
                                          HI).items():
            was = reached.get(name, (False, False))
            reached[name] = (was[0] or lo, was[1] or hi)
    assert all(lo and hi for lo, hi in reached.values()), reached


@pytest.mark.parametrize('heads,d,hw,kv_hw,chunks', CASES)
def test_fused_core_equals_vicinity_core_where_clamps_bite(
        monkeypatch, device, heads, d, hw, kv_hw, chunks):
    monkeypatch.setattr(common, 'CLAMP_MIN', LO)
    monkeypatch.setattr(common, 'CLAMP_MAX', HI)
    q, kv, wq, wk = _inputs(2, heads, d, hw, kv_hw, torch.float64, device)
    want = _run(VicinityCore.apply, q, kv, wq, wk, heads)
    got = _run(FusedVicinityCore.apply, q, kv, wq, wk, heads, chunks)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        torch.testing.assert_close(g, w, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize('heads,d,hw,chunks', [(c[0], c[1], c[2], c[4])
                                               for c in CASES if c[2] == c[3]])
def test_fused_core_reads_q_k_v_from_one_tensor(monkeypatch, device, heads, d,
                                                hw, chunks):
    # without spatial reduction q, k and v come from one GEMM: the kernels
    # read them in place (strided) and write one gradient
    monkeypatch.setattr(common, 'CLAMP_MIN', LO)
    monkeypatch.setattr(common, 'CLAMP_MAX', HI)
    q, kv, wq, wk = _inputs(2, heads, d, hw, hw, torch.float64, device)
    qkv = torch.cat([q, kv], dim=-1).detach().requires_grad_()

    def run(core, *extra):
        o = core(qkv, None, wq, wk, heads, *extra)
        g = torch.linspace(
            -1, 1, o.numel(), dtype=o.dtype, device=o.device).view_as(o)
        return (o, *torch.autograd.grad(o, qkv, g))

    got = run(FusedVicinityCore.apply, chunks)
    want = run(VicinityCore.apply)
    split = _run(FusedVicinityCore.apply, q, kv, wq, wk, heads, chunks)
    assert got[1].shape == qkv.shape
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=1e-10)
    # the same numbers as the core fed two tensors
    torch.testing.assert_close(got[0], split[0], rtol=0, atol=0)
    torch.testing.assert_close(
        got[1], torch.cat(split[1:], dim=-1), rtol=0, atol=0)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_fused_core_keeps_half_precision_inputs_in_their_dtype(device, dtype):
    # as under AMP: projections in half precision, token sums in fp32, the
    # output cast back as it is stored (by both cores)
    q, kv, wq, wk = _inputs(2, 2, 16, (8, 8), (4, 4), dtype, device)
    want = _run(VicinityCore.apply, q, kv, wq, wk, 2)
    got = _run(FusedVicinityCore.apply, q, kv, wq, wk, 2)
    assert all(t.dtype == dtype for t in got + want)
    for g, w in zip(got, want):  # a bf16 step is 2**-8
        torch.testing.assert_close(g, w, atol=1e-2, rtol=1e-2)


def _gate_inputs(dtype, device='cpu', seed=0):
    g = torch.Generator().manual_seed(seed)
    # 200 tokens: 4 token blocks; 70 channels: 2 channel blocks
    p = torch.randn(2, 200, 70, generator=g, dtype=torch.float64) * 3
    gate = torch.rand(2, 1, 70, generator=g, dtype=torch.float64)
    return (p.to(device,
                 dtype).requires_grad_(), gate.to(device,
                                                  dtype).requires_grad_())


@pytest.mark.parametrize('chunks', [1, 3, None])
def test_fused_gated_clamp_equals_gated_clamp(monkeypatch, device, chunks):
    monkeypatch.setattr(common, 'CLAMP_MIN', LO)
    monkeypatch.setattr(common, 'CLAMP_MAX', HI)
    p, gate = _gate_inputs(torch.float64, device)
    with torch.no_grad():  # and on each bound: the gradient passes there
        p[0, 0, :4] = torch.tensor([LO, -LO, HI, -HI], dtype=p.dtype)
        gate[0, 0, 2:4] = 0  # so o + o g stays on the upper bound
    a = p.detach().abs().clamp(LO, HI)
    # inputs on both sides of each bound, and outputs at the upper one
    assert (p.abs() < LO).any() and (p.abs() > HI).any()
    assert (a + a * gate.detach() > HI).any()
    want = _run2(lambda a, b: GatedClamp.apply(a, b), p, gate)
    got = _run2(lambda a, b: FusedGatedClamp.apply(a, b, chunks), p, gate)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        torch.testing.assert_close(g, w, atol=1e-12, rtol=1e-10)


def test_fused_gated_clamp_computes_half_precision_in_fp32(device):
    # fp16 in and out, the arithmetic in fp32: as the fp32 formulation
    # rounded once at the end
    p, gate = _gate_inputs(torch.float16, device)
    got = _run2(FusedGatedClamp.apply, p, gate)
    want = _run2(lambda a, b: GatedClamp.apply(a.float(), b.float()), p, gate)
    for g, w in zip(got, want):
        assert g.dtype == torch.float16
        torch.testing.assert_close(g, w.half(), atol=1e-2, rtol=1e-2)


def _run2(fn, p, gate):
    y = fn(p, gate)
    gy = torch.linspace(
        -1, 1, y.numel(), dtype=torch.float64, device=y.device).view_as(y)
    return (y, *torch.autograd.grad(y, (p, gate), gy.to(y.dtype)))


class _OpCalls(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the ``mmseg_vvt`` ops dispatched, with their arguments."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == 'mmseg_vvt':
            self.calls.append((func, args, kwargs or {}))
        return func(*args, **(kwargs or {}))


def test_every_op_passes_opcheck(device):
    # each op as a training step calls it: schema (keys_backward writes its
    # last argument), fake (torch.compile's shapes) and AOT dispatch agree
    # with the kernel
    q, kv, wq, wk = _inputs(2, 2, 4, (4, 5), (2, 3), torch.float64, device)
    p, gate = _gate_inputs(torch.float64, device)
    with _OpCalls() as rec:
        _run(FusedVicinityCore.apply, q, kv, wq, wk, 2, 2)
        _run2(lambda a, b: FusedGatedClamp.apply(a, b, 2), p, gate)
    names = sorted(f._schema.name for f, _, _ in rec.calls)
    assert names == sorted('mmseg_vvt::' + n
                           for n in ('vicinity_token_sums', 'vicinity_queries',
                                     'vicinity_queries_backward',
                                     'vicinity_token_sums',
                                     'vicinity_keys_backward', 'gated_clamp',
                                     'gated_clamp_backward'))
    for func, args, kwargs in rec.calls:
        args = [
            a.detach().clone() if isinstance(a, torch.Tensor) else a
            for a in args
        ]
        torch.library.opcheck(func, args, kwargs)


def test_triton_runs_inference_in_the_same_kernels():
    attn = VicinityAttention(8, 2).eval()
    x = torch.randn(1, 4, 8)
    with implementation('triton'):
        with torch.no_grad():
            for t in (x, x.double(), x.bfloat16()):
                assert kernels.select(t, attn) == 'whole_triton'
        assert kernels.select(x, attn.train()) == 'triton'


@pytest.mark.parametrize('amp', [False, True])
def test_attention_inference_with_triton_on_the_device(device, amp):
    # the kernels compiled on a GPU (MMSEG_VVT_TEST_DEVICE=cuda), fp32 or
    # under bf16 autocast with fp32 tokens (CUDA's LayerNorm output): the
    # readable module's dtype and values
    torch.manual_seed(0)
    attn = VicinityAttention(32, 2).to(device).eval()
    x = torch.randn(1, 16 * 12, 32, device=device)
    amp_ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    with torch.no_grad(), amp_ctx:
        with implementation('reference'):
            want = attn(x, (16, 12))
        with implementation('triton'):
            got = attn(x, (16, 12))
    assert got.dtype == want.dtype == (torch.bfloat16 if amp else x.dtype)
    tol = dict(atol=1e-2, rtol=1e-2) if amp else dict(atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got, want, **tol)


def test_backbone_inference_with_triton_equals_the_readable_formulation():
    # float64: every stage's output to rounding, spatial reduction included
    from mmseg_vvt.models.backbones import VVT
    from mmseg_vvt.testing import tiny_arch
    torch.manual_seed(0)
    model = VVT(arch=tiny_arch(sr_ratios=[2, 1, 1, 1])).double().eval()
    x = torch.randn(1, 3, 64, 48, dtype=torch.float64)
    with torch.no_grad():
        with implementation('reference'):
            want = model(x)
        with implementation('triton'), OpCounter() as count:
            got = model(x)
    assert count.counts['mmseg_vvt.vicinity_queries.default'] == sum(
        isinstance(m, VicinityAttention) for m in model.modules())
    assert count.counts['mmseg_vvt.dwconv3x3_gelu.default'] == sum(
        isinstance(m, Mlp) for m in model.modules())
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-9)


def test_block_inference_in_fewer_ops_with_triton():
    # the whole path's attention core and gated clamp (some 25 ops) become
    # three custom ops and the token sums' reduction, the MLP's conv and
    # GELU one op. Measured: 19 and 45
    fused = block_inference_ops('triton')
    whole = block_inference_ops('whole')
    assert fused <= 19, fused
    assert fused <= whole - 21, (fused, whole)


def _block_ops(impl):
    torch.manual_seed(0)
    block = VVTBlock(64, 2, 4, 2, 1, drop_path_rate=0.1).train()
    x = torch.randn(2, 8 * 8, 64, requires_grad=True)
    block(x, (8, 8)).sum().backward()  # position factors cached
    with OpCounter() as count, implementation(impl):
        block(x, (8, 8)).sum().backward()
    return count.total


def test_block_training_step_in_fewer_ops_with_triton():
    # the core's ~60 ops (forward and backward) become 4 custom ops and 2
    # reductions, the gated clamps' 16 two custom ops and a reduction. Both
    # paths run q, k and v as one GEMM. Measured: 139 and 79 (140 'auto'
    # before its grad_o needed no copy, 145 before q and k were laid out
    # and rectified together; 86 when the
    # Triton kernels took q and [k | v] from two GEMMs; 149 'auto' before
    # its core's backward lost a cat and its KV mask a comparison; both 2
    # more before the gate's mean gradient joined the projection's GEMM)
    auto, fused = _block_ops('auto'), _block_ops('triton')
    assert fused <= auto - 60, (fused, auto)


def test_implementation_triton_needs_triton(monkeypatch):
    monkeypatch.setitem(sys.modules, 'triton', None)  # import fails
    with pytest.raises(
            ImportError,
            match="implementation 'triton' needs the triton package"):
        with implementation('triton'):
            pass
    assert kernels.current_implementation() == 'auto'


def _python(code, **env):
    return subprocess.run([sys.executable, '-c', code],
                          cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO, **env),
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_cpu_tensors_without_the_interpreter_get_a_clear_error():
    proc = _python(
        'import torch\n'
        'from mmseg_vvt.models.kernels import common\n'
        'from mmseg_vvt.models.kernels.triton_attention import '
        'FusedVicinityCore\n'
        'w = common.position_weights(2, 2)\n'
        'FusedVicinityCore.apply(torch.ones(1, 4, 4), torch.ones(1, 4, 8), '
        'w, w, 2)\n',
        TRITON_INTERPRET='0')
    assert proc.returncode != 0
    assert 'set TRITON_INTERPRET=1' in proc.stderr, proc.stderr[-2000:]
    assert 'MMSEG_VVT_IMPLEMENTATION=triton unset' in proc.stderr


def test_cpu_inference_under_triton_without_the_interpreter_says_so():
    # a user who keeps MMSEG_VVT_IMPLEMENTATION=triton (GPU training) and
    # runs inference on CPU is told how to get the CPU kernels
    proc = _python(
        'import torch\n'
        'from mmseg_vvt.models.layers import VicinityAttention\n'
        'attn = VicinityAttention(8, 2).eval()\n'
        'with torch.no_grad():\n'
        '    attn(torch.randn(1, 16, 8), (4, 4))\n',
        TRITON_INTERPRET='0',
        MMSEG_VVT_IMPLEMENTATION='triton')
    assert proc.returncode != 0
    assert 'MMSEG_VVT_IMPLEMENTATION=triton unset to run the CPU kernels' in (
        proc.stderr), proc.stderr[-2000:]


def test_the_package_trains_without_triton():
    # triton is optional: hidden from imports, VVT still builds and trains
    proc = _python(
        'import sys\n'
        'sys.modules["triton"] = None\n'
        'import torch, mmseg_vvt\n'
        'from mmseg_vvt.models.backbones import VVT\n'
        'm = VVT(arch=dict(embed_dims=[8, 8, 8, 8], depths=[1, 1, 1, 1], '
        'num_heads=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2], '
        'fr_ratios=[2, 2, 2, 2], sr_ratios=[1, 1, 1, 1])).train()\n'
        'sum(o.sum() for o in m(torch.randn(1, 3, 64, 64))).backward()\n'
        'assert "mmseg_vvt.models.kernels.triton_attention" not in '
        'sys.modules\n'
        'print("trained")\n')
    assert proc.returncode == 0 and 'trained' in proc.stdout, proc.stderr


def test_the_environment_chooses_the_default_implementation():
    code = ('from mmseg_vvt.models import kernels\n'
            'print(kernels.current_implementation())\n')
    proc = _python(code, MMSEG_VVT_IMPLEMENTATION='triton')
    assert proc.stdout.split() == ['triton'], proc.stderr[-2000:]
    proc = _python(code, MMSEG_VVT_IMPLEMENTATION='fast')
    assert proc.returncode != 0
    assert "MMSEG_VVT_IMPLEMENTATION must be one of" in proc.stderr


# Every kernel compiled for a CUDA GPU (tests/triton_compile.py) with the
# launch settings the module uses. Pointer types follow the launches: token
# sums and gradients of the sums in float32.
COMPILE_SCRIPT = r"""
import json, sys
import triton.language as tl
from triton_compile import sm90_resources
from mmseg_vvt.models.kernels import triton_attention as T
FP32 = {'w_ptr', 'kvs_ptr', 'r_ptr', 'out_ptr', 'gout_ptr', 'gkvs_ptr',
        'gg_ptr'}
LAUNCH = {'_queries_kernel': T.QUERIES,
          '_queries_backward_kernel': T.QUERIES_BACKWARD,
          '_keys_backward_kernel': T.KEYS_BACKWARD}
out = []
for name, dtype, D, over in json.loads(sys.argv[1]):
    kernel = getattr(T, name)
    launch = dict(LAUNCH.get(name, dict(BLOCK=T.BLOCK_N, num_warps=4)))
    const = dict(lo=1e-4, hi=1e4, eps=1e-4, BLOCK=launch.pop('BLOCK'),
                 BLOCK_C=T.GATE_BLOCK_C, CT=tl.float32, D=D, **over)
    sig, consts = {}, {}
    for p in kernel.params:
        n = p.name
        if p.is_constexpr:
            sig[n] = 'constexpr'
            consts[n] = const[n]
        elif n.endswith('_ptr'):
            sig[n] = '*' + over.get(n, 'fp32' if n in FP32 else dtype)
        else:
            sig[n] = 'i32'
    shared, stack = sm90_resources(kernel, sig, consts,
                                   num_stages=T.NUM_STAGES, **launch)
    out.append([name, dtype, D, shared, stack])
print(json.dumps(out))
"""


def test_every_kernel_compiles_for_a_cuda_gpu_without_spills():
    cases = [
        ['_token_sums_kernel', 'fp16', 64,
         dict(B_HEADS=True)],
        ['_token_sums_kernel', 'fp32', 32,
         dict(B_HEADS=False, b_ptr='fp32')],
        ['_queries_kernel', 'bf16', 64, {}],
        ['_queries_backward_kernel', 'fp16', 64, {}],
        ['_keys_backward_kernel', 'fp32', 64, {}],
        ['_gated_clamp_kernel', 'fp16', 16, {}],
        ['_gated_clamp_backward_kernel', 'bf16', 16, {}],
    ]
    compiled = run_compile_script(COMPILE_SCRIPT, cases)
    assert [c[0] for c in compiled] == [c[0] for c in cases]
    for name, dtype, D, shared, stack in compiled:
        # within the 48 KiB of shared memory every CUDA GPU gives a block
        assert shared <= 48 * 1024, (name, dtype, D, shared)
        # no register spills (stack frame in local memory)
        assert stack == 0, (name, dtype, D, stack)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_segmentor_inference_with_triton(mode):
    # what MMSEG_VVT_IMPLEMENTATION=triton tools/test.py runs: mmseg's
    # EncoderDecoder (whole image, or sliding windows) over the backbone,
    # its logits those of the readable formulation
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_vvt  # noqa: F401
    from mmseg_vvt.testing import tiny_segmentor
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = ConfigDict(tiny_segmentor(num_classes=3, data_preprocessor=False))
    if mode == 'slide':
        cfg.test_cfg = dict(mode='slide', crop_size=(32, 32), stride=(24, 24))
    model = MODELS.build(cfg).eval()
    x = torch.randn(1, 3, 48, 64)
    meta = [dict(img_shape=(48, 64), ori_shape=(48, 64), pad_shape=(48, 64))]
    with torch.no_grad():
        with implementation('reference'):
            want = model.inference(x, meta)
        with implementation('triton'), OpCounter() as count:
            got = model.inference(x, meta)
    assert count.counts['mmseg_vvt.vicinity_queries.default'] > 0
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
