"""What the kernels share: weights cast together (common.joined), the
clamps' gradient (common.clamp_grad)."""
import math

import pytest
import torch
from analysis_tools.proxies import OpCounter

from mmseg_vvt.models.kernels import common


def _weights():
    torch.manual_seed(0)
    return [
        torch.randn(s, requires_grad=True)
        for s in [(3, 4), (2, 4), (5, 4), (3, ), (6, 1, 3, 3)]
    ]


def test_joined_under_autocast_is_each_group_concatenated_then_cast():
    ws = _weights()
    groups = [[ws[0]], [ws[1], ws[2]], [ws[3]], [ws[4]]]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = common.joined(groups, 'cpu')
    want = [torch.cat(g).to(torch.bfloat16) for g in groups]
    assert [t.shape for t in got] == [(3, 4), (7, 4), (3, ), (6, 1, 3, 3)]
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    # one buffer, one cast
    assert len({t.untyped_storage().data_ptr() for t in got}) == 1

    grads = [torch.randn(t.shape, dtype=torch.bfloat16) for t in got]
    torch.autograd.backward(got, grads)
    want_grads = [grads[0], *grads[1].split([2, 5]), grads[2], grads[3]]
    for w, g in zip(ws, want_grads):
        assert w.grad.dtype == torch.float32
        assert torch.equal(w.grad, g.float())


def test_joined_without_autocast_or_in_float64_casts_nothing():
    ws = _weights()
    got = common.joined([[ws[0]], [ws[1], ws[2]]], 'cpu')
    assert got[0] is ws[0]
    assert torch.equal(got[1], torch.cat([ws[1], ws[2]]))
    # autocast leaves float64 alone, and so does joined
    w64 = [w.detach().double() for w in ws[:2]]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = common.joined([[w64[0]], [w64[1]]], 'cpu')
    assert got[0] is w64[0] and got[1] is w64[1]
    # autocast on another device type
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert common.joined([[ws[0]]], 'cuda')[0] is ws[0]


def test_autocast_helpers_on_a_device_without_autocast():
    # torch.autocast('meta', ...) and is_autocast_enabled('meta') raise
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert common.autocast_dtype('cpu') == torch.bfloat16
        assert common.autocast_dtype('meta') is None
        with common.autocast_off('cpu'):
            assert common.autocast_dtype('cpu') is None
        with common.autocast_off('meta'):
            assert common.autocast_dtype('cpu') == torch.bfloat16
    assert common.autocast_dtype('cpu') is None
    ws = [torch.randn(2, 3, device='meta') for _ in range(3)]
    got = common.joined([[ws[0]], [ws[1], ws[2]]], 'meta')
    assert got[0] is ws[0] and got[1].shape == (4, 3)


def test_joined_concatenates_several_groups_in_one_op_each_way():
    # without autocast, groups of several tensors (q, k, v's weights and
    # biases) are concatenated by one cat forward; their gradients go back
    # as views of the groups' gradients, no op
    ws = _weights()
    groups = [[ws[0], ws[1]], [ws[4]], [ws[3], ws[3]]]
    with OpCounter() as count:
        got = common.joined(groups, 'cpu')
    assert count.total == 1, count.counts
    assert got[1] is ws[4]
    assert torch.equal(got[0], torch.cat([ws[0], ws[1]]))
    assert torch.equal(got[2], torch.cat([ws[3], ws[3]]))
    grads = [torch.randn(t.shape) for t in got]
    with OpCounter() as count:
        torch.autograd.backward([got[0], got[2]], [grads[0], grads[2]])
    assert count.total == 1, count.counts  # ws[3]'s two grads summed
    assert torch.equal(ws[0].grad, grads[0][:3])
    assert torch.equal(ws[1].grad, grads[0][3:])
    assert torch.equal(ws[3].grad, grads[2][:3] + grads[2][3:])


def test_joined_keeps_each_groups_dtype():
    # one buffer would make every group one dtype: groups of different
    # dtypes are concatenated each on its own
    ws = _weights()
    w64 = [w.detach().double() for w in ws[:2]]
    got = common.joined([[ws[0], ws[1]], [w64[0], w64[1]]], 'cpu')
    assert [t.dtype for t in got] == [torch.float32, torch.float64]
    assert torch.equal(got[1], torch.cat(w64))


@pytest.mark.parametrize('autocast', [False, True])
@pytest.mark.parametrize('one_source', [False, True])
def test_joined_block_is_joined_attention_and_the_mlps_weights(
        autocast, one_source):
    from mmseg_vvt.models.backbones.vvt import VVTBlock
    block = VVTBlock(16, 2, 2, 2, 1)
    attn, mlp = block.attn.kernel_weights(), block.mlp.kernel_weights()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        (ws, bs, w), mlp_w = common.joined_block(attn, mlp, 'cpu', one_source)
        want_ws, want_bs, want_w = common.joined_attention(
            attn, 'cpu', one_source)
        want_mlp = common.joined([[t] for t in mlp], 'cpu')
        assert common.joined_block(attn, None, 'cpu')[1] is None
    got = [*ws, *bs, *w[6:10], *mlp_w]
    want = [*want_ws, *want_bs, *want_w[6:10], *want_mlp]
    assert len(ws) == len(bs) == (1 if one_source else 2)
    assert w.num_heads == 2
    for g, e in zip(got, want):
        assert g.dtype == (torch.bfloat16 if autocast else torch.float32)
        assert torch.equal(g, e)
    if autocast:  # one buffer: one cast for the block
        assert len({t.untyped_storage().data_ptr() for t in got}) == 1


def test_joined_rejects_groups_whose_trailing_dims_differ():
    ws = _weights()
    with pytest.raises(ValueError, match=r'\[\(3, 4\), \(3,\)\]'):
        common.joined([[ws[0], ws[3]]], 'cpu')


def _around(bound, dtype, steps=3):
    """``bound`` in ``dtype`` and its ``steps`` neighbours each side."""
    t = torch.tensor(bound, dtype=dtype)
    out = [t]
    for direction in (-math.inf, math.inf):
        u = t
        for _ in range(steps):
            u = torch.nextafter(u, torch.tensor(direction, dtype=dtype))
            out.append(u)
    return out


@pytest.mark.parametrize(
    'dtype', [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize(
    'lo,hi',
    [
        (1e-4, 1e4),
        (0.0, 1e4),
        (-math.inf, 1e4),
        (0.3, 3.0),
        # ties in bfloat16: rounded to even, as torch rounds them
        (1.00390625, 1.01171875)
    ])
def test_clamp_grad_is_autograds_gradient_of_clamp(dtype, lo, hi):
    # the bounds are where a one-op mask could go wrong: every value of the
    # dtype next to them, both signs of zero, values far inside and outside
    values = [
        v for b in (lo, hi) if math.isfinite(b) for v in _around(b, dtype)
    ]
    x = torch.stack(values + [
        torch.tensor(v, dtype=dtype)
        for v in (0.0, -0.0, 1.0, -1.0, 5e-5, -1e-4, 3e4, -3e4)
    ] + [
        torch.tensor(v, dtype=dtype)
        for v in (math.inf, -math.inf) if v not in (lo, hi)
    ]).requires_grad_()
    grad = torch.arange(1, len(x) + 1, dtype=dtype)
    x.clamp(None if math.isinf(lo) else lo, hi).backward(grad)
    got = common.clamp_grad(grad, x.detach(), lo, hi)
    assert got.dtype == dtype
    assert torch.equal(got, x.grad), (x, got, x.grad)


@pytest.mark.parametrize('dtype', [torch.float16, torch.float32])
@pytest.mark.parametrize('lo', [0.0, -math.inf])
def test_clamp_grad_differs_from_autograd_only_where_the_clamp_is_not_finite(
        dtype, lo):
    # the documented difference: NaN may pass (autograd: 0; torch's vector
    # and scalar loops differ); -inf at the bound -inf is masked (autograd:
    # passes). Both give a non-finite clamp there, so the step is lost
    # either way. 65 values: both loops run.
    values = [math.nan, -math.inf, 0.5, 2.0] + [0.25] * 60 + [math.nan]
    x = torch.tensor(values, dtype=dtype, requires_grad=True)
    y = x.clamp(None if math.isinf(lo) else lo, 1.0)
    y.backward(torch.ones_like(x))
    got = common.clamp_grad(torch.ones_like(x), x.detach(), lo, 1.0)
    differ = (got != x.grad).nonzero().flatten().tolist()
    assert set(differ) <= {0, 1, 64}
    assert (1 in differ) == math.isinf(lo)
    assert not torch.isfinite(y[differ]).any()
    assert torch.isfinite(y[2:64]).all()


def test_clamp_grad_dispatches_one_op():

    # also the first time for these bounds: they are found in plain Python,
    # so an op count does not depend on what ran before
    t = torch.randn(4, 5)
    with OpCounter() as count:
        common.clamp_grad(t, t, 0.125, 1.75)
    assert count.total == 1, count.counts


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float32])
def test_clamp_grad_writes_into_out_in_place_and_into_a_slice(dtype):
    torch.manual_seed(0)
    t = (torch.randn(3, 5, 4) * 1e4).to(dtype)
    t[0, 0, :2] = 1e4  # on the bound: passes
    buf = torch.randn(3, 5, 5, dtype=dtype)
    want = common.clamp_grad(buf[..., :4], t, 1e-4, 1e4)
    assert not torch.equal(want, buf[..., :4])  # some values are masked
    last = buf[..., 4].clone()
    with OpCounter() as count:
        got = common.clamp_grad(buf[..., :4], t, 1e-4, 1e4, out=buf[..., :4])
    assert count.total == 1, count.counts
    assert got.data_ptr() == buf.data_ptr()
    assert torch.equal(buf[..., :4], want)
    assert torch.equal(buf[..., 4], last)  # the column beside untouched
    out = torch.empty(3, 5, 4, dtype=dtype)
    common.clamp_grad(want, t, 1e-4, 1e4, out=out)
    assert torch.equal(out, want)


def test_clamp_grad_rejects_integer_tensors():
    with pytest.raises(TypeError, match='floating dtype'):
        common.clamp_grad(
            torch.ones(3), torch.ones(3, dtype=torch.int64), 0, 1)


def test_signed_clamp_in_place_is_signed_clamp_written_over_its_input():
    # into a slice too (KV's columns beside the key sums), zeros kept
    t = torch.randn(
        3, 5, dtype=torch.float64) * 10.0**torch.randint(-7, 7, (3, 5))
    t[0, 0] = 0.0
    want = common.signed_clamp(t[:, :4])
    got = common.signed_clamp_(t[:, :4])
    assert got.data_ptr() == t.data_ptr()
    assert torch.equal(t[:, :4], want)
    assert t[0, 0] == 0.0


def test_in_layout_relabels_size_one_strides_and_copies_other_layouts():
    # a depthwise conv's weight gradient as convolution backward gives it
    g = torch.randn(4, 3, 3, 1).permute(0, 3, 1, 2)
    assert g.stride() == (9, 1, 3, 1)
    got = common.in_layout(g, torch.float32, (9, 9, 3, 1))
    assert got.stride() == (9, 9, 3, 1) and torch.equal(got, g)
    assert got.data_ptr() == g.data_ptr()  # a view: same memory order
    with OpCounter() as count:
        common.in_layout(g, torch.float32, (9, 9, 3, 1))
    assert count.total == 0
    # another memory order is copied into the layout asked for
    t = torch.randn(3, 5).t()
    got = common.in_layout(t, torch.float64, (3, 1))
    assert got.stride() == (3, 1) and got.dtype == torch.float64
    assert torch.equal(got, t.double())
    # already laid out so: the tensor itself
    c = torch.randn(2, 3)
    assert common.in_layout(c, torch.float32, c.stride()) is c


def test_cached_factors_made_in_inference_mode_can_train():
    # kills common.py making the cached position factors (and constants)
    # inside inference mode: a training step after an inference_mode
    # forward at the same grid could not save them for backward
    from mmseg_vvt.models.layers import VicinityAttention
    common.cached_position_weights.cache_clear()
    common.cached_full.cache_clear()
    attn = VicinityAttention(16, 2)
    x = torch.randn(1, 21, 16)
    with torch.inference_mode():
        attn.eval()(x, (3, 7))
        common.cached_full(1.0, x.device, x.dtype)
    attn.train()(x, (3, 7)).sum().backward()
    assert attn.q_proj.weight.grad is not None
    ones = common.cached_full(1.0, x.device, x.dtype)
    assert not ones.is_inference()
    w = torch.ones(1, requires_grad=True)
    (ones * w).sum().backward()  # saved for backward: not an inference one


def test_joined_keeps_mixed_dtypes_under_autocast():
    # kills common.py casting when any (not all) of the tensors is float32:
    # groups of other dtypes stay as they are, as the docstring says
    a, b = torch.randn(2, 3), torch.randn(4, 3, dtype=torch.float16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = common.joined([[a], [b]], 'cpu')
    assert [t.dtype for t in out] == [torch.float32, torch.float16]
