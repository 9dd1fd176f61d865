# Copyright (c) mmseg-vvt contributors.
"""Whole-tensor inference kernels: where it runs, why.

Runs for inference on CUDA (and on CPU under autocast): a GPU wants a few
large kernels, not loops over bands and chunks, so every step here is one
op over the whole token map. Compared with the readable formulation it
makes fewer passes: the key sum rides along the ``KV`` product as an extra
column of ones (numerator and normaliser come out of one matmul per side),
and the six published clamps fold into four chains (see :func:`attention`).
The MLP's hidden map (``mlp_ratio`` times the tokens' width) is the
largest tensor at high resolution; above :data:`MLP_BAND_BYTES` it is made a
few large bands of rows at a time (:func:`mlp`), so peak memory stops
growing with it while each band is still a handful of large kernels. The
attention's position-modulated keys and queries (``4d`` wide, in float32)
come next; above :data:`ATTENTION_BAND_BYTES` they are made a few bands of
tokens at a time (:func:`key_value_sums`, :func:`attend`). Under
``implementation('triton')`` (``fused``) the attention's core and gated
clamp run in the Triton kernels instead, which make nothing ``4d`` wide.

Under autocast the projections run in the autocast dtype while the token
sums run in float32 (:func:`~.common.core_dtype`), and each module's weights
are cast in one op (:func:`~.common.joined`).
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from . import common
from .common import HW, AttentionWeights, MlpWeights

# Largest hidden map (bytes) :func:`mlp` makes in one piece: above it, bands
# of rows about this size (2048x2048 fp32 at stage 1: 8 bands of 64 rows).
# Each band is a few launches, and batch-1 inference on a GPU is bound by
# launches: the bands are as large as the memory target at 2048x2048 allows
# (half Swin-T's peak; measured in docs/benchmark.md).
MLP_BAND_BYTES = 96 * 2**20
# Largest position-modulated key or query map (bytes) the attention makes in
# one piece: above it, bands of tokens about this size (VVT-S's stage 1 at
# batch 1: 2 bands of the 192 MB map at 2048x2048, none at 1024x1024).
ATTENTION_BAND_BYTES = 96 * 2**20


def even_bands(n: int, most: int):
    """``range(n)`` as the fewest ``(start, stop)`` bands of at most
    ``most`` (at least 1), their sizes differing by one at most: the peak
    is the largest band, so no band is larger than it has to be."""
    if n <= 0:
        return []
    count = -(-n // max(1, most))
    size, extra = divmod(n, count)
    starts = [i * size + min(i, extra) for i in range(count + 1)]
    return list(zip(starts[:-1], starts[1:]))


def _token_bands(t: Tensor, dtype: torch.dtype):
    """``(start, stop)`` token ranges of ``t`` (``B x N x h*d``) whose
    ``4d``-wide maps in ``dtype`` fit :data:`ATTENTION_BAND_BYTES`."""
    B, N, hd = t.shape
    token_bytes = B * 4 * hd * dtype.itemsize
    return even_bands(N, ATTENTION_BAND_BYTES // token_bytes)


def _by_heads(t: Tensor, heads: int, dtype: torch.dtype) -> Tensor:
    """``t`` (``B x n x h*d``) in ``dtype`` as ``B x n x h x d``."""
    return t.to(dtype).unflatten(-1, (heads, -1))


def key_value_sums(k: Tensor, v: Tensor, wk: Tensor, heads: int,
                   dtype: torch.dtype) -> Tensor:
    """``[KV | sum_j k~_j]`` in ``dtype``: ``B x h x 4d x (d+1)``.

    ``k``, ``v``: the key and value projections, ``B x Nk x h*d`` (``k``
    after its ReLU); ``wk``: the key grid's ``Nk x 4`` position factors.
    One matmul of ``k~`` with ``[v | 1]`` gives KV and the key sum (its
    extra column) together; over bands of tokens the bands' sums add up.
    """
    kv = None
    for s, e in _token_bands(k, dtype):
        part = _key_value_sums(
            _by_heads(k[:, s:e], heads, dtype),
            _by_heads(v[:, s:e], heads, dtype), wk[s:e])
        kv = part if kv is None else kv.add_(part)
    return kv


def _key_value_sums(k: Tensor, v: Tensor, wk: Tensor) -> Tensor:
    """:func:`key_value_sums` of ``k``, ``v``: ``B x n x h x d``, ``k``
    rectified."""
    B, Nk, h, d = k.shape
    k_pos = (k.unsqueeze(3) * wk.view(Nk, 1, 4, 1)).reshape(B, Nk, h, 4 * d)
    v1 = F.pad(v, (0, 1), value=1.0)
    return torch.matmul(k_pos.permute(0, 2, 3, 1), v1.transpose(1, 2))


def clamp_kv(kv: Tensor) -> Tensor:
    """Clamp ``KV`` in place, not the key-sum column."""
    common.signed_clamp_(kv[..., :kv.shape[-1] - 1])
    return kv


def attend(q: Tensor, wq: Tensor, kv: Tensor) -> Tensor:
    """Queries against clamped ``[KV | s]`` (``B x h x 4d x (d+1)``).

    ``q``: the query projection, ``B x N x h*d``, after its ReLU; ``wq``:
    the query grid's ``N x 4`` position factors. Returns ``B x N x h*d``
    in ``q``'s dtype, made band by band of tokens when the ``4d``-wide map
    would pass :data:`ATTENTION_BAND_BYTES`.
    """
    h, dtype = kv.shape[1], kv.dtype
    bands = _token_bands(q, dtype)
    if len(bands) == 1:
        return _attend(_by_heads(q, h, dtype), wq, kv).to(q.dtype)
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    for s, e in bands:
        out[:, s:e] = _attend(_by_heads(q[:, s:e], h, dtype), wq[s:e], kv)
    return out


def _attend(q: Tensor, wq: Tensor, kv: Tensor) -> Tensor:
    """:func:`attend` of rectified queries ``B x n x h x d`` in ``kv``'s
    dtype, the result in that dtype too.

    ``signed_clamp(signed_clamp(n) * z)`` with ``z > 0`` is
    ``sign(n) * clamp(clamp(|n|) * z)``: one sign, two clamps.
    """
    B, N, h, d = q.shape
    lo, hi = common.CLAMP_MIN, common.CLAMP_MAX
    q_pos = (q.unsqueeze(3) * wq.view(N, 1, 4, 1)).reshape(B, N, h, 4 * d)
    out = torch.matmul(q_pos.transpose(1, 2), kv)  # B x h x N x (d+1)
    del q_pos  # 4d wide: at high resolution, the peak if kept to the end
    # q, k >= 0 and the factors are >= 0, so z > 0: a plain clamp
    z = (out[..., d:] + common.DENOMINATOR_EPS).reciprocal().clamp(lo, hi)
    num = out[..., :d]
    o = num.sign() * (num.abs().clamp(lo, hi) * z).clamp(lo, hi)
    return o.transpose(1, 2).reshape(B, N, h * d)


def gated_output(p: Tensor, x: Tensor, w: AttentionWeights) -> Tensor:
    """``out_proj``'s clamp, the gate and the last clamp, folded, on
    ``out_proj``'s output ``p``, which it overwrites.

    ``signed_clamp(p' + p' g)`` with ``p' = signed_clamp(p)`` and
    ``g >= 0`` is ``sign(p) * min(m + m g, 1e4)`` with ``m = clamp(|p|)``.
    """
    gate = common.channel_gate(x, w)
    sign = p.sign()
    # in place: one token map beside p at a time, not four
    m = p.abs_().clamp_(common.CLAMP_MIN, common.CLAMP_MAX)
    # (a gate of a wider dtype widens the result, as the formulation's would)
    m = m.addcmul_(m, gate) if gate.dtype == m.dtype else m + m * gate
    return m.clamp_(max=common.CLAMP_MAX).mul_(sign)


def attention(x: Tensor,
              src: Tensor,
              hw: HW,
              kv_hw: HW,
              w: AttentionWeights,
              fused: bool = False) -> Tensor:
    """Vicinity attention of queries ``x`` over keys/values from ``src``.

    ``x``: ``B x N x C`` on grid ``hw``; ``src``: ``B x Nk x C`` on grid
    ``kv_hw`` (``x`` itself unless spatially reduced). Returns ``B x N x C``.
    ``fused``: the core (from the projections to the clamped output) and
    the gated clamp in the Triton kernels of :mod:`.triton_attention`.
    """
    # under autocast all weights in one cast, not one each (common.joined)
    # and without spatial reduction q, k and v in one GEMM
    one_source = src is x
    ws, bs, w = common.joined_attention(w, x.device.type, one_source)
    if fused:
        return _fused_attention(x, src, hw, kv_hw, ws, bs, w)
    h = w.num_heads
    d = w.q_weight.shape[0] // h
    # q and k rectified in place, in one op where they share a GEMM
    if one_source:
        qkv = F.linear(x, ws[0], bs[0])
        qkv[..., :2 * h * d].relu_()
        q, k, v = qkv.split(h * d, dim=-1)
    else:
        q = F.linear(x, ws[0], bs[0]).relu_()
        k_v = F.linear(src, ws[1], bs[1])
        k_v[..., :h * d].relu_()
        k, v = k_v.split(h * d, dim=-1)
        del k_v
    ct = common.core_dtype(q.dtype)
    wq, wk = common.query_key_weights(hw, kv_hw, x.device, ct)
    with common.autocast_off(x.device.type):
        kv = clamp_kv(key_value_sums(k, v, wk, h, ct))
        o = attend(q, wq, kv)
    del q, k, v  # dead: free them before the gate's C-wide maps
    p = F.linear(o, w.out_weight, w.out_bias)
    del o
    return gated_output(p, x, w)


def _fused_attention(x: Tensor, src: Tensor, hw: HW, kv_hw: HW, ws, bs,
                     w: AttentionWeights) -> Tensor:
    """:func:`attention` with its core and gated clamp in Triton kernels:
    four launches instead of some 25 ops, and nothing ``4d`` wide in
    memory (so no bands of tokens)."""
    # imported here: triton is an optional dependency
    from .triton_attention import FusedGatedClamp, FusedVicinityCore

    # the kernels rectify q and k as they read them
    q_in = F.linear(x, ws[0], bs[0])
    kv_in = None if src is x else F.linear(src, ws[1], bs[1])
    ct = common.core_dtype(q_in.dtype)
    wq, wk = common.query_key_weights(hw, kv_hw, x.device, ct)
    o = FusedVicinityCore.apply(q_in, kv_in, wq, wk, w.num_heads)
    del q_in, kv_in
    p = F.linear(o, w.out_weight, w.out_bias)
    del o
    # p and the gate come out of GEMMs of one dtype (autocast's, or the
    # weights'), so the kernel's output in p's dtype is the readable one's
    return FusedGatedClamp.apply(p, common.channel_gate(x, w))


def add_into(x: Tensor, y: Tensor) -> Tensor:
    """``x + y``, written into ``x`` when the sum has ``x``'s dtype (at high
    resolution a token map fewer at the peak); the caller gives up ``x``."""
    # (plain Python: torch.promote_types would dispatch an op per call)
    if y.dtype == x.dtype or (x.dtype == torch.float32
                              and y.dtype in (torch.float16, torch.bfloat16)):
        return x.add_(y)
    return x + y


def mlp(x: Tensor, hw: HW, w: MlpWeights, fused: bool = False) -> Tensor:
    """``fc2(gelu(dwconv3x3(fc1(x))))`` of tokens ``x`` (``B x N x C``) on
    grid ``hw``, by bands of rows when the hidden map would pass
    :data:`MLP_BAND_BYTES`.

    A band of rows ``[r0, r1)`` runs ``fc1`` on one extra row each side
    (where the image has one) as the 3x3 conv's context, and keeps the conv
    rows of the band: the conv's zero padding then only touches rows that
    are dropped, or the image's own border. ``fused``: the conv and the GELU
    in one Triton kernel (:mod:`.triton_mlp`), which computes the band's
    rows only and writes the hidden map once.
    """
    B, N, C = x.shape
    H, W = hw
    w = MlpWeights(*common.joined([[t] for t in w], x.device.type))
    hidden = w.fc1_weight.shape[0]
    row_bytes = B * W * hidden * x.element_size()
    bands = even_bands(H, MLP_BAND_BYTES // row_bytes)
    if len(bands) == 1:
        return _mlp_rows(x, hw, w, 0, H, fused=fused)
    # fc2's output dtype: its weights' (cast under autocast), not x's
    out = x.new_empty(B, H, W, w.fc2_weight.shape[0], dtype=w.fc2_weight.dtype)
    for r0, r1 in bands:
        if B == 1:  # the band's rows are one block of out: fc2 writes there
            _mlp_rows(x, hw, w, r0, r1, out[0, r0:r1].view(-1, out.shape[-1]),
                      fused)
        else:
            out[:, r0:r1] = _mlp_rows(
                x, hw, w, r0, r1, fused=fused).view(B, r1 - r0, W, -1)
    return out.view(B, N, -1)


def _mlp_rows(x: Tensor,
              hw: HW,
              w: MlpWeights,
              r0: int,
              r1: int,
              out: Tensor = None,
              fused: bool = False) -> Tensor:
    """The MLP's output rows ``[r0, r1)``: ``B x (r1 - r0) W x C_out``;
    with ``out`` (``B (r1 - r0) W x C_out``, batch 1 only), written there
    (one copy fewer). ``fused``: see :func:`mlp`."""
    B, _, C = x.shape
    H, W = hw
    lo, hi = max(r0 - 1, 0), min(r1 + 1, H)
    t = F.linear(x.view(B, H, W, C)[:, lo:hi], w.fc1_weight, w.fc1_bias)
    if fused:
        # imported here: triton is an optional dependency
        from .triton_mlp import dwconv_gelu
        a = dwconv_gelu(t, w.dw_weight, w.dw_bias, r0 - lo, r1 - r0)
    else:
        # NHWC viewed as a channels-last NCHW map: the conv reads it in
        # place
        c = F.conv2d(
            t.permute(0, 3, 1, 2),
            w.dw_weight,
            w.dw_bias,
            padding=1,
            groups=t.shape[-1])[:, :, r0 - lo:r1 - lo]
        # nothing else reads the conv's output: GELU in place
        a = torch.ops.aten.gelu_(c).permute(0, 2, 3, 1)
    del t  # two hidden maps alive at a time, not three (inference only)
    # a: the band's activation, B x (r1 - r0) x W x hidden
    if out is not None:
        return torch.addmm(
            w.fc2_bias, a.reshape(out.shape[0], -1), w.fc2_weight.t(), out=out)
    return F.linear(a, w.fc2_weight, w.fc2_bias).reshape(B, (r1 - r0) * W, -1)
