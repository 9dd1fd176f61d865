# Copyright (c) mmseg-vvt contributors.
"""Vicinity attention: the token mixer of the Vicinity Vision Transformer.

Read this file beside ``VVT_SPEC.md`` ("Vicinity attention"). For a query
grid ``H x W`` with ``N = H * W`` tokens of width ``C`` the module computes,
per head of reduced width ``d = C / heads / fr_ratio``:

1. Feature Reduction Attention: ``q = ReLU(q_proj(x))``, ``k = ReLU(k_proj(x'))``,
   ``v = v_proj(x')`` (``x'`` = ``x``, or its spatial reduction when
   ``sr_ratio > 1``), each ``Linear(C, C / fr_ratio)``.
2. 2D locality by position reweighting: every head vector is expanded to
   ``4d`` as ``[t cos a, t sin a, t cos b, t sin b]`` with ``a = pi/2 * row / H``
   and ``b = pi/2 * col / W`` of its own grid, so that
   ``q~_i . k~_j = (q_i . k_j) (cos(a_i - a_j) + cos(b_i - b_j))``.
3. Linear attention: ``KV = sum_j k~_j v_j^T``, ``z_i = 1 / (q~_i . sum_j k~_j + 1e-4)``,
   ``o_i = (q~_i^T KV) z_i`` -- O(N d^2), never an N x N matrix.
4. ``out_proj`` back to ``C``; Feature Preserving Connection
   ``y = o + o * sigmoid(se_fc(mean_tokens(x)))``.

The published network passes ``KV``, ``z``, ``q~^T KV``, the product with
``z``, the ``out_proj`` output and ``y`` through :func:`signed_clamp`; the
checkpoints' outputs depend on it.

Two implementations with identical parameters (and state-dict keys) live
here. :class:`VicinityAttentionReference` is the spec written out literally,
kept as the reference the fast one is tested against.
:class:`VicinityAttention` computes the same function with fewer passes over
memory: the key sum rides along the ``KV`` product as an extra column of
ones, so numerator and normaliser come out of one matmul per side, and the
position-modulated copies are built in one broadcast.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

CLAMP_MIN = 1e-4
CLAMP_MAX = 1e4
DENOMINATOR_EPS = 1e-4


def signed_clamp(t: torch.Tensor) -> torch.Tensor:
    """``sign(t) * clamp(|t|, 1e-4, 1e4)``; exact zeros stay zero.

    Works in place on a temporary when autograd does not need the input,
    so inference makes one temporary instead of three.
    """
    if torch.is_grad_enabled() and t.requires_grad:
        return t.sign() * t.abs().clamp(CLAMP_MIN, CLAMP_MAX)
    return t.abs().clamp_(CLAMP_MIN, CLAMP_MAX).mul_(t.sign())


def position_weights(height: int, width: int, device: torch.device,
                     dtype: torch.dtype) -> torch.Tensor:
    """The ``N x 4`` factors ``[cos a, sin a, cos b, sin b]`` of a grid.

    Token ``i`` sits at row ``i // width`` and column ``i % width``
    (row-major, as ``flatten(2).transpose(1, 2)`` lays an NCHW map out);
    ``a = pi/2 * row / height`` and ``b = pi/2 * col / width``.
    """
    rows = torch.arange(height, device=device, dtype=torch.float32)
    cols = torch.arange(width, device=device, dtype=torch.float32)
    a = (math.pi / 2) * rows / height
    b = (math.pi / 2) * cols / width
    a = a[:, None].expand(height, width).reshape(-1)
    b = b[None, :].expand(height, width).reshape(-1)
    return torch.stack([a.cos(), a.sin(), b.cos(), b.sin()], dim=1).to(dtype)


class VicinityAttention(BaseModule):
    """Vicinity attention with feature reduction and a feature-preserving gate.

    Args:
        embed_dims (int): Token width ``C``.
        num_heads (int): Number of heads ``h``.
        fr_ratio (int): Feature-reduction ratio: q/k/v have ``C / fr_ratio``
            channels, ``d = C / h / fr_ratio`` per head. Default: 2.
        sr_ratio (int): Spatial-reduction ratio of keys and values (as in
            PVT); 1 disables it. Default: 1.
        init_cfg (dict, optional): Initialization config. Default: None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 fr_ratio: int = 2,
                 sr_ratio: int = 1,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        for name, value in (('embed_dims', embed_dims),
                            ('num_heads', num_heads), ('fr_ratio', fr_ratio),
                            ('sr_ratio', sr_ratio)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f'{name} must be a positive int, got {value!r}')
        if embed_dims % (num_heads * fr_ratio) != 0:
            raise ValueError(
                f'embed_dims ({embed_dims}) must be divisible by '
                f'num_heads x fr_ratio ({num_heads} x {fr_ratio} = '
                f'{num_heads * fr_ratio})')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.fr_ratio = fr_ratio
        self.sr_ratio = sr_ratio
        reduced = embed_dims // fr_ratio
        self.head_dims = reduced // num_heads

        self.q_proj = nn.Linear(embed_dims, reduced)
        self.k_proj = nn.Linear(embed_dims, reduced)
        self.v_proj = nn.Linear(embed_dims, reduced)
        self.out_proj = nn.Linear(reduced, embed_dims)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(
                embed_dims, embed_dims, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(embed_dims)
        # Feature Preserving Connection: a channel gate from the input.
        self.se_fc = nn.Sequential(
            nn.Linear(embed_dims, embed_dims, bias=False), nn.ReLU(),
            nn.Linear(embed_dims, embed_dims, bias=False), nn.Sigmoid())

    # -- shared pieces ----------------------------------------------------
    def _keys_values_source(self, x, hw_shape):
        """``x'`` and its grid: ``x`` itself, or ``norm(sr(x))``."""
        if self.sr_ratio == 1:
            return x, hw_shape
        B, N, C = x.shape
        H, W = hw_shape
        x_ = x.transpose(1, 2).reshape(B, C, H, W)
        x_ = self.sr(x_)
        kv_hw = x_.shape[2:]
        x_ = self.norm(x_.flatten(2).transpose(1, 2))
        return x_, (kv_hw[0], kv_hw[1])

    def _gate(self, x):
        """``sigmoid(se_fc(mean_over_tokens(x)))``: ``B x 1 x C``."""
        return self.se_fc(x.mean(dim=1)).unsqueeze(1)

    def _split_heads(self, t):
        B, N, _ = t.shape
        return t.view(B, N, self.num_heads, self.head_dims).transpose(1, 2)

    # -- fast path --------------------------------------------------------
    # Tokens per chunk of the chunked inference path (see ``forward``).
    chunk_tokens = 2048

    def forward(self, x: torch.Tensor, hw_shape) -> torch.Tensor:
        """Apply vicinity attention.

        Args:
            x (Tensor): ``B x N x C`` tokens on an ``H x W`` grid.
            hw_shape (tuple[int, int]): ``(H, W)`` with ``H * W == N``.

        Returns:
            Tensor: ``B x N x C``.
        """
        B, N, C = x.shape
        H, W = hw_shape
        if H * W != N:
            raise ValueError(f'hw_shape {tuple(hw_shape)} does not match the '
                             f'{N} tokens of x')
        src, (Hk, Wk) = self._keys_values_source(x, hw_shape)
        wq = position_weights(H, W, x.device, x.dtype)  # N x 4
        wk = wq if (Hk, Wk) == (H, W) else position_weights(
            Hk, Wk, x.device, x.dtype)
        gate = 1.0 + self._gate(x)  # B x 1 x C
        step = self.chunk_tokens
        if N <= step or (torch.is_grad_enabled() and x.requires_grad):
            kv = self._key_value_sums(src, wk, self._kv_weights())
            return self._attend(x, wq, self._clamp_kv(kv), gate)
        # Inference at high resolution: everything but KV and the gate is
        # per token, so both sides run a chunk of tokens at a time and the
        # 4d-wide position-modulated copies stay in cache.
        kv_w = self._kv_weights()  # stacked once, not per chunk
        kv = sum(
            self._key_value_sums(src[:, i:i + step], wk[i:i + step], kv_w)
            for i in range(0, src.shape[1], step))
        kv = self._clamp_kv(kv)
        out = torch.empty_like(x)
        for i in range(0, N, step):
            out[:, i:i + step] = self._attend(x[:, i:i + step],
                                              wq[i:i + step], kv, gate)
        return out

    def forward_residual(self, x: torch.Tensor, hw_shape, norm: nn.Module,
                         inplace: bool = False) -> torch.Tensor:
        """``x + self(norm(x), hw_shape)`` for inference, chunk by chunk.

        The normalised tokens are never made whole: one pass over chunks
        accumulates KV and the gate's token mean from ``norm(chunk)``, a
        second recomputes ``norm(chunk)`` (cheaper than storing it) and adds
        the attention of each chunk to it. A chunk's result depends only on
        that chunk (and on KV and the gate, which are complete by then), so
        with ``inplace`` the sum overwrites ``x``, which is returned;
        otherwise it goes to a copy. Only for ``sr_ratio == 1`` and no
        autograd; the caller checks.
        """
        B, N, C = x.shape
        H, W = hw_shape
        step = self.chunk_tokens
        w = position_weights(H, W, x.device, x.dtype)
        kv_w = self._kv_weights()  # stacked once, not per chunk
        kv, total = 0, 0
        for i in range(0, N, step):
            xn = norm(x[:, i:i + step])
            kv = kv + self._key_value_sums(xn, w[i:i + step], kv_w)
            total = total + xn.sum(dim=1)
        kv = self._clamp_kv(kv)
        gate = 1.0 + self.se_fc(total / N).unsqueeze(1)
        out = x if inplace else x.clone()
        for i in range(0, N, step):
            self._attend(norm(x[:, i:i + step]), w[i:i + step], kv, gate,
                         residual=out[:, i:i + step])
        return out

    def _kv_weights(self):
        """The k and v projections stacked, to run as one GEMM."""
        return (torch.cat([self.k_proj.weight, self.v_proj.weight]),
                torch.cat([self.k_proj.bias, self.v_proj.bias]))

    def _key_value_sums(self, src, wk, kv_weights):
        """``[KV | sum_j k~_j]``: ``B x h x 4d x (d+1)`` over these tokens.

        One matmul of ``k~`` with ``[v | 1]`` gives KV and the key sum (its
        extra column) together.
        """
        B, Nk, _ = src.shape
        h, d = self.num_heads, self.head_dims
        k, v = F.linear(src, *kv_weights).split(h * d, dim=-1)
        k = F.relu(k).view(B, Nk, h, 1, d)
        k_pos = (k * wk.view(Nk, 1, 4, 1)).view(B, Nk, h, 4 * d)
        v1 = F.pad(v.view(B, Nk, h, d), (0, 1), value=1.0)
        return torch.matmul(k_pos.permute(0, 2, 3, 1), v1.transpose(1, 2))

    def _clamp_kv(self, kv):
        """Clamp KV, not the key sum (a small 4d x (d+1) tensor)."""
        d = self.head_dims
        return torch.cat([signed_clamp(kv[..., :d]), kv[..., d:]], dim=-1)

    def _attend(self, x, wq, kv, gate, residual=None):
        """Queries of these tokens against ``kv``, then out_proj and gate.

        The clamps are those of the spec, rearranged without changing a
        bit: ``signed_clamp(signed_clamp(n) * z)`` with ``z > 0`` is
        ``sign(n) * clamp(clamp(|n|) * z)``, and ``signed_clamp(o * gate)``
        with ``o = signed_clamp(p)`` and ``gate >= 1`` is
        ``sign(p) * min(clamp(|p|) * gate, 1e4)`` (the lower bound holds
        already). Without autograd the passes run in place on one temporary
        each. With ``residual`` (no autograd only) the result is added into
        ``residual`` in place, which is returned.
        """
        B, N, _ = x.shape
        h, d = self.num_heads, self.head_dims
        grad = torch.is_grad_enabled() and (x.requires_grad
                                            or kv.requires_grad
                                            or gate.requires_grad)
        q = self.q_proj(x)
        q = (F.relu(q) if grad else q.relu_()).view(B, N, h, 1, d)
        q_pos = (q * wq.view(N, 1, 4, 1)).view(B, N, h, 4 * d)
        # one matmul gives q~^T KV and the normaliser q~ . sum_j k~_j
        out = torch.matmul(q_pos.transpose(1, 2), kv)  # B x h x N x (d+1)
        # z > 0, so its signed clamp is a plain clamp
        z = (out[..., d:] + DENOMINATOR_EPS).reciprocal().clamp(
            CLAMP_MIN, CLAMP_MAX)
        num = out[..., :d]
        if grad:
            o = num.sign() * (num.abs().clamp(CLAMP_MIN, CLAMP_MAX) *
                              z).clamp(CLAMP_MIN, CLAMP_MAX)
            o = o.transpose(1, 2).reshape(B, N, h * d)
            p = self.out_proj(o)
            return p.sign() * (p.abs().clamp(CLAMP_MIN, CLAMP_MAX) *
                               gate).clamp(max=CLAMP_MAX)
        # written token-major (B x N x h x d) so out_proj reads it as is
        o = x.new_empty(B, N, h, d)
        o_heads = o.transpose(1, 2)
        torch.abs(num, out=o_heads)
        o_heads.clamp_(CLAMP_MIN, CLAMP_MAX).mul_(z).clamp_(
            CLAMP_MIN, CLAMP_MAX).mul_(num.sign_())
        p = self.out_proj(o.view(B, N, h * d))
        a = p.abs().clamp_(CLAMP_MIN, CLAMP_MAX).mul_(gate).clamp_(
            max=CLAMP_MAX)
        if residual is None:
            return a.mul_(p.sign_())
        return residual.addcmul_(a, p.sign_())


class VicinityAttentionReference(VicinityAttention):
    """The spec's vicinity attention written out step by step.

    Same parameters as :class:`VicinityAttention`; kept as the reference the
    fast path is tested (and benchmarked) against.
    """

    @staticmethod
    def _clamp(t):
        return torch.sign(t) * torch.clamp(torch.abs(t), CLAMP_MIN, CLAMP_MAX)

    @staticmethod
    def _expand(t, hw):
        """``[t cos a, t sin a, t cos b, t sin b]`` for ``B x h x N x d``."""
        H, W = hw
        device, dtype = t.device, t.dtype
        rows = torch.arange(H, device=device).repeat_interleave(W)
        cols = torch.arange(W, device=device).repeat(H)
        a = (math.pi / 2 * rows / H).to(dtype)[None, None, :, None]
        b = (math.pi / 2 * cols / W).to(dtype)[None, None, :, None]
        return torch.cat(
            [t * torch.cos(a), t * torch.sin(a), t * torch.cos(b),
             t * torch.sin(b)],
            dim=-1)

    def forward(self, x, hw_shape):
        B, N, C = x.shape
        src, kv_hw = self._keys_values_source(x, hw_shape)
        q = self._split_heads(F.relu(self.q_proj(x)))
        k = self._split_heads(F.relu(self.k_proj(src)))
        v = self._split_heads(self.v_proj(src))

        q = self._expand(q, hw_shape)  # B x h x N x 4d
        k = self._expand(k, kv_hw)  # B x h x Nk x 4d

        kv = self._clamp(torch.matmul(k.transpose(-2, -1), v))  # 4d x d
        k_sum = k.sum(dim=2, keepdim=True)  # B x h x 1 x 4d
        z = self._clamp(1.0 / (torch.matmul(q, k_sum.transpose(-2, -1)) +
                               DENOMINATOR_EPS))
        o = self._clamp(torch.matmul(q, kv))
        o = self._clamp(o * z)
        o = o.transpose(1, 2).reshape(B, N, -1)
        o = self._clamp(self.out_proj(o))
        g = torch.sigmoid(self.se_fc[2](F.relu(self.se_fc[0](x.mean(dim=1)))))
        return self._clamp(o + o * g.unsqueeze(1))
