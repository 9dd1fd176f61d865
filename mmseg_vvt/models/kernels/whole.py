# Copyright (c) mmseg-vvt contributors.
"""Whole-tensor inference kernels: where it runs, why.

Runs for inference on CUDA (and on CPU under autocast): a GPU wants a few
large kernels, not loops over bands and chunks, so every step here is one
op over the whole token map. Compared with the readable formulation it
makes fewer passes: the key sum rides along the ``KV`` product as an extra
column of ones (numerator and normaliser come out of one matmul per side),
and the six published clamps fold into four chains (see :func:`attention`).

Under autocast the projections run in the autocast dtype while the token
sums run in float32 (:func:`~.common.core_dtype`).
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from . import common
from .common import HW, AttentionWeights


def key_value_sums(k: Tensor, v: Tensor, wk: Tensor) -> Tensor:
    """``[KV | sum_j k~_j]``: ``B x h x 4d x (d+1)``.

    ``k``, ``v``: ``B x Nk x h x d`` (``k`` after its ReLU); ``wk``: the
    key grid's ``Nk x 4`` position factors. One matmul of ``k~`` with
    ``[v | 1]`` gives KV and the key sum (its extra column) together.
    """
    B, Nk, h, d = k.shape
    k_pos = (k.unsqueeze(3) * wk.view(Nk, 1, 4, 1)).reshape(B, Nk, h, 4 * d)
    v1 = F.pad(v, (0, 1), value=1.0)
    return torch.matmul(k_pos.permute(0, 2, 3, 1), v1.transpose(1, 2))


def clamp_kv(kv: Tensor) -> Tensor:
    """Clamp ``KV``, not the key-sum column."""
    d = kv.shape[-1] - 1
    return torch.cat([common.signed_clamp(kv[..., :d]), kv[..., d:]], dim=-1)


def attend(q: Tensor, wq: Tensor, kv: Tensor) -> Tensor:
    """Queries ``B x N x h x d`` (after ReLU) against clamped ``[KV | s]``.

    ``signed_clamp(signed_clamp(n) * z)`` with ``z > 0`` is
    ``sign(n) * clamp(clamp(|n|) * z)``: one sign, two clamps.
    Returns ``B x N x h*d``.
    """
    B, N, h, d = q.shape
    lo, hi = common.CLAMP_MIN, common.CLAMP_MAX
    q_pos = (q.unsqueeze(3) * wq.view(N, 1, 4, 1)).reshape(B, N, h, 4 * d)
    out = torch.matmul(q_pos.transpose(1, 2), kv)  # B x h x N x (d+1)
    # q, k >= 0 and the factors are >= 0, so z > 0: a plain clamp
    z = (out[..., d:] + common.DENOMINATOR_EPS).reciprocal().clamp(lo, hi)
    num = out[..., :d]
    o = num.sign() * (num.abs().clamp(lo, hi) * z).clamp(lo, hi)
    return o.transpose(1, 2).reshape(B, N, h * d)


def gated_output(o: Tensor, x: Tensor, w: AttentionWeights) -> Tensor:
    """``out_proj``, its clamp, the gate and the last clamp, folded.

    ``signed_clamp(p' + p' g)`` with ``p' = signed_clamp(p)`` and
    ``1 + g >= 1`` is ``sign(p) * min(clamp(|p|) (1 + g), 1e4)``.
    """
    p = F.linear(o, w.out_weight, w.out_bias)
    gate = 1.0 + common.channel_gate(x, w)
    return p.sign() * (p.abs().clamp(common.CLAMP_MIN, common.CLAMP_MAX) *
                       gate).clamp(max=common.CLAMP_MAX)


def attention(x: Tensor, src: Tensor, hw: HW, kv_hw: HW,
              w: AttentionWeights) -> Tensor:
    """Vicinity attention of queries ``x`` over keys/values from ``src``.

    ``x``: ``B x N x C`` on grid ``hw``; ``src``: ``B x Nk x C`` on grid
    ``kv_hw`` (``x`` itself unless spatially reduced). Returns ``B x N x C``.
    """
    B, N, _ = x.shape
    Nk = src.shape[1]
    h = w.num_heads
    d = w.q_weight.shape[0] // h
    q = F.linear(x, w.q_weight, w.q_bias)
    kv_proj = F.linear(src, torch.cat([w.k_weight, w.v_weight]),
                       torch.cat([w.k_bias, w.v_bias]))
    k, v = kv_proj.split(h * d, dim=-1)
    ct = common.core_dtype(q.dtype)
    wq, wk = common.query_key_weights(hw, kv_hw, x.device, ct)
    with torch.autocast(x.device.type, enabled=False):
        kv = clamp_kv(
            key_value_sums(
                F.relu(k).to(ct).view(B, Nk, h, d),
                v.to(ct).view(B, Nk, h, d), wk))
        o = attend(F.relu(q).to(ct).view(B, N, h, d), wq, kv)
    return gated_output(o.to(q.dtype), x, w)
