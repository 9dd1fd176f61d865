"""The memory-lean training kernels: exact gradients, little saved."""
import pytest
import torch
from analysis_tools.proxies import OpCounter
from op_helpers import CastShapes
from torch.utils._python_dispatch import TorchDispatchMode

from mmseg_vvt.models import kernels
from mmseg_vvt.models.backbones.vvt import Mlp, VVTBlock
from mmseg_vvt.models.kernels import implementation
from mmseg_vvt.models.kernels.autograd import ConvGeluLinear, VicinityCore
from mmseg_vvt.models.layers import VicinityAttention
from mmseg_vvt.testing import outputs_and_grads


@pytest.mark.parametrize('heads,hw,kv_hw', [(1, (3, 4), (3, 4)),
                                            (2, (2, 3), (1, 2))])
def test_vicinity_core_gradcheck(heads, hw, kv_hw):
    torch.manual_seed(0)
    d = 2
    n, nk = hw[0] * hw[1], kv_hw[0] * kv_hw[1]
    q = torch.randn(2, n, heads * d, dtype=torch.float64, requires_grad=True)
    kv = torch.randn(
        2, nk, 2 * heads * d, dtype=torch.float64, requires_grad=True)
    wq = kernels.position_weights(*hw, dtype=torch.float64)
    wk = kernels.position_weights(*kv_hw, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: VicinityCore.apply(a, b, wq, wk, heads), (q, kv))


def _readable_core(qkv, w, heads):
    """The core as the readable attention writes it (torch's ReLU, clamps
    and products under autograd) from one GEMM's ``[q | k | v]``."""
    from mmseg_vvt.models.layers.vicinity_attention import expand_by_position
    B, N, hd3 = qkv.shape
    hd = hd3 // 3
    q, k, v = (
        t.view(B, N, heads, hd // heads).transpose(1, 2)
        for t in qkv.split(hd, dim=-1))
    q = expand_by_position(torch.relu(q), w)
    k = expand_by_position(torch.relu(k), w)
    kv = kernels.signed_clamp(k.transpose(-2, -1) @ v)
    z = kernels.signed_clamp(
        1.0 / (q @ k.sum(dim=2, keepdim=True).transpose(-2, -1) +
               kernels.DENOMINATOR_EPS))
    o = kernels.signed_clamp(kernels.signed_clamp(q @ kv) * z)
    return o.transpose(1, 2).reshape(B, N, hd)


@pytest.mark.parametrize('heads', [1, 2, 3])
def test_vicinity_core_gradcheck_with_q_k_v_in_one_tensor(heads):
    # without spatial reduction the projections come from one GEMM and the
    # gradient goes back as one tensor; with several heads q and k are laid
    # out and rectified together, their ReLUs' gradients masked at once
    torch.manual_seed(0)
    d, hw = 2, (3, 4)
    qkv = torch.randn(
        2, 12, 3 * heads * d, dtype=torch.float64, requires_grad=True)
    w = kernels.position_weights(*hw, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda t: VicinityCore.apply(t, None, w, w, heads), (qkv, ))
    qkv = qkv.detach().clone()
    qkv[:, ::5, :2 * heads * d] = 0  # ReLU's kink: gradient 0, as torch's
    qkv.requires_grad_()
    hd = heads * d
    g = torch.randn(2, 12, hd, dtype=torch.float64)
    joined = VicinityCore.apply(qkv, None, w, w, heads)
    q, kv = qkv[..., :hd].detach(), qkv[..., hd:].detach()
    q.requires_grad_(), kv.requires_grad_()
    split = VicinityCore.apply(q, kv, w, w, heads)
    torch.testing.assert_close(joined, split, rtol=0, atol=0)
    got, = torch.autograd.grad(joined, qkv, g)
    want = torch.cat(torch.autograd.grad(split, (q, kv), g), dim=-1)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert (got[:, ::5, :2 * hd] == 0).all()
    # against torch's own ReLU and autograd: the readable core
    readable = _readable_core(qkv, w, heads)
    torch.testing.assert_close(joined, readable)
    torch.testing.assert_close(
        got, torch.autograd.grad(readable, qkv, g)[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('batch,hw', [(1, (1, 1)), (2, (1, 1)), (1, (2, 3))])
def test_vicinity_core_leaves_its_input_alone(batch, hw):
    # one image of one token: [q | k] laid out by heads is q_in itself, which
    # the core must not rectify in place (autograd saved it for backward)
    torch.manual_seed(0)
    heads, d = 3, 2
    n = hw[0] * hw[1]
    qkv = torch.randn(
        batch, n, 3 * heads * d, dtype=torch.float64, requires_grad=True)
    before = qkv.detach().clone()
    w = kernels.position_weights(*hw, dtype=torch.float64)
    y = qkv * 1  # a non-leaf, as the projection's output is
    o = VicinityCore.apply(y, None, w, w, heads)
    assert torch.equal(y.detach(), before)
    g = torch.randn_like(o)
    got, = torch.autograd.grad(o, qkv, g)
    want, = torch.autograd.grad(_readable_core(qkv, w, heads), qkv, g)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('layout', ['expanded', 'transposed'])
def test_vicinity_core_takes_its_output_gradient_in_any_layout(layout):
    # backward reads grad_o by heads where it lies (a sum's gradient is
    # expanded, a transpose's is strided): the readable core's gradients
    torch.manual_seed(0)
    heads, d, hw = 2, 3, (3, 4)
    qkv = torch.randn(
        2, 12, 3 * heads * d, dtype=torch.float64, requires_grad=True)
    w = kernels.position_weights(*hw, dtype=torch.float64)
    c = torch.randn(2, heads * d, 12, dtype=torch.float64)

    def loss(o):
        return o.sum() if layout == 'expanded' else (o.transpose(1, 2) *
                                                     c).sum()

    got, = torch.autograd.grad(
        loss(VicinityCore.apply(qkv, None, w, w, heads)), qkv)
    want, = torch.autograd.grad(loss(_readable_core(qkv, w, heads)), qkv)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('sr_ratio,gemms', [(1, 2), (2, 3)])
def test_attention_input_projections_share_a_gemm_without_reduction(
        sr_ratio, gemms):
    # q, k and v of the same tokens: one GEMM forward (so under autocast
    # one cast of x), and one GEMM each for x's and the weights' gradients;
    # keys from reduced tokens take their own. Then out_proj's GEMM
    torch.manual_seed(0)
    attn = VicinityAttention(8, 2, sr_ratio=sr_ratio)
    x = torch.randn(2, 6 * 8, 8, requires_grad=True)
    with OpCounter() as count:
        attn(x, (6, 8)).sum().backward()
    assert count.counts['aten.addmm.default'] == gemms, count.counts


@pytest.mark.parametrize('fused', [False, True])
def test_conv_gelu_linear_gradcheck(fused):
    # fused: the conv and GELU in the Triton kernels (their interpreter)
    torch.manual_seed(0)
    t = torch.randn(1, 6, 2, dtype=torch.float64, requires_grad=True)
    ws = [
        torch.randn(s, dtype=torch.float64, requires_grad=True)
        for s in [(2, 1, 3, 3), (2, ), (3, 2), (3, )]
    ]
    assert torch.autograd.gradcheck(
        lambda *a: ConvGeluLinear.apply(a[0], (2, 3), *a[1:], fused), (t, *ws))


def _grads(module, x, hw, reference):
    return outputs_and_grads(module, x, hw,
                             'reference' if reference else 'auto')


# the training paths: eager autograd kernels, and the Triton kernels (in
# their interpreter on CPU)
@pytest.mark.parametrize('impl,path', [('auto', 'autograd'),
                                       ('triton', 'triton')])
@pytest.mark.parametrize('sr_ratio', [1, 2])
def test_attention_gradients_equal_the_readable_formulation(
        device, sr_ratio, impl, path):
    # float64, published clamps; large inputs so the upper clamps bite
    torch.manual_seed(0)
    attn = VicinityAttention(12, 2, sr_ratio=sr_ratio).double().to(device)
    for p in attn.parameters():
        p.data.normal_(0, 0.5)
    x = torch.randn(2, 6 * 8, 12, dtype=torch.float64).to(device) * 30
    with implementation(impl):
        assert kernels.select(x, attn) == path
    got = outputs_and_grads(attn, x, (6, 8), impl)
    want = outputs_and_grads(attn, x, (6, 8), 'reference')
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-9, rtol=1e-8)


@pytest.mark.parametrize('impl,path', [('auto', 'autograd'),
                                       ('triton', 'triton')])
def test_mlp_gradients_equal_the_readable_formulation(device, impl, path):
    torch.manual_seed(0)
    mlp = Mlp(8, 24).double().to(device)
    x = torch.randn(2, 5 * 7, 8, dtype=torch.float64).to(device)
    with implementation(impl):
        assert kernels.select(x, mlp) == path
    got = outputs_and_grads(mlp, x, (5, 7), impl)
    want = outputs_and_grads(mlp, x, (5, 7), 'reference')
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize('make', [
    lambda: Mlp(8, 24),
    lambda: VicinityAttention(8, 2),
])
def test_training_kernels_cast_their_weights_in_one_op_each_way(make):
    # autocast would cast each weight down in forward and each gradient up
    # in backward; the kernels cast them together (common.JoinedCast), and
    # the MLP's backward reuses the half-precision weights forward made
    torch.manual_seed(0)
    module = make()
    x = torch.randn(2, 5 * 7, 8, requires_grad=True)
    with CastShapes() as casts:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            y = module(x, (5, 7))
        y.float().sum().backward()
    numel = sum(p.numel() for p in module.parameters())
    assert casts.shapes.count((numel, )) == 2, casts.shapes
    shapes = {tuple(p.shape) for p in module.parameters()}
    assert not shapes & set(casts.shapes), casts.shapes
    assert all(p.grad.dtype == torch.float32 for p in module.parameters())


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('kernel,weights', [
    (kernels.autograd.mlp, lambda: Mlp(16, 48).kernel_weights()),
    (lambda x, hw, w: kernels.autograd.attention(x, x, hw, hw, w),
     lambda: VicinityAttention(16, 2).kernel_weights()),
])
def test_weights_cast_together_give_what_casting_each_gives(
        kernel, weights, dtype, device):
    # the same numbers as when every weight is cast on its own (as autocast
    # does): forward and every gradient, bit for bit on CPU. cuBLAS may
    # pick other kernels for views at other offsets, hence the tolerance
    torch.manual_seed(0)
    w = weights()
    x = torch.randn(2, 35, 16).to(device)

    def run(cast_each):
        params = [
            t.detach().clone().to(device).requires_grad_()
            if torch.is_tensor(t) else t for t in w
        ]
        xx = x.clone().requires_grad_()
        with torch.autocast(device.type, dtype=dtype):
            given = [
                t.to(dtype) if cast_each and torch.is_tensor(t) else t
                for t in params
            ]
            y = kernel(xx, (5, 7), type(w)(*given))
        y.float().pow(2).sum().backward()
        return [y, xx.grad] + [t.grad for t in params if torch.is_tensor(t)]

    for got, want in zip(run(cast_each=False), run(cast_each=True)):
        assert got.dtype == want.dtype
        if device.type == 'cpu':
            assert torch.equal(got, want)
        else:
            torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


class _NewMaps(TorchDispatchMode):
    """How many fresh tensors of ``nbytes`` the ops make (outputs that do
    not write into one of their inputs)."""

    def __init__(self, nbytes):
        super().__init__()
        self.nbytes, self.count = nbytes, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in torch.utils._pytree.tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for t in torch.utils._pytree.tree_leaves(out):
            if (isinstance(t, torch.Tensor)
                    and t.untyped_storage().nbytes() == self.nbytes
                    and t.untyped_storage().data_ptr() not in inputs):
                self.count += 1
        return out


@pytest.mark.parametrize('fused,maps', [(False, (1, 3)), (True, (1, 2))])
def test_conv_gelu_linear_allocates_one_hidden_map_forward(fused, maps):
    # the conv's output takes the GELU in place; in backward the recomputed
    # activation's buffer takes fc2's and then the GELU's gradient, so only
    # the conv's output, the activation and the returned gradient are new.
    # fused (Triton): no conv output in backward, the conv is recomputed in
    # the kernels' registers
    torch.manual_seed(0)
    t = torch.randn(2, 5 * 7, 24, requires_grad=True)
    ws = [
        torch.randn(s, requires_grad=True)
        for s in [(24, 1, 3, 3), (24, ), (8, 24), (8, )]
    ]
    with _NewMaps(t.numel() * 4) as forward:
        y = ConvGeluLinear.apply(t, (5, 7), *ws, fused)
    with _NewMaps(t.numel() * 4) as backward:
        y.sum().backward()
    assert (forward.count, backward.count) == maps


def test_conv_gelu_linear_takes_a_conv_output_laid_out_nchw(monkeypatch):
    # oneDNN and cuDNN give this channels-last input a channels-last output,
    # which backward reuses as a token-major buffer; CUDA's native depthwise
    # kernel (and the meta device) give an NCHW one, which it cannot
    torch.manual_seed(0)
    mlp = Mlp(8, 24).double()
    x = torch.randn(2, 5 * 7, 8, dtype=torch.float64)
    want = _grads(mlp, x, (5, 7), reference=False)
    conv2d = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, 'conv2d',
                        lambda *a, **k: conv2d(*a, **k).contiguous())
    got = _grads(mlp, x, (5, 7), reference=False)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=1e-12)


def _saved_bytes(fn):
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def test_training_kernels_save_less_than_autograd_on_the_readable_code():
    torch.manual_seed(0)
    attn = VicinityAttention(64, 2)
    mlp = Mlp(64, 256)
    x = torch.randn(2, 32 * 32, 64, requires_grad=True)

    def run():
        return mlp(attn(x, (32, 32)), (32, 32))

    lean = _saved_bytes(run)
    with implementation('reference'):
        plain = _saved_bytes(run)
    assert lean < 0.5 * plain, (lean, plain)


def _rand_from_cpu_stream(rand):
    """``torch.rand`` drawing from the CPU generator, then moved."""

    def cpu_rand(*shape, dtype=None, device=None, **kwargs):
        return rand(*shape, dtype=dtype, **kwargs).to(device)

    return cpu_rand


@pytest.mark.parametrize('heads,sr_ratio,drop_path', [(1, 1, 0.), (2, 2, 0.3),
                                                      (3, 1, 0.5)])
def test_block_training_path_equals_the_readable_block(monkeypatch, device,
                                                       heads, sr_ratio,
                                                       drop_path):
    # float64, train mode: the same stochastic depth draws (same seed), the
    # same outputs and gradients, whichever samples are dropped
    if device.type == 'cuda':
        # CUDA's generator gives one draw of n x B numbers other values than
        # n draws of B (mmcv's DropPath, block by block): the same numbers
        # come from a CPU stream here, for both paths
        monkeypatch.setattr(torch, 'rand', _rand_from_cpu_stream(torch.rand))
    torch.manual_seed(0)
    block = VVTBlock(
        12 * heads, heads, 2, 2, sr_ratio,
        drop_path_rate=drop_path).double().to(device)
    for p in block.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(4, 6 * 8, 12 * heads, dtype=torch.float64).to(device) * 3
    got, want = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        got.append(_grads(block, x, (6, 8), reference=False))
        torch.manual_seed(seed)
        want.append(_grads(block, x, (6, 8), reference=True))
    for g_run, w_run in zip(got, want):
        for g, w in zip(g_run, w_run):
            torch.testing.assert_close(g, w, atol=1e-9, rtol=1e-8)
    if drop_path:  # some sample's branch was dropped in some run, not all
        outs = torch.stack([run[0] for run in got])
        assert not torch.equal(outs[0], outs[1]) or not torch.equal(
            outs[1], outs[2])


def test_drop_path_scales_are_zero_or_one_over_keep():
    from mmseg_vvt.models.kernels.autograd import drop_path_scales
    torch.manual_seed(0)
    s = drop_path_scales(
        torch.zeros(1000, 5, 3, dtype=torch.float64), [0.25, 0.5])
    assert s.shape == (2, 1000, 1, 1) and s.dtype == torch.float64
    for branch, p in zip(s, [0.25, 0.5]):  # each branch its own rate
        assert set(branch.unique().tolist()) == {0.0, 1 / (1 - p)}
        assert abs((branch == 0).double().mean().item() - p) < 0.05


def test_dropped_path_add_gives_each_input_its_gradient_in_its_dtype():
    # under autocast the residual stream x stays fp32 while the branch y is
    # half precision; autograd would cast a gradient handed back in the
    # other's dtype without a word, rounding x's through bf16
    from mmseg_vvt.models.kernels.autograd import add_dropped_path
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, requires_grad=True)
    y = torch.randn(2, 5, 4, dtype=torch.bfloat16, requires_grad=True)
    scale = torch.tensor([0., 2.]).view(2, 1, 1)
    out = add_dropped_path(x, y, scale)
    assert torch.equal(out, torch.addcmul(x, y, scale))
    g = torch.randn_like(out)
    out.backward(g)
    assert torch.equal(x.grad, g)
    assert torch.equal(y.grad, (g * scale).to(torch.bfloat16))


def test_block_training_ops_per_step():
    # the training kernels' reason to exist: few ops per step (each is a
    # kernel launch on a GPU); the readable block under autograd, for scale
    def ops(reference):
        torch.manual_seed(0)
        block = VVTBlock(64, 2, 4, 2, 1, drop_path_rate=0.1)
        x = torch.randn(2, 8 * 8, 64, requires_grad=True)
        block(x, (8, 8)).sum()  # builds the cached position factors
        with OpCounter() as count, implementation(reference and 'reference'
                                                  or 'auto'):
            block(x, (8, 8)).sum().backward()
        return count.total

    lean, plain = ops(False), ops(True)
    # measured: 118 (2 heads, drop path; 119 before the output clamp's mask
    # read grad_o by heads where it lies, 124 before one copy and one ReLU
    # laid out q and k together and one mask took both ReLUs' gradients,
    # 126 before the gate's mean
    # gradient joined the input projection's GEMM, 128 before the core's
    # backward wrote [g_num | g_m] over its recomputed product and masked
    # KV's gradient by the saved magnitudes, 129 before q, k and v's weights
    # and biases were concatenated in one op, 139 before each clamp's
    # gradient took one, 145 before q, k and v shared one GEMM)
    assert lean <= 118, lean
    assert plain > 1.4 * lean, (lean, plain)


def test_attention_refuses_weights_joined_for_the_other_source():
    # weights joined as [q | k | v] cannot serve keys and values computed
    # from a spatially reduced source, and the other way round
    from mmseg_vvt.models.kernels import autograd, common
    attn = VicinityAttention(16, 2, sr_ratio=1)
    w = attn.kernel_weights()
    x = torch.randn(1, 16, 16)
    src = torch.randn(1, 4, 16)
    for one_source, args in ((True, (x, src, (4, 4), (2, 2))),
                             (False, (x, x, (4, 4), (4, 4)))):
        joined = common.joined_attention(w, 'cpu', one_source)
        with pytest.raises(ValueError, match='input GEMM'):
            autograd.attention(*args, w, joined=joined)


def test_core_under_half_precision_casts_only_while_laying_out():
    # with half-precision projections the core's float32 copies of q, k and
    # v come from the copies that lay heads out (v's from the cat that pads
    # it): one op more than in float32, the cast of the joined gradient
    def ops(dtype):
        torch.manual_seed(0)
        qkv = torch.randn(2, 12, 3 * 2 * 4).to(dtype).requires_grad_()
        w = kernels.position_weights(3, 4)
        for _ in range(2):  # counted: the second (constants cached)
            with OpCounter() as count:
                o = VicinityCore.apply(qkv, None, w, w, 2)
                o.backward(torch.ones_like(o))
        assert o.dtype == qkv.grad.dtype == dtype
        return count.counts

    fp32, half = ops(torch.float32), ops(torch.bfloat16)
    assert sum(half.values()) == sum(fp32.values()) + 1, (half, fp32)


def test_attention_casts_fp32_tokens_once_under_autocast():
    # CUDA autocast hands the attention fp32 tokens (its LayerNorm runs in
    # fp32): they are cast once, for the projection GEMM, and the gate's
    # token mean reads that copy; one cast back of their gradient
    torch.manual_seed(0)
    attn = VicinityAttention(16, 2).train()
    x = torch.randn(2, 5 * 7, 16, requires_grad=True)
    with CastShapes() as casts:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            y = attn(x, (5, 7))
        y.sum().backward()
    assert casts.shapes.count((2, 35, 16)) == 2, casts.shapes
    assert (2, 16) not in casts.shapes, casts.shapes  # the gate's mean
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()


def test_projection_and_mean_gradcheck_and_one_op_for_both_gradients():
    from mmseg_vvt.models.kernels.autograd import ProjectionAndMean
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ProjectionAndMean.apply, (x, w, b))
    y, m = ProjectionAndMean.apply(x, w, b)
    torch.testing.assert_close(y, torch.nn.functional.linear(x, w, b))
    torch.testing.assert_close(m, x.mean(dim=1))
    # x's gradient through both outputs in one op: the GEMM adds the mean's
    gy, gm = torch.randn_like(y), torch.randn_like(m)
    with OpCounter() as count:
        torch.autograd.backward((y, m), (gy, gm))
    assert count.counts == {
        'aten.baddbmm.default': 1,
        'aten.mm.default': 1,  # the weight's gradient
        'aten.sum.dim_IntList': 1  # the bias's
    }, count.counts
    want = torch.autograd.grad(
        (torch.nn.functional.linear(x, w, b), x.mean(dim=1)), (x, w, b),
        (gy, gm))
    for got, e in zip((x.grad, w.grad, b.grad), want):
        torch.testing.assert_close(got, e, rtol=1e-12, atol=1e-12)
    # frozen weights: their gradients are not computed
    x.grad = None
    y, m = ProjectionAndMean.apply(x, w.detach(), b.detach())
    with OpCounter() as count:
        torch.autograd.backward((y, m), (gy, gm))
    assert count.counts == {'aten.baddbmm.default': 1}, count.counts


def test_projection_and_mean_under_autocast_casts_as_autocast_does():
    # float32 tokens and weights (e.g. weights left uncast when a module's
    # are of mixed dtypes): cast as autocast casts them for the GEMM, and
    # every gradient comes back in its input's dtype
    from mmseg_vvt.models.kernels.autograd import ProjectionAndMean
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8, requires_grad=True)
    w = torch.randn(5, 8, requires_grad=True)
    b = torch.randn(5, dtype=torch.bfloat16, requires_grad=True)
    gy = torch.randn(2, 6, 5, dtype=torch.bfloat16)
    gm = torch.randn(2, 8, dtype=torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y, m = ProjectionAndMean.apply(x, w, b)
    torch.autograd.backward((y, m), (gy, gm))
    got = y, m, x.grad, w.grad, b.grad
    assert [
        t.dtype for t in got
    ] == [torch.bfloat16] * 2 + [torch.float32, torch.float32, torch.bfloat16]
    xs, ws = (t.detach().bfloat16().requires_grad_() for t in (x, w))
    bs = b.detach().requires_grad_()
    want_y, want_m = torch.nn.functional.linear(xs, ws, bs), xs.mean(dim=1)
    want = (want_y, want_m, *torch.autograd.grad((want_y, want_m),
                                                 (xs, ws, bs), (gy, gm)))
    for g, e in zip(got, want):
        torch.testing.assert_close(g.float(), e.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize('impl,path', [('auto', 'autograd'),
                                       ('triton', 'triton')])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_training_gradients_are_laid_out_as_their_parameters(
        device, impl, path, dtype):
    # DDP's gradient buckets take each gradient in its parameter's strides
    # and warn ("Grad strides do not match bucket view strides") otherwise;
    # the depthwise conv's weight gradient came channels-last
    torch.manual_seed(0)
    block = VVTBlock(32, 2, 4, 2, 2).to(device)
    x = torch.randn(2, 8 * 8, 32, device=device)
    with implementation(impl):
        assert kernels.select(x, block.mlp) == path
        with torch.autocast(device.type, dtype, enabled=dtype != x.dtype):
            block(x, (8, 8)).float().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.dtype == p.dtype, name
        assert p.grad.stride() == p.stride(), (name, p.grad.stride())
