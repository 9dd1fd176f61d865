# Copyright (c) mmseg-vvt contributors.
"""CPU inference kernels: where they run, why.

Chosen by :func:`~.dispatch.select` for inference on CPU in float32 outside
autocast. A CPU is bound by memory traffic at high resolution, so these
keep working sets in cache: the attention runs a chunk of tokens at a time
(everything but ``KV`` and the gate is per token), the MLP a band of image
rows at a time (its hidden map is ``mlp_ratio`` times wider than the
tokens), a block's norms and residual adds ride along both, and the
elementwise clamp chains run in place on one temporary each. The
depthwise conv + GELU is one oneDNN kernel.

On a GPU the same loops would be thousands of small kernel launches: the
dispatcher never sends CUDA tensors here. Every function equals the
readable formulation (tests/test_models/test_kernels).
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from . import common
from .common import HW, AttentionWeights, MlpWeights, NormWeights

# Tokens per chunk of the attention and per band of the MLP: ~1-2k tokens
# keep a band's hidden map in cache on common CPUs.
CHUNK_TOKENS = 2048
BAND_TOKENS = 2048


def _signed_clamp_(t: Tensor) -> Tensor:
    """:func:`~.common.signed_clamp` on a temporary, in place."""
    return t.abs().clamp_(common.CLAMP_MIN, common.CLAMP_MAX).mul_(t.sign())


def _kv_weights(w: AttentionWeights):
    """The k and v projections stacked, to run as one GEMM."""
    return (torch.cat([w.k_weight,
                       w.v_weight]), torch.cat([w.k_bias, w.v_bias]))


def _key_value_sums(src, wk, kv_weights, h, d):
    """``[KV | sum_j k~_j]`` (``B x h x 4d x (d+1)``) over these tokens."""
    B, Nk, _ = src.shape
    k, v = F.linear(src, *kv_weights).split(h * d, dim=-1)
    k = k.relu_().view(B, Nk, h, 1, d)
    k_pos = (k * wk.view(Nk, 1, 4, 1)).view(B, Nk, h, 4 * d)
    v1 = F.pad(v.view(B, Nk, h, d), (0, 1), value=1.0)
    return torch.matmul(k_pos.permute(0, 2, 3, 1), v1.transpose(1, 2))


def _clamp_kv(kv, d):
    return torch.cat([_signed_clamp_(kv[..., :d]), kv[..., d:]], dim=-1)


def _attend(x, wq, kv, gate, w, residual=None):
    """Queries of these tokens against ``kv``, then out_proj and gate.

    The clamps fold as in :func:`~.whole.attend` and
    :func:`~.whole.gated_output`, each chain in place on one temporary.
    With ``residual`` the result is added into it in place.
    """
    B, N, _ = x.shape
    h = w.num_heads
    d = w.q_weight.shape[0] // h
    lo, hi = common.CLAMP_MIN, common.CLAMP_MAX
    q = F.linear(x, w.q_weight, w.q_bias).relu_().view(B, N, h, 1, d)
    q_pos = (q * wq.view(N, 1, 4, 1)).view(B, N, h, 4 * d)
    out = torch.matmul(q_pos.transpose(1, 2), kv)  # B x h x N x (d+1)
    z = (out[..., d:] + common.DENOMINATOR_EPS).reciprocal_().clamp_(lo, hi)
    num = out[..., :d]
    # written token-major (B x N x h x d) so out_proj reads it as is
    o = x.new_empty(B, N, h, d)
    o_heads = o.transpose(1, 2)
    torch.abs(num, out=o_heads)
    o_heads.clamp_(lo, hi).mul_(z).clamp_(lo, hi).mul_(num.sign_())
    p = F.linear(o.view(B, N, h * d), w.out_weight, w.out_bias)
    a = p.abs().clamp_(lo, hi).mul_(gate).clamp_(max=hi)
    if residual is None:
        return a.mul_(p.sign_())
    return residual.addcmul_(a, p.sign_())


def attention(x: Tensor, src: Tensor, hw: HW, kv_hw: HW,
              w: AttentionWeights) -> Tensor:
    """Vicinity attention, ``CHUNK_TOKENS`` tokens at a time per side."""
    B, N, _ = x.shape
    h = w.num_heads
    d = w.q_weight.shape[0] // h
    wq, wk = common.query_key_weights(hw, kv_hw, x.device, x.dtype)
    gate = 1.0 + common.channel_gate(x, w)
    step = CHUNK_TOKENS
    kv_w = _kv_weights(w)  # stacked once, not per chunk
    kv = sum(
        _key_value_sums(src[:, i:i + step], wk[i:i + step], kv_w, h, d)
        for i in range(0, src.shape[1], step))
    kv = _clamp_kv(kv, d)
    if N <= step:
        return _attend(x, wq, kv, gate, w)
    out = torch.empty_like(x)
    for i in range(0, N, step):
        out[:, i:i + step] = _attend(x[:, i:i + step], wq[i:i + step], kv,
                                     gate, w)
    return out


def attention_residual(x: Tensor,
                       hw: HW,
                       norm: NormWeights,
                       w: AttentionWeights,
                       inplace: bool = False) -> Tensor:
    """``x + attention(norm(x))`` with keys from the queries' own grid.

    The normalised tokens are never made whole: one pass over chunks
    accumulates KV and the gate's token mean from ``norm(chunk)``, a second
    recomputes ``norm(chunk)`` (cheaper than storing it) and adds the
    attention of each chunk to it. A chunk's result depends only on that
    chunk (and on KV and the gate, complete by then), so with ``inplace``
    the sum overwrites ``x``, which is returned.
    """
    B, N, C = x.shape
    h = w.num_heads
    d = w.q_weight.shape[0] // h
    step = CHUNK_TOKENS
    wq = common.cached_position_weights(*hw, x.device, x.dtype)
    kv_w = _kv_weights(w)
    kv, total = 0, 0
    for i in range(0, N, step):
        xn = norm(x[:, i:i + step])
        kv = kv + _key_value_sums(xn, wq[i:i + step], kv_w, h, d)
        total = total + xn.sum(dim=1)
    kv = _clamp_kv(kv, d)
    hidden = torch.relu(F.linear(total / N, w.gate_weight1))
    gate = 1.0 + torch.sigmoid(F.linear(hidden, w.gate_weight2)).unsqueeze(1)
    out = x if inplace else x.clone()
    for i in range(0, N, step):
        _attend(
            norm(x[:, i:i + step]),
            wq[i:i + step],
            kv,
            gate,
            w,
            residual=out[:, i:i + step])
    return out


def fused_conv_gelu_available(x: Tensor) -> bool:
    """Whether oneDNN's conv + GELU kernel can take ``x``: fp32 CPU, no
    autograd (the op has no derivative) and a torch built with oneDNN."""
    return (x.device.type == 'cpu' and x.dtype == torch.float32
            and not (torch.is_grad_enabled() and x.requires_grad)
            and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled
            and hasattr(torch.ops.mkldnn, '_convolution_pointwise'))


def dwconv_gelu(x: Tensor, weight: Tensor, bias: Tensor,
                padding=(1, 1)) -> Tensor:
    """``gelu(depthwise_conv3x3(x))`` on an NCHW (view of NHWC) map.

    One oneDNN kernel with GELU as a post-op where it can run (the conv
    output is not written and read back for a separate GELU); it differs
    from ``F.gelu`` by rounding (~1e-6). Elsewhere the two ops.
    """
    groups = weight.shape[0]
    if fused_conv_gelu_available(x):
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias,
                                                       list(padding), [1, 1],
                                                       [1, 1], groups, 'gelu',
                                                       [], 'none')
    return F.gelu(F.conv2d(x, weight, bias, 1, padding, 1, groups))


def mlp(x: Tensor, hw: HW, w: MlpWeights) -> Tensor:
    """The MLP; by bands of rows when the map is large."""
    if x.shape[1] > BAND_TOKENS:
        return mlp_banded(x, hw, w)
    B, N, _ = x.shape
    H, W = hw
    t = F.linear(x, w.fc1_weight, w.fc1_bias)
    t = dwconv_gelu(
        t.view(B, H, W, -1).permute(0, 3, 1, 2), w.dw_weight, w.dw_bias)
    return F.linear(
        t.permute(0, 2, 3, 1).reshape(B, N, -1), w.fc2_weight, w.fc2_bias)


def mlp_banded(x: Tensor,
               hw: HW,
               w: MlpWeights,
               norm: NormWeights = None,
               residual: bool = False) -> Tensor:
    """The MLP a band of rows at a time.

    Made whole at high resolution the hidden map is the network's largest
    tensor and streams through memory four times; per band it stays in
    cache, and peak memory no longer grows with ``mlp_ratio x pixels``.
    ``fc1`` runs once per row: the last two hidden rows of a band stay at
    the top of the band buffer as the 3x3 conv's context for the next band,
    so each band finishes the conv rows up to one before its end. The GEMMs
    write straight into the buffer and the output.

    With ``norm`` the band's rows are normalised on the fly; with
    ``residual`` the result is added into ``x`` in place (rows are written
    only after every band that reads them has run) and ``x`` is returned:
    the block's ``x + mlp(norm2(x))``.
    """
    B, N, C = x.shape
    H, W = hw
    hidden_dims, out_dims = w.fc1_weight.shape[0], w.fc2_weight.shape[0]
    rows = max(1, BAND_TOKENS // W)
    x = x.view(B, H, W, C)
    out = x if residual else x.new_empty(B, H, W, out_dims)
    buf = x.new_empty(rows + 2, W, hidden_dims)
    # fc1's bias rides in the GEMM as a row of the weight against a column
    # of ones beside the band's tokens: cheaper than broadcasting it into
    # the 8x wider output first (what addmm does)
    w1 = torch.cat([w.fc1_weight.t(), w.fc1_bias[None]])
    rows_aug = x.new_empty(rows * W, C + 1)
    rows_aug[:, C] = 1
    w2 = w.fc2_weight.t()
    for b in range(B):
        kept = 0  # hidden rows [r0 - kept, r0) at the top of buf
        done = 0  # output rows [0, done) are finished
        for r0 in range(0, H, rows):
            r1 = min(r0 + rows, H)
            n = kept + r1 - r0
            rows_in = x[b, r0:r1]
            if norm is not None:
                rows_in = norm(rows_in)
            band_aug = rows_aug[:(r1 - r0) * W]
            band_aug[:, :C] = rows_in.reshape(-1, C)
            torch.mm(band_aug, w1, out=buf[kept:n].view(-1, hidden_dims))
            # zero padding is right only at the image border: output rows
            # next to a band edge inside the image wait for the next band
            stop = H if r1 == H else r1 - 1
            first = r0 - kept
            hidden = buf[None, :n].permute(0, 3, 1, 2)  # channels-last
            if done - first == 1 and r1 - stop == 1:
                # inside the image the buffer is exactly the context of the
                # rows to finish: no row padding, no row computed to be
                # dropped
                t = dwconv_gelu(hidden, w.dw_weight, w.dw_bias, (0, 1))
                t = t[0].permute(1, 2, 0)
            else:
                t = dwconv_gelu(hidden, w.dw_weight, w.dw_bias)
                t = t[0].permute(1, 2, 0)[done - first:stop - first]
            rows_out = out[b, done:stop].view(-1, out_dims)
            if residual:
                rows_out.addmm_(t.reshape(-1, hidden_dims),
                                w2).add_(w.fc2_bias)
            else:
                torch.addmm(
                    w.fc2_bias, t.reshape(-1, hidden_dims), w2, out=rows_out)
            kept = min(2, n)
            if n >= 2 * kept:  # no overlap: copy the rows directly
                buf[:kept].copy_(buf[n - kept:n])
            else:
                buf[:kept] = buf[n - kept:n].clone()
            done = stop
    return out.view(B, N, out_dims)


def fuses_block(x: Tensor, sr_ratio: int) -> bool:
    """Whether :func:`block` pays off (and applies) for these tokens."""
    return sr_ratio == 1 and x.shape[1] > max(BAND_TOKENS, CHUNK_TOKENS)


def block(x: Tensor,
          hw: HW,
          norm1: NormWeights,
          attn: AttentionWeights,
          norm2: NormWeights,
          mlp_weights: MlpWeights,
          inplace: bool = False) -> Tensor:
    """``x + attn(norm1(x))``, then ``+ mlp(norm2(.))``, at inference.

    The norms and residual adds ride along the chunked attention and the
    banded MLP, so the token map is not streamed through memory once per
    step. With ``inplace`` the result overwrites ``x``.
    """
    x = attention_residual(x, hw, norm1, attn, inplace=inplace)
    return mlp_banded(x, hw, mlp_weights, norm=norm2, residual=True)


def contiguous_nchw(x: Tensor, step: int = 2048) -> Tensor:
    """A contiguous copy of an NCHW view of NHWC memory.

    Transposed ``step`` pixels at a time, so reads and writes stay in cache
    (a single strided copy thrashes it at stage-1 sizes).
    """
    if x.is_contiguous():
        return x
    B, C, H, W = x.shape
    tokens = x.permute(0, 2, 3, 1).reshape(B, H * W, C)  # a view
    out = x.new_empty(B, C, H * W)
    for i in range(0, H * W, step):
        out[:, :, i:i + step] = tokens[:, i:i + step].transpose(1, 2)
    return out.view(B, C, H, W)
