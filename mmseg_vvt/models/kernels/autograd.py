# Copyright (c) mmseg-vvt contributors.
"""Memory-lean training kernels: where they run, why.

Chosen by :func:`~.dispatch.select` whenever gradients are needed, on any
device. Autograd on the readable formulation keeps every intermediate of
the attention alive until backward (the ``4d``-wide position-modulated
copies, each clamp's sign / magnitude / mask) and replays each op's
backward as its own kernel. The functions here save only what cannot be
recomputed cheaply and write their backward by hand:

* :class:`VicinityCore` saves the projections' outputs ``q`` and ``[k|v]``
  (in their autocast dtype) and the small ``[KV | sum_j k~_j]``; the
  modulated copies, the normaliser and every clamp mask are recomputed.
* :class:`ConvGeluLinear` (the MLP after ``fc1``) saves only ``fc1``'s
  output; the conv output and the GELU are recomputed, so one hidden map
  is kept instead of three.

Their forward and gradients equal the readable formulation's, published
clamps included (tests/test_models/test_kernels, gradcheck in float64).
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from . import common
from .common import HW, AttentionWeights, MlpWeights


def _in_clamp(t_abs: Tensor) -> Tensor:
    """Where ``clamp(|t|, lo, hi)`` passes the gradient (``lo <= |t| <= hi``,
    as torch's clamp does), as a boolean mask (multiplied in as is)."""
    return (t_abs >= common.CLAMP_MIN) & (t_abs <= common.CLAMP_MAX)


def _modulate(t: Tensor, w: Tensor) -> Tensor:
    """``B x N x h x d`` to ``B x h x N x 4d``: ``[t cos a, ..., t sin b]``."""
    B, N, h, d = t.shape
    return (t.unsqueeze(3) * w.view(N, 1, 4, 1)).reshape(B, N, h,
                                                         4 * d).transpose(
                                                             1, 2)


def _demodulate(g: Tensor, w: Tensor) -> Tensor:
    """The adjoint of :func:`_modulate`: ``B x h x N x 4d`` to
    ``B x N x h x d``."""
    B, h, N, d4 = g.shape
    g = g.transpose(1, 2).reshape(B, N, h, 4, d4 // 4)
    return (g * w.view(N, 1, 4, 1)).sum(dim=3)


class VicinityCore(torch.autograd.Function):
    """From the projections to the heads' output, before ``out_proj``.

    ``forward(q_lin, kv_lin, wq, wk, num_heads)``: ``q_lin`` (``B x N x hd``)
    and ``kv_lin`` (``B x Nk x 2hd``, keys then values) are the linear
    projections before the ReLUs; ``wq`` / ``wk`` the grids' position
    factors. Returns ``B x N x hd`` (the clamped ``o_i``) in the token sums'
    dtype (:func:`~.common.core_dtype`).
    """

    @staticmethod
    def forward(ctx, q_lin, kv_lin, wq, wk, num_heads):
        ct = common.core_dtype(q_lin.dtype)
        with torch.autocast(q_lin.device.type, enabled=False):
            kvs = VicinityCore._key_value_sums(kv_lin, wk, num_heads, ct)
            o, _ = VicinityCore._queries(q_lin, wq, kvs, num_heads, ct)
        ctx.save_for_backward(q_lin, kv_lin, wq, wk, kvs)
        ctx.num_heads = num_heads
        B, h, N, d = o.shape
        return o.transpose(1, 2).reshape(B, N, h * d)

    @staticmethod
    def _key_value_sums(kv_lin, wk, h, ct):
        """``[KV | s]`` before KV's clamp: ``B x h x 4d x (d+1)``."""
        B, Nk, hd2 = kv_lin.shape
        d = hd2 // 2 // h
        k, v = kv_lin.to(ct).view(B, Nk, 2, h, d).unbind(2)
        k_pos = _modulate(F.relu(k), wk)  # B x h x Nk x 4d
        v1 = F.pad(v.transpose(1, 2), (0, 1), value=1.0)
        return k_pos.transpose(-2, -1) @ v1

    @staticmethod
    def _queries(q_lin, wq, kvs, h, ct, keep=False):
        """The output ``o`` (``B x h x N x d``) and, with ``keep``, what its
        backward needs."""
        B, N, hd = q_lin.shape
        d = hd // h
        lo, hi = common.CLAMP_MIN, common.CLAMP_MAX
        q_pos = _modulate(F.relu(q_lin.to(ct).view(B, N, h, d)), wq)
        kv = kvs[..., :d]
        kv_c = torch.cat([common.signed_clamp(kv), kvs[..., d:]], dim=-1)
        out = q_pos @ kv_c  # B x h x N x (d+1)
        r = (out[..., d:] + common.DENOMINATOR_EPS).reciprocal()
        z = r.clamp(lo, hi)  # r > 0: the signed clamp is a clamp
        num = out[..., :d]
        num_abs = num.abs()
        p_abs = num_abs.clamp(lo, hi)
        o_abs = p_abs * z
        if keep:  # backward needs the pieces, not o
            return None, (q_pos, kv_c, r, z, num, num_abs, p_abs, o_abs)
        return num.sign() * o_abs.clamp(lo, hi), None

    @staticmethod
    def backward(ctx, grad_o):
        q_lin, kv_lin, wq, wk, kvs = ctx.saved_tensors
        h = ctx.num_heads
        B, N, hd = q_lin.shape
        d = hd // h
        ct = common.core_dtype(q_lin.dtype)
        with torch.autocast(q_lin.device.type, enabled=False):
            _, (q_pos, kv_c, r, z, num, num_abs, p_abs,
                o_abs) = VicinityCore._queries(
                    q_lin, wq, kvs, h, ct, keep=True)
            g = grad_o.to(ct).view(B, N, h, d).transpose(1, 2)
            # o = sign(num) clamp(p_abs z), p_abs = clamp(|num|)
            g = g * _in_clamp(o_abs)
            g_num = g * z * _in_clamp(num_abs)
            g_z = (g * num.sign() * p_abs).sum(dim=-1, keepdim=True)
            # z = clamp(r), r = 1 / den: d r / d den = -r^2
            g_den = -g_z * _in_clamp(r) * r * r
            g_out = torch.cat([g_num, g_den], dim=-1)  # B x h x N x (d+1)
            g_q = _demodulate(g_out @ kv_c.transpose(-2, -1), wq)
            g_q = g_q * (q_lin.view(B, N, h, d) > 0)
            g_kvs = q_pos.transpose(-2, -1) @ g_out  # B x h x 4d x (d+1)
            g_kvs = torch.cat([
                g_kvs[..., :d] * _in_clamp(kvs[..., :d].abs()), g_kvs[..., d:]
            ],
                              dim=-1)
            # kvs = k~^T [v | 1]
            Nk = kv_lin.shape[1]
            k, v = kv_lin.to(ct).view(B, Nk, 2, h, d).unbind(2)
            k_pos = _modulate(F.relu(k), wk)
            v1 = F.pad(v.transpose(1, 2), (0, 1), value=1.0)
            g_k = _demodulate(v1 @ g_kvs.transpose(-2, -1), wk) * (k > 0)
            g_v = (k_pos @ g_kvs[..., :d]).transpose(1, 2)
            g_kv = torch.stack([g_k, g_v], dim=2).view(B, Nk, 2 * hd)
        return (g_q.reshape(B, N, hd).to(q_lin.dtype), g_kv.to(kv_lin.dtype),
                None, None, None)


def attention(x: Tensor, src: Tensor, hw: HW, kv_hw: HW,
              w: AttentionWeights) -> Tensor:
    """Vicinity attention for training (see :class:`VicinityCore`)."""
    q_lin = F.linear(x, w.q_weight, w.q_bias)
    kv_lin = F.linear(src, torch.cat([w.k_weight, w.v_weight]),
                      torch.cat([w.k_bias, w.v_bias]))
    ct = common.core_dtype(q_lin.dtype)
    wq, wk = common.query_key_weights(hw, kv_hw, x.device, ct)
    o = VicinityCore.apply(q_lin, kv_lin, wq, wk, w.num_heads)
    p = F.linear(o.to(q_lin.dtype), w.out_weight, w.out_bias)
    return GatedClamp.apply(p, 1.0 + common.channel_gate(x, w))


class GatedClamp(torch.autograd.Function):
    """The attention's last two clamps and its gate, on ``out_proj``'s
    output ``p`` and the gate ``G = 1 + g`` (``B x 1 x C``).

    ``signed_clamp(p' G)`` with ``p' = signed_clamp(p)`` and ``G >= 1`` is
    ``sign(p) min(clamp(|p|) G, 1e4)``. Saves ``p`` and ``G`` only (autograd
    on those ops keeps four token maps: the sign, the magnitudes before and
    after each clamp).
    """

    @staticmethod
    def forward(ctx, p, gate):
        ctx.save_for_backward(p, gate)
        return GatedClamp._forward(p, gate)[0]

    @staticmethod
    def _forward(p, gate):
        a = p.abs().clamp(common.CLAMP_MIN, common.CLAMP_MAX)
        y_abs = a * gate
        return p.sign() * y_abs.clamp(max=common.CLAMP_MAX), a, y_abs

    @staticmethod
    def backward(ctx, grad_y):
        p, gate = ctx.saved_tensors
        _, a, y_abs = GatedClamp._forward(p, gate)
        g = grad_y * (y_abs <= common.CLAMP_MAX)
        grad_p = g * gate * _in_clamp(p.abs())
        grad_gate = (g * p.sign() * a).sum(dim=1, keepdim=True)
        return grad_p, grad_gate


class ConvGeluLinear(torch.autograd.Function):
    """``fc2(gelu(dwconv3x3(t)))`` of the MLP's hidden tokens ``t``.

    ``forward(t, hw, dw_weight, dw_bias, fc2_weight, fc2_bias)`` with ``t``
    ``B x N x C_h``; saves ``t`` alone and recomputes the conv and the GELU
    in backward.
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
    def forward(ctx, t, hw, dw_weight, dw_bias, fc2_weight, fc2_bias):
        dtype = t.dtype  # under autocast: fc1's output dtype
        ws = [w.to(dtype) for w in (dw_weight, dw_bias, fc2_weight, fc2_bias)]
        with torch.autocast(t.device.type, enabled=False):
            a = F.gelu(ConvGeluLinear._hidden(t, hw, ws[0], ws[1]))
            y = F.linear(a, ws[2], ws[3])
        ctx.save_for_backward(t, dw_weight, dw_bias, fc2_weight)
        ctx.hw = hw
        return y

    @staticmethod
    def backward(ctx, grad_y):
        t, dw_weight, dw_bias, fc2_weight = ctx.saved_tensors
        dtype = t.dtype
        B, N, C = t.shape
        with torch.autocast(t.device.type, enabled=False):
            dw_w, dw_b = dw_weight.to(dtype), dw_bias.to(dtype)
            c = ConvGeluLinear._hidden(t, ctx.hw, dw_w, dw_b)
            a = F.gelu(c)
            g = grad_y.to(dtype).reshape(B * N, -1)
            g_fc2_w = g.t() @ a.reshape(B * N, C)
            g_fc2_b = g.sum(dim=0)
            g_c = torch.ops.aten.gelu_backward(
                (g @ fc2_weight.to(dtype)).view(B, N, C), c)
            g_t, g_dw_w, g_dw_b = torch.ops.aten.convolution_backward(
                g_c.view(B, *ctx.hw, C).permute(0, 3, 1, 2),
                t.view(B, *ctx.hw, C).permute(0, 3, 1, 2), dw_w, [C], [1, 1],
                [1, 1], [1, 1], False, [0, 0], C, [True, True, True])
        g_t = g_t.permute(0, 2, 3, 1).reshape(B, N, C)
        return (g_t, None, g_dw_w.to(dw_weight.dtype),
                g_dw_b.to(dw_bias.dtype), g_fc2_w.to(fc2_weight.dtype),
                g_fc2_b.to(fc2_weight.dtype))


def mlp(x: Tensor, hw: HW, w: MlpWeights) -> Tensor:
    """The MLP for training, without dropout (see :class:`ConvGeluLinear`)."""
    t = F.linear(x, w.fc1_weight, w.fc1_bias)
    return ConvGeluLinear.apply(t, tuple(hw), w.dw_weight, w.dw_bias,
                                w.fc2_weight, w.fc2_bias)
