# Copyright (c) mmseg-vvt contributors.
"""Memory-lean training kernels: where they run, why.

Chosen by :func:`~.dispatch.select` whenever gradients are needed, on any
device. Autograd on the readable formulation keeps every intermediate of
the attention alive until backward (the ``4d``-wide position-modulated
copies, each clamp's sign / magnitude / mask) and replays each op's
backward as its own kernel. The functions here save only what cannot be
recomputed cheaply and write their backward by hand:

* :class:`VicinityCore` saves the projections' outputs ``q`` and ``[k|v]``
  (in their autocast dtype), the small ``[KV | -sum_j k~_j]``, KV's
  magnitudes before its clamp and the normaliser (one value per query and
  head); the modulated copies and the query-side clamps are recomputed.
* :class:`GatedClamp` (``out_proj``'s clamp, the gate, the last clamp)
  saves its input and the gate.
* :class:`ProjectionAndMean` (the input projection and the gate's token
  mean) adds the mean's gradient inside the projection's backward GEMM.
* :class:`ConvGeluLinear` (the MLP after ``fc1``) saves only ``fc1``'s
  output; the conv output and the GELU are recomputed, so one hidden map
  is kept instead of three.

Each op here is a kernel launch on a GPU, so they are also written for few
ops: heads as batches of one ``bmm`` each, one op per clamp's gradient
(:func:`~.common.clamp_grad`), stochastic depth folded into the residual
add (:func:`add_dropped_path`).

Their forward and gradients equal the readable formulation's, published
clamps included (tests/test_models/test_kernels, gradcheck in float64).
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from . import common
from .common import HW, AttentionWeights, MlpWeights


def _by_head(t: Tensor, h: int, dtype: torch.dtype) -> Tensor:
    """``B x N x h*d`` (``t``'s last dim may be a slice) to ``B*h x N x d``,
    contiguous, in ``dtype``: one copy at most (none for one head in place)."""
    B, N, hd = t.shape
    return _contiguous(t.view(B, N, h, hd // h).transpose(1, 2),
                       dtype).view(B * h, N, hd // h)


def _relu_by_head(t: Tensor, h: int, dtype: torch.dtype) -> Tensor:
    """``relu`` of :func:`_by_head`'s result, in one op where the ReLU can
    lay the heads out itself: one head in ``t``'s dtype (the ReLU of a
    slice writes a contiguous output)."""
    if h == 1 and t.dtype == dtype:
        out = F.relu(t)
        if out.is_contiguous():
            return out
    return F.relu(_by_head(t, h, dtype))


def _rectified_q_k(q_lin: Tensor, kv_lin: Tensor, qkv: Optional[Tensor],
                   h: int, dtype: torch.dtype):
    """``relu`` of the queries and of the keys, each ``B*h x N x d``
    contiguous in ``dtype``. ``qkv``: the one GEMM's ``[q | k | v]`` that
    ``q_lin`` and ``kv_lin`` slice, if they came from one. Then, with several
    heads, one copy lays q and k out (``q`` heads, then ``k`` heads) and one
    ReLU rectifies both in place: two ops, not four."""
    B, N, hd = q_lin.shape
    if qkv is None or h == 1:
        k_lin = kv_lin[..., :hd]
        return _relu_by_head(q_lin, h, dtype), _relu_by_head(k_lin, h, dtype)
    d = hd // h
    qk = qkv[..., :2 * hd].view(B, N, 2, h, d).permute(2, 0, 3, 1, 4)
    laid = _contiguous(qk, dtype)
    # the copy is ours to rectify in place; with one image of one token the
    # view is contiguous already, and is q_in itself (saved for backward)
    laid = torch.relu(laid) if laid is qk else torch.relu_(laid)
    return laid[0].view(B * h, N, d), laid[1].view(B * h, N, d)


def _from_heads(t: Tensor, B: int, dtype: torch.dtype) -> Tensor:
    """The inverse of :func:`_by_head`: ``B*h x N x d`` to ``B x N x h*d``."""
    Bh, N, d = t.shape
    return _contiguous(t.view(B, Bh // B, N, d).transpose(1, 2),
                       dtype).view(B, N, Bh // B * d)


def _contiguous(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` contiguous in ``dtype``, by one copy at most (the cast lays it
    out; ``to`` alone would keep a transposed layout)."""
    if t.dtype != dtype:
        return t.to(dtype, memory_format=torch.contiguous_format)
    return t.contiguous()


def _modulate(t: Tensor, w: Tensor) -> Tensor:
    """``B*h x N x d`` to ``B*h x N x 4d``: ``[t cos a, ..., t sin b]``."""
    Bh, N, d = t.shape
    return (t.unsqueeze(2) * w.view(N, 4, 1)).view(Bh, N, 4 * d)


def _demodulate(g: Tensor, w: Tensor) -> Tensor:
    """The adjoint of :func:`_modulate`: ``B*h x N x 4d`` to ``d``."""
    Bh, N, d4 = g.shape
    return (g.view(Bh, N, 4, d4 // 4) * w.view(N, 4, 1)).sum(dim=2)


class VicinityCore(torch.autograd.Function):
    """From the projections to the heads' output, before ``out_proj``.

    ``forward(q_lin, kv_lin, wq, wk, num_heads)``: ``q_lin`` (``B x N x hd``)
    and ``kv_lin`` (``B x Nk x 2hd``, keys then values) are the linear
    projections before the ReLUs; ``wq`` / ``wk`` the grids' position
    factors. ``kv_lin`` None: ``q_lin`` is ``B x N x 3hd``, queries, keys
    and values of the same tokens from one GEMM, and the gradient comes
    back as one tensor too. Returns ``B x N x hd`` (the clamped ``o_i``) in
    ``q_lin``'s dtype; the token sums run in :func:`~.common.core_dtype`.

    Heads are laid out as batches (``B*h x N x d``) so every product is one
    ``bmm`` without hidden copies. Saves the projections, the small clamped
    ``[KV | -s]`` with KV's magnitudes before the clamp, and the reciprocal
    normaliser ``r`` (one value per query and head); the ``4d``-wide
    modulated copies and the query-side clamps are recomputed in backward.
    Each clamp's gradient is one op (:func:`~.common.clamp_grad`), with the
    bounds of torch's clamp gradient (``lo <= a <= hi``). Backward writes
    the gradient of ``[num | -den]`` over its recomputed product. From one
    GEMM's ``[q | k | v]``, q and k are laid out and rectified together
    (:func:`_rectified_q_k`), and one mask over the returned gradient is
    the gradient of both ReLUs.
    """

    @staticmethod
    def _split(q_lin, kv_lin):
        """``q_lin, kv_lin`` (views of ``q_lin`` when ``kv_lin`` is None)."""
        if kv_lin is not None:
            return q_lin, kv_lin
        hd = q_lin.shape[-1] // 3
        return q_lin[..., :hd], q_lin[..., hd:]

    @staticmethod
    def forward(ctx, q_in, kv_in, wq, wk, num_heads):
        q_lin, kv_lin = VicinityCore._split(q_in, kv_in)
        h = num_heads
        B, N, hd = q_lin.shape
        d = hd // h
        lo, hi = common.CLAMP_MIN, common.CLAMP_MAX
        ct = common.core_dtype(q_lin.dtype)
        with common.autocast_off(q_lin.device.type):
            q, k = _rectified_q_k(q_lin, kv_lin,
                                  None if kv_in is not None else q_in, h, ct)
            k_pos, v1 = _modulate(k, wk), VicinityCore._values(kv_lin, h, ct)
            # B*h x 4d x (d+1): [KV | -s], s = sum_j k~_j
            kvs = torch.bmm(k_pos.transpose(1, 2), v1)
            kv = kvs[..., :d]
            kv_abs = kv.abs()
            # KV's signed clamp over KV itself: no copy of the -s column
            torch.mul(kv.sign(), kv_abs.clamp(lo, hi), out=kv)
            out = torch.bmm(_modulate(q, wq), kvs)
            # out[..., d] is -den: r = 1 / (den + eps)
            r = torch.rsub(out[..., d:], common.DENOMINATOR_EPS).reciprocal()
            num = out[..., :d]
            # r > 0, so z's signed clamp is a plain clamp
            o_abs = num.abs().clamp(lo, hi) * r.clamp(lo, hi)
            o = num.sign() * o_abs.clamp(lo, hi)
        ctx.save_for_backward(q_in, kv_in, wq, wk, kvs, kv_abs, r)
        ctx.num_heads = num_heads
        # the head-layout copy casts back too (not a cast of its own)
        return _from_heads(o, B, q_lin.dtype)

    @staticmethod
    def _values(kv_lin, h, ct):
        """``[v | -1]``: ``B*h x Nk x (d+1)``, contiguous in ``ct``."""
        B, Nk, hd2 = kv_lin.shape
        hd = hd2 // 2
        d = hd // h
        v = kv_lin[..., hd:].view(B, Nk, h, d).transpose(1, 2)
        # one cat writes [v | -1] contiguously in ct: no copy, and under
        # autocast no cast, of its own (cat promotes v's dtype to ct's).
        # -1, so the product holds -s and the normaliser -den: backward
        # then needs no negation of its own (exact: only signs flip)
        minus_ones = common.cached_full(-1.0, v.device, ct)
        v1 = torch.cat([v, minus_ones.expand(B, h, Nk, 1)], dim=-1)
        return v1.view(B * h, Nk, d + 1)

    @staticmethod
    def backward(ctx, grad_o):
        q_in, kv_in, wq, wk, kvs, kv_abs, r = ctx.saved_tensors
        q_lin, kv_lin = VicinityCore._split(q_in, kv_in)
        h = ctx.num_heads
        B, N, hd = q_lin.shape
        d = hd // h
        lo, hi = common.CLAMP_MIN, common.CLAMP_MAX
        ct = common.core_dtype(q_lin.dtype)
        joined = kv_in is None
        with common.autocast_off(q_lin.device.type):
            q, k = _rectified_q_k(q_lin, kv_lin, q_in if joined else None, h,
                                  ct)
            q_pos = _modulate(q, wq)
            # [num | -den] again: the buffer then takes [g_num | g_m]
            # (no cat of its own); -den itself is not needed
            g_out = torch.bmm(q_pos, kvs)  # B*h x N x (d+1)
            num = g_out[..., :d]
            num_abs = num.abs()
            p_abs = num_abs.clamp(lo, hi)
            z = r.clamp(lo, hi)
            o_abs = p_abs * z
            # o = sign(num) clamp(p_abs z), p_abs = clamp(|num|). The mask
            # reads grad_o by heads where it lies, in its dtype, and writes
            # over o_abs (spent): no layout copy, no cast of its own
            by_heads = o_abs.view(B, h, N, d)
            g = common.clamp_grad(
                grad_o.reshape(B, N, h, d).transpose(1, 2),
                by_heads,
                lo,
                hi,
                out=by_heads).view(B * h, N, d)
            g_z = (g * num.sign() * p_abs).sum(dim=-1, keepdim=True)
            # num is spent: g_num takes its place
            torch.mul(common.clamp_grad(g, num_abs, lo, hi), z, out=num)
            # z = clamp(r), r = 1 / (eps - m) for the column m = -den:
            # d r / d m = r^2
            torch.mul(
                common.clamp_grad(g_z, r, lo, hi) * r, r, out=g_out[..., d:])
            g_q = _demodulate(torch.bmm(g_out, kvs.transpose(1, 2)), wq)
            if not joined:  # joined: both ReLUs' masks at once, below
                g_q = torch.ops.aten.threshold_backward(g_q, q, 0)
            g_kvs = torch.bmm(q_pos.transpose(1, 2), g_out)  # B*h x 4d x d+1
            # KV's clamp, in place; -s passes as it is
            common.clamp_grad(
                g_kvs[..., :d], kv_abs, lo, hi, out=g_kvs[..., :d])
            # kvs = k~^T [v | -1]
            k_pos, v1 = _modulate(k, wk), VicinityCore._values(kv_lin, h, ct)
            g_k = _demodulate(torch.bmm(v1, g_kvs.transpose(1, 2)), wk)
            if not joined:
                g_k = torch.ops.aten.threshold_backward(g_k, k, 0)
            g_v = torch.bmm(k_pos, g_kvs[..., :d])
            Nk = kv_lin.shape[1]
            g_kv = [g.view(B, h, Nk, d).transpose(1, 2) for g in (g_k, g_v)]
            if joined:  # one tensor [q | k | v]: one cat, one cast
                g_qkv = torch.cat(
                    [g_q.view(B, h, N, d).transpose(1, 2)] + g_kv,
                    dim=2)  # B x N x 3h x d
                g_qkv = _contiguous(g_qkv, q_in.dtype).view(B, N, 3 * hd)
                # the ReLUs of q and k: one mask, from q_in itself
                # (relu(t) > 0 where t > 0), over their gradient in place
                g_qk = g_qkv[..., :2 * hd]
                torch.ops.aten.threshold_backward.grad_input(
                    g_qk, q_in[..., :2 * hd], 0, grad_input=g_qk)
                return g_qkv, None, None, None, None
            g_kv = torch.cat(g_kv, dim=2)  # B x Nk x 2h x d
        return (_from_heads(g_q, B, q_lin.dtype),
                _contiguous(g_kv, kv_lin.dtype).view(B, Nk,
                                                     2 * hd), None, None, None)


class ProjectionAndMean(torch.autograd.Function):
    """``(F.linear(x, weight, bias), x.mean(dim=1))`` of tokens ``x``
    (``B x N x C``): the attention's input projection and the gate's token
    mean, both of ``x``.

    Backward adds the mean's gradient to the projection's input gradient
    inside its GEMM (a ``baddbmm`` taking ``grad_mean / N`` as the term
    it adds): one op where autograd spends three (the GEMM, the division
    by ``N``, the sum of the two gradients).

    Under autocast, float32 inputs are cast as autocast would cast them
    for the GEMM, and the mean reads the same copy of ``x``: where ``x``
    comes in float32 (CUDA autocast's LayerNorm output) the mean then
    needs no cast of its own, forward or backward.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        dtype = common.autocast_dtype(x.device.type)
        if dtype is not None:
            x, weight, bias = (
                t.to(dtype)
                if t is not None and t.dtype == torch.float32 else t
                for t in (x, weight, bias))
        with common.autocast_off(x.device.type):
            y, mean = F.linear(x, weight, bias), x.mean(dim=1)
        ctx.save_for_backward(x, weight)
        return y, mean

    @staticmethod
    def backward(ctx, grad_y, grad_mean):
        x, weight = ctx.saved_tensors
        B, N, C = x.shape
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # the weight as a batch of B views (stride 0): no copy
            grad_x = torch.baddbmm(
                grad_mean.unsqueeze(1),
                grad_y,
                weight.expand(B, *weight.shape),
                beta=1 / N)
        g = grad_y.reshape(B * N, -1)
        if ctx.needs_input_grad[1]:
            grad_w = g.t() @ x.reshape(B * N, C)
        if ctx.needs_input_grad[2]:
            grad_b = g.sum(dim=0)
        return grad_x, grad_w, grad_b


def attention(x: Tensor,
              src: Tensor,
              hw: HW,
              kv_hw: HW,
              w: AttentionWeights,
              fused: bool = False,
              joined=None) -> Tensor:
    """Vicinity attention for training (see :class:`VicinityCore`);
    ``fused``: its core and its gated clamps in Triton kernels
    (:mod:`.triton_attention`); ``joined``: ``w`` already joined
    (:func:`~.common.joined_block`), else joined here."""
    # keys and values in one GEMM (with the queries, without spatial
    # reduction); under autocast all weights in one cast
    one_source = src is x
    if joined is None:
        joined = common.joined_attention(w, x.device.type, one_source)
    ws, bs, w = joined
    if len(ws) != (1 if one_source else 2):
        raise ValueError(
            f'attention: weights joined for {len(ws)} input GEMM(s), but '
            f'keys and values come from {"x" if one_source else "src"}')
    q_lin, mean = ProjectionAndMean.apply(x, ws[0], bs[0])
    kv_lin = None if one_source else F.linear(src, ws[1], bs[1])
    ct = common.core_dtype(q_lin.dtype)
    wq, wk = common.query_key_weights(hw, kv_hw, x.device, ct)
    gate = common.channel_gate(x, w, mean)
    if fused:
        # imported here: triton is an optional dependency
        from .triton_attention import FusedGatedClamp, FusedVicinityCore
        o = FusedVicinityCore.apply(q_lin, kv_lin, wq, wk, w.num_heads)
        p = F.linear(o, w.out_weight, w.out_bias)
        return FusedGatedClamp.apply(p, gate)
    o = VicinityCore.apply(q_lin, kv_lin, wq, wk, w.num_heads)
    p = F.linear(o, w.out_weight, w.out_bias)
    return GatedClamp.apply(p, gate)


class GatedClamp(torch.autograd.Function):
    """The attention's last two clamps and its gate, on ``out_proj``'s
    output ``p`` and the gate ``g`` (``B x 1 x C``, a sigmoid's output).

    ``signed_clamp(p' + p' g)`` with ``p' = signed_clamp(p)`` and ``g >= 0``
    is ``sign(p) min(a + a g, 1e4)``, ``a = clamp(|p|)``: ``a + a g`` is
    one ``addcmul``, rounded as the readable ``p' + p' g``. Saves ``p`` and
    ``g`` only (autograd on those ops keeps four token maps: the sign, the
    magnitudes before and after each clamp).
    """

    @staticmethod
    def forward(ctx, p, gate):
        ctx.save_for_backward(p, gate)
        a = p.abs().clamp(common.CLAMP_MIN, common.CLAMP_MAX)
        return p.sign() * torch.addcmul(a, a, gate).clamp(max=common.CLAMP_MAX)

    @staticmethod
    def backward(ctx, grad_y):
        p, gate = ctx.saved_tensors
        lo, hi = common.CLAMP_MIN, common.CLAMP_MAX
        p_abs = p.abs()
        a = p_abs.clamp(lo, hi)
        g = common.clamp_grad(grad_y, torch.addcmul(a, a, gate), -math.inf, hi)
        g_a = common.clamp_grad(g, p_abs, lo, hi)
        grad_p = torch.addcmul(g_a, g_a, gate)  # g_a (1 + gate)
        grad_gate = (g * (p.sign() * a)).sum(dim=1, keepdim=True)
        return grad_p, grad_gate


class ConvGeluLinear(torch.autograd.Function):
    """``fc2(gelu(dwconv3x3(t)))`` of the MLP's hidden tokens ``t``.

    ``forward(t, hw, dw_weight, dw_bias, fc2_weight, fc2_bias)`` with ``t``
    ``B x N x C_h``; saves ``t`` and the weights in ``t``'s dtype (under
    autocast the small half-precision copies, so backward casts none
    again) and recomputes the conv and the GELU in backward. It allocates
    one hidden map in forward (the GELU runs in place on the conv's
    output) and two in backward besides the gradient it returns (fc2's and
    the GELU's gradients reuse the recomputed activation's buffer): each
    fewer is a pass through memory, and on CPU pages not faulted in again.
    With ``fused`` (a 7th argument, ``implementation('triton')``) the conv
    and the GELU run as one Triton kernel (:mod:`.triton_mlp`) each way: in
    forward it writes the activation once; in backward one kernel remakes
    the activation for fc2's weight gradient and another turns the
    gradient at it into the gradient at the conv's output in place, each
    recomputing the conv in registers (no pre-activation map).
    """

    @staticmethod
    def _hidden(t, hw, dw_weight, dw_bias):
        B, N, C = t.shape
        c = F.conv2d(
            t.view(B, *hw, C).permute(0, 3, 1, 2),
            dw_weight,
            dw_bias,
            padding=1,
            groups=C)
        return c.permute(0, 2, 3, 1).reshape(B, N, C)

    @staticmethod
    def _fused_gelu(t, hw, dw_weight, dw_bias):
        # imported here: triton is an optional dependency
        from .triton_mlp import dwconv_gelu
        B, N, C = t.shape
        return dwconv_gelu(t.view(B, *hw, C), dw_weight, dw_bias, 0,
                           hw[0]).view(B, N, C)

    @staticmethod
    def forward(ctx,
                t,
                hw,
                dw_weight,
                dw_bias,
                fc2_weight,
                fc2_bias,
                fused=False):
        dtype = t.dtype  # under autocast: fc1's output dtype
        ws = [w.to(dtype) for w in (dw_weight, dw_bias, fc2_weight, fc2_bias)]
        with common.autocast_off(t.device.type):
            if fused:
                a = ConvGeluLinear._fused_gelu(t, hw, ws[0], ws[1])
            else:
                # in place: one hidden map fewer to allocate (nothing
                # saves it)
                a = torch.ops.aten.gelu_(
                    ConvGeluLinear._hidden(t, hw, ws[0], ws[1]))
            y = F.linear(a, ws[2], ws[3])
        ctx.save_for_backward(t, ws[0], ws[1], ws[2])
        ctx.hw = hw
        ctx.fused = fused
        ctx.weight_layouts = [(w.dtype, w.stride())
                              for w in (dw_weight, dw_bias, fc2_weight,
                                        fc2_bias)]
        return y

    @staticmethod
    def backward(ctx, grad_y):
        t, dw_w, dw_b, fc2_w = ctx.saved_tensors
        dtype = t.dtype
        B, N, C = t.shape
        with common.autocast_off(t.device.type):
            if ctx.fused:
                a = ConvGeluLinear._fused_gelu(t, ctx.hw, dw_w, dw_b)
            else:
                c = ConvGeluLinear._hidden(t, ctx.hw, dw_w, dw_b)
                a = F.gelu(c)
            g = grad_y.to(dtype).reshape(B * N, -1)
            g_fc2_w = g.t() @ a.reshape(B * N, C)
            g_fc2_b = g.sum(dim=0)
            # a is spent: its buffer takes the gradient through fc2, then
            # through GELU (two hidden maps fewer to allocate). Only if the
            # conv laid it out token-major, as oneDNN and cuDNN do for this
            # channels-last input (and the Triton kernel); CUDA's native
            # depthwise kernel does not.
            spent = a.view(B * N, C) if a.is_contiguous() else None
            g_c = torch.mm(g, fc2_w, out=spent).view(B, N, C)
            if ctx.fused:
                from .triton_mlp import dwconv_gelu_backward
                dwconv_gelu_backward(
                    t.view(B, *ctx.hw, C), dw_w, dw_b, g_c.view(B, *ctx.hw, C))
            else:
                torch.ops.aten.gelu_backward.grad_input(g_c, c, grad_input=g_c)
            g_t, g_dw_w, g_dw_b = torch.ops.aten.convolution_backward(
                g_c.view(B, *ctx.hw, C).permute(0, 3, 1, 2),
                t.view(B, *ctx.hw, C).permute(0, 3, 1, 2), dw_w, [C], [1, 1],
                [1, 1], [1, 1], False, [0, 0], C, [True, True, True])
        g_t = g_t.permute(0, 2, 3, 1).reshape(B, N, C)
        # in each weight's dtype and strides: the conv's weight gradient
        # comes with a channels-last stride in its size-1 dimension, which
        # DDP's gradient buckets flag ("Grad strides do not match")
        grads = [
            common.in_layout(g, d, stride)
            for g, (d, stride) in zip((g_dw_w, g_dw_b, g_fc2_w,
                                       g_fc2_b), ctx.weight_layouts)
        ]
        return (g_t, None, *grads, None)


def mlp(x: Tensor,
        hw: HW,
        w: MlpWeights,
        joined: Optional[MlpWeights] = None,
        fused: bool = False) -> Tensor:
    """The MLP for training, without dropout (see :class:`ConvGeluLinear`);
    ``joined``: ``w`` already joined (:func:`~.common.joined_block`), else
    joined here; ``fused``: the conv and GELU in Triton kernels."""
    # under autocast: all six weights in one cast (common.joined)
    if joined is None:
        joined = common.joined([[t] for t in w], x.device.type)
    fc1_w, fc1_b, dw_w, dw_b, fc2_w, fc2_b = joined
    t = F.linear(x, fc1_w, fc1_b)
    return ConvGeluLinear.apply(t, tuple(hw), dw_w, dw_b, fc2_w, fc2_b, fused)


def drop_path_scales(x: Tensor, drop_probs) -> Tensor:
    """Stochastic depth's per-sample factors for residual branches with
    drop probabilities ``drop_probs`` (one per branch): ``count x B x 1 x
    1`` (for ``B x N x C`` tokens ``x``), each ``0`` or ``1 / (1 - p)``.

    Drawn as mmcv's ``DropPath`` draws them, branch after branch, in one
    call: four ops for a whole network instead of four per block. On CPU
    these are the numbers ``DropPath`` draws under the same seed; CUDA's
    generator gives one large draw other numbers than several small ones,
    so there only their distribution is the same.
    """
    keep = torch.tensor([1.0 - p for p in drop_probs],
                        dtype=x.dtype,
                        device=x.device).view(-1,
                                              *(1, ) * x.dim())
    shape = (len(drop_probs), x.shape[0]) + (1, ) * (x.dim() - 1)
    return (
        keep +
        torch.rand(shape, dtype=x.dtype, device=x.device)).floor_().div_(keep)


def add_dropped_path(x: Tensor, y: Tensor, scale: Tensor = None) -> Tensor:
    """``x + y * scale`` (``x + y`` without ``scale``), one pass over the
    tokens instead of DropPath's two and the add."""
    if scale is None:
        return x + y
    return _AddScaled.apply(x, y, scale)


class _AddScaled(torch.autograd.Function):
    """``x + y * scale`` for a constant ``scale``: one op each way
    (autograd's ``addcmul`` backward multiplies twice)."""

    @staticmethod
    def forward(ctx, x, y, scale):
        ctx.save_for_backward(scale)
        ctx.dtypes = x.dtype, y.dtype
        return torch.addcmul(x, y, scale)

    @staticmethod
    def backward(ctx, grad):
        scale, = ctx.saved_tensors
        x_dtype, y_dtype = ctx.dtypes
        return grad.to(x_dtype), (grad * scale).to(y_dtype), None
