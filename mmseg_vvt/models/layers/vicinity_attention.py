# Copyright (c) mmseg-vvt contributors.
"""Vicinity attention: the token mixer of the Vicinity Vision Transformer.

Read this beside docs/architecture.md ("Vicinity attention"). For a query
grid ``H x W`` with ``N = H * W`` tokens of width ``C``, per head of
reduced width ``d = C / heads / fr_ratio``:

1. Feature Reduction Attention: ``q = ReLU(q_proj(x))``,
   ``k = ReLU(k_proj(x'))``, ``v = v_proj(x')`` (``x'`` = ``x``, or its
   spatial reduction when ``sr_ratio > 1``), each ``Linear(C, C / fr)``.
2. 2D locality by position reweighting: every head vector is expanded to
   ``4d`` as ``[t cos a, t sin a, t cos b, t sin b]`` with
   ``a = pi/2 * row / H`` and ``b = pi/2 * col / W`` of its own grid, so
   ``q~_i . k~_j = (q_i . k_j) (cos(a_i - a_j) + cos(b_i - b_j))``.
3. Linear attention: ``KV = sum_j k~_j v_j^T``,
   ``z_i = 1 / (q~_i . sum_j k~_j + 1e-4)``, ``o_i = (q~_i^T KV) z_i``:
   O(N d^2), never an N x N matrix.
4. ``out_proj`` back to ``C``; Feature Preserving Connection
   ``y = o + o * sigmoid(se_fc(mean_tokens(x)))``.

The published network passes ``KV``, ``z``, ``q~^T KV``, its product with
``z``, the ``out_proj`` output and ``y`` through :func:`signed_clamp`; the
checkpoints' outputs depend on it.

``forward`` is that math, step by step. Faster implementations of the same
function live in :mod:`mmseg_vvt.models.kernels`; ``forward`` hands each
call to :func:`~mmseg_vvt.models.kernels.attention`, which runs the one its
path picks, or returns None for the readable code.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from .. import kernels
from ..kernels import position_weights, signed_clamp


def expand_by_position(t: torch.Tensor, weights: torch.Tensor):
    """``[t cos a, t sin a, t cos b, t sin b]``: ``B x h x N x d`` to ``4d``
    (``weights``: the grid's ``N x 4`` factors from
    :func:`position_weights`)."""
    B, h, N, d = t.shape
    return (t.unsqueeze(-2) * weights.view(N, 4, 1)).reshape(B, h, N, 4 * d)


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
        for name, value in (('embed_dims', embed_dims), ('num_heads',
                                                         num_heads),
                            ('fr_ratio', fr_ratio), ('sr_ratio', sr_ratio)):
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

    def forward(self,
                x: torch.Tensor,
                hw_shape,
                joined_weights=None) -> torch.Tensor:
        """Apply vicinity attention.

        Args:
            x (Tensor): ``B x N x C`` tokens on an ``H x W`` grid.
            hw_shape (tuple[int, int]): ``(H, W)`` with ``H * W == N``.
            joined_weights (tuple, optional): This module's weights as
                :func:`~mmseg_vvt.models.kernels.common.joined_block` joined
                them for the training kernels (a block casts all its weights
                in one op under autocast); used when training. None: the
                module's own parameters.

        Returns:
            Tensor: ``B x N x C``.
        """
        B, N, C = x.shape
        H, W = hw_shape
        if H * W != N:
            raise ValueError(f'hw_shape {tuple(hw_shape)} does not match the '
                             f'{N} tokens of x')
        src, kv_hw = self.keys_values_source(x, hw_shape)
        y = kernels.attention(self, x, src, hw_shape, kv_hw, joined_weights)
        if y is not None:
            return y
        q = self._heads(F.relu(self.q_proj(x)))  # B x h x N x d
        k = self._heads(F.relu(self.k_proj(src)))  # B x h x Nk x d
        v = self._heads(self.v_proj(src))
        # token sums in at least fp32: in fp16 they overflow (core_dtype)
        ct = kernels.core_dtype(q.dtype)
        with kernels.autocast_off(x.device.type):
            q = expand_by_position(
                q.to(ct), position_weights(H, W, x.device,
                                           ct))  # B x h x N x 4d
            k = expand_by_position(
                k.to(ct), position_weights(*kv_hw, x.device,
                                           ct))  # B x h x Nk x 4d
            kv = signed_clamp(k.transpose(-2, -1) @ v.to(ct))  # 4d x d
            k_sum = k.sum(dim=2, keepdim=True)  # 1 x 4d
            z = signed_clamp(
                1.0 / (q @ k_sum.transpose(-2, -1) + kernels.DENOMINATOR_EPS))
            o = signed_clamp(signed_clamp(q @ kv) * z)
        o = o.transpose(1, 2).reshape(B, N, -1).to(v.dtype)
        o = signed_clamp(self.out_proj(o))
        g = self.se_fc(x.mean(dim=1)).unsqueeze(1)
        return signed_clamp(o + o * g)

    def keys_values_source(self, x, hw_shape):
        """``x'`` and its grid: ``x`` itself, or ``norm(sr(x))``."""
        if self.sr_ratio == 1:
            return x, hw_shape
        B, N, C = x.shape
        H, W = hw_shape
        x_ = self.sr(x.transpose(1, 2).reshape(B, C, H, W))
        kv_hw = (x_.shape[2], x_.shape[3])
        return self.norm(x_.flatten(2).transpose(1, 2)), kv_hw

    def _heads(self, t):
        B, N, _ = t.shape
        return t.view(B, N, self.num_heads, self.head_dims).transpose(1, 2)

    def kernel_weights(self) -> kernels.AttentionWeights:
        """The parameters as the kernels take them."""
        return kernels.AttentionWeights(
            self.q_proj.weight, self.q_proj.bias, self.k_proj.weight,
            self.k_proj.bias, self.v_proj.weight, self.v_proj.bias,
            self.out_proj.weight, self.out_proj.bias, self.se_fc[0].weight,
            self.se_fc[2].weight, self.num_heads)
