# Copyright (c) mmseg-vvt contributors.
"""What every VVT kernel shares: the published constants, the signed clamp,
the grid's position factors, and the weight bundles the modules hand over.

Nothing here imports the modules that call the kernels. Kernels read the
clamp bounds as ``common.CLAMP_MIN`` / ``common.CLAMP_MAX`` at call time, so
a test can move them in one place.
"""
import contextlib
import functools
import math
import struct
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

# The published network's magnitude clamp (docs/architecture.md,
# "Numerics"): sign(t) * clamp(|t|, CLAMP_MIN, CLAMP_MAX).
CLAMP_MIN = 1e-4
CLAMP_MAX = 1e4
# Added to the linear attention's normaliser before its reciprocal.
DENOMINATOR_EPS = 1e-4


def signed_clamp(t: Tensor) -> Tensor:
    """``sign(t) * clamp(|t|, 1e-4, 1e4)``: exact zeros stay zero."""
    return t.sign() * t.abs().clamp(CLAMP_MIN, CLAMP_MAX)


def signed_clamp_(t: Tensor) -> Tensor:
    """:func:`signed_clamp` written over ``t`` (no gradient): one sign map
    beside it instead of three new maps."""
    sign = t.sign()
    return t.abs_().clamp_(CLAMP_MIN, CLAMP_MAX).mul_(sign)


# IEEE formats as (struct code of the bit pattern, of the value, sign bit)
_BIT_FORMATS = {
    torch.float16: ('<H', '<e', 0x8000),
    torch.float32: ('<I', '<f', 0x80000000),
}


def _bf16_bits(x: float) -> int:
    """``x`` rounded to bfloat16 as torch rounds a scalar: to float32, then
    to nearest even in the upper 16 bits."""
    bits, = struct.unpack('<I', struct.pack('<f', x))
    return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16


def _neighbour(x: float, dtype: torch.dtype, up: bool) -> float:
    """The next value of ``dtype`` above (``up``) or below ``x`` rounded to
    ``dtype``, as a Python float. Plain Python: no op dispatched."""
    if math.isinf(x):
        return x
    if dtype == torch.float64:
        return math.nextafter(x, math.inf if up else -math.inf)
    if dtype == torch.bfloat16:
        code, sign, bits = '<I', 0x8000, _bf16_bits(x)
    elif dtype in _BIT_FORMATS:
        code, value_code, sign = _BIT_FORMATS[dtype]
        bits, = struct.unpack(code, struct.pack(value_code, x))
    else:
        raise TypeError(f'clamp bounds: expected a floating dtype, got '
                        f'{dtype}')
    # IEEE bit patterns are ordered like the values within each sign
    order = -(bits & ~sign) if bits & sign else bits
    order += 1 if up else -1
    bits = (-order) | sign if order < 0 else order
    if dtype == torch.bfloat16:
        return struct.unpack('<f', struct.pack('<I', bits << 16))[0]
    return struct.unpack(value_code, struct.pack(code, bits))[0]


@functools.lru_cache(maxsize=64)
def _open_bounds(lo: float, hi: float, dtype: torch.dtype):
    """The values of ``dtype`` just outside ``[lo, hi]``."""
    return _neighbour(lo, dtype, up=False), _neighbour(hi, dtype, up=True)


def clamp_grad(grad: Tensor,
               t: Tensor,
               lo: float,
               hi: float,
               out: Optional[Tensor] = None) -> Tensor:
    """``grad`` where ``lo <= t <= hi``, else 0: the gradient through
    ``t.clamp(lo, hi)`` (``lo`` may be ``-inf``), as autograd gives it;
    written into ``out`` if given (``grad`` itself: in place).

    One op (hardtanh's backward) instead of a comparison or two and a
    multiply. Its bounds are exclusive, so it gets the neighbours of
    ``lo`` and ``hi`` in ``t``'s dtype: the same test for every value of
    that dtype. It differs from autograd only where the clamp's output is
    not finite (so neither is the loss, and AMP's GradScaler skips the
    step): where ``t`` is NaN it gives ``grad`` or 0 (hardtanh's backward
    differs between its vector and scalar loops; autograd: 0), and where
    ``t`` is an infinity at an infinite bound it gives 0 (autograd: grad).
    """
    below, above = _open_bounds(float(lo), float(hi), t.dtype)
    if out is None:
        return torch.ops.aten.hardtanh_backward(grad, t, below, above)
    return torch.ops.aten.hardtanh_backward.grad_input(
        grad, t, below, above, grad_input=out)


def in_layout(t: Tensor, dtype: torch.dtype, stride: Sequence[int]) -> Tensor:
    """``t`` in ``dtype`` with ``stride`` (a parameter's layout, for its
    gradient). Strides that differ only in size-1 dimensions address the
    same memory: relabelled by a view; any other layout is copied."""
    t = t.to(dtype)
    stride = tuple(stride)
    if t.stride() == stride:
        return t
    if all(a == b or n == 1 for a, b, n in zip(t.stride(), stride, t.shape)):
        return t.as_strided(t.shape, stride, t.storage_offset())
    return torch.empty_strided(
        t.shape, stride, dtype=dtype, device=t.device).copy_(t)


def position_weights(height: int,
                     width: int,
                     device=None,
                     dtype=torch.float32) -> Tensor:
    """The ``N x 4`` factors ``[cos a, sin a, cos b, sin b]`` of a grid.

    Token ``i`` sits at row ``i // width`` and column ``i % width``
    (row-major, as ``flatten(2).transpose(1, 2)`` lays an NCHW map out);
    ``a = pi/2 * row / height`` and ``b = pi/2 * col / width``.
    """
    rows = torch.arange(height, device=device, dtype=torch.float32)
    cols = torch.arange(width, device=device, dtype=torch.float32)
    a = ((math.pi / 2) * rows / height)[:, None].expand(height, width)
    b = ((math.pi / 2) * cols / width)[None, :].expand(height, width)
    a, b = a.reshape(-1), b.reshape(-1)
    return torch.stack([a.cos(), a.sin(), b.cos(), b.sin()], dim=1).to(dtype)


@functools.lru_cache(maxsize=64)
def cached_position_weights(height: int, width: int, device,
                            dtype: torch.dtype) -> Tensor:
    """:func:`position_weights`, made once per grid, device and dtype.

    Building the factors is a dozen small ops per call, each a kernel
    launch on a GPU; the kernels only read them. Made outside inference
    mode, so a training step may save them for backward.
    """
    with torch.inference_mode(False):
        return position_weights(height, width, device, dtype)


@functools.lru_cache(maxsize=64)
def cached_full(value: float, device, dtype: torch.dtype) -> Tensor:
    """A one-element tensor holding ``value``, made once per device and
    dtype (expanded, it stands for a constant column without an op to
    fill one). Made outside inference mode, as the position factors."""
    with torch.inference_mode(False):
        return torch.full((1, ), value, device=device, dtype=dtype)


def query_key_weights(hw, kv_hw, device, dtype) -> Tuple[Tensor, Tensor]:
    """The position factors of the query grid and of the key grid."""
    wq = cached_position_weights(hw[0], hw[1], device, dtype)
    if tuple(kv_hw) == tuple(hw):
        return wq, wq
    return wq, cached_position_weights(kv_hw[0], kv_hw[1], device, dtype)


def core_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the attention's token sums run in: at least float32.

    ``KV`` and the key sums add up every token; in fp16 they overflow at
    high resolution (and ``z`` then collapses to zero), in bf16 they lose
    the small terms.
    """
    # plain Python: torch.promote_types would dispatch an op per call
    return torch.float64 if dtype == torch.float64 else torch.float32


class AttentionWeights(NamedTuple):
    """The parameters of one vicinity attention, as plain tensors."""
    q_weight: Tensor
    q_bias: Tensor
    k_weight: Tensor
    k_bias: Tensor
    v_weight: Tensor
    v_bias: Tensor
    out_weight: Tensor
    out_bias: Tensor
    gate_weight1: Tensor  # se_fc.0 (no bias)
    gate_weight2: Tensor  # se_fc.2 (no bias)
    num_heads: int


class MlpWeights(NamedTuple):
    """``fc1 -> depthwise 3x3 conv -> GELU -> fc2`` as plain tensors."""
    fc1_weight: Tensor
    fc1_bias: Tensor
    dw_weight: Tensor  # C x 1 x 3 x 3
    dw_bias: Tensor
    fc2_weight: Tensor
    fc2_bias: Tensor


class NormWeights(NamedTuple):
    """A LayerNorm's affine parameters and eps."""
    weight: Optional[Tensor]
    bias: Optional[Tensor]
    eps: float

    def __call__(self, x: Tensor) -> Tensor:
        return torch.nn.functional.layer_norm(x, x.shape[-1:], self.weight,
                                              self.bias, self.eps)


def channel_gate(x: Tensor,
                 w: AttentionWeights,
                 mean: Optional[Tensor] = None) -> Tensor:
    """``sigmoid(W2 relu(W1 mean_tokens(x)))``: ``B x 1 x C`` (``mean``:
    ``mean_tokens(x)``, ``B x C``, when the caller has it)."""
    if mean is None:
        mean = x.mean(dim=1)
    hidden = torch.relu(torch.nn.functional.linear(mean, w.gate_weight1))
    return torch.sigmoid(torch.nn.functional.linear(
        hidden, w.gate_weight2)).unsqueeze(1)


HW = Tuple[int, int]


class JoinedCast(torch.autograd.Function):
    """Weights cast to another dtype together: one cast for many tensors.

    ``forward(dtype, group_sizes, *tensors)`` returns one tensor per group
    of consecutive ``tensors`` (``group_sizes`` of them each), the group's
    members concatenated along dim 0 and cast to ``dtype``, all of them
    views of one buffer. Backward gathers their gradients and casts them
    back in one pass too. Under autocast every weight is otherwise cast on
    its own, forward and backward: for VVT-S two ops per parameter tensor,
    the most frequent op of a mixed-precision step.
    """

    @staticmethod
    def forward(ctx, dtype, group_sizes, *tensors):
        ctx.shapes = [t.shape for t in tensors]
        ctx.dtype = tensors[0].dtype
        flat = torch.cat([t.reshape(-1) for t in tensors]).to(dtype)
        return tuple(_group_views(flat, group_sizes, tensors))

    @staticmethod
    def backward(ctx, *grads):
        flat = torch.cat([g.reshape(-1) for g in grads]).to(ctx.dtype)
        sizes = [shape.numel() for shape in ctx.shapes]
        return (None, None,
                *(g.view(shape)
                  for g, shape in zip(flat.split(sizes), ctx.shapes)))


class JoinedCat(torch.autograd.Function):
    """Several concatenations in one op: ``forward(group_sizes, *tensors)``
    returns one tensor per group of consecutive ``tensors``, its members
    concatenated along dim 0, all of them views of one buffer. Backward
    hands each member its slice of its group's gradient: views, no op
    (autograd on a slice of one buffer would add a ``slice_backward`` op
    per group)."""

    @staticmethod
    def forward(ctx, group_sizes, *tensors):
        ctx.group_sizes = group_sizes
        ctx.rows = [t.shape[0] for t in tensors]
        flat = torch.cat([t.reshape(-1) for t in tensors])
        return tuple(_group_views(flat, group_sizes, tensors))

    @staticmethod
    def backward(ctx, *grads):
        rows, start, out = ctx.rows, 0, []
        for size, grad in zip(ctx.group_sizes, grads):
            out.extend(grad.split(rows[start:start + size]))
            start += size
        return (None, *out)


def _group_views(flat: Tensor, group_sizes: Sequence[int],
                 tensors: Sequence[Tensor]) -> List[Tensor]:
    """Views of ``flat`` (``tensors`` flattened one after another), one per
    group of ``group_sizes`` consecutive tensors, concatenated along dim 0."""
    outs, start, offset = [], 0, 0
    for size in group_sizes:
        members = tensors[start:start + size]
        numel = sum(t.numel() for t in members)
        shape = (sum(t.shape[0] for t in members), *members[0].shape[1:])
        outs.append(flat[offset:offset + numel].view(shape))
        start, offset = start + size, offset + numel
    return outs


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast casts to on ``device_type``, ``None`` when it is
    off or has no autocast there (the meta device: asking torch whether
    autocast is on raises for such devices)."""
    if (torch.amp.is_autocast_available(device_type)
            and torch.is_autocast_enabled(device_type)):
        return torch.get_autocast_dtype(device_type)
    return None


def autocast_off(device_type: str):
    """A context with autocast off on ``device_type``; a no-op where torch
    has no autocast (the meta device), where ``torch.autocast`` raises."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def joined(groups: Sequence[Sequence[Tensor]],
           device_type: str) -> List[Tensor]:
    """Each group of tensors concatenated along dim 0, as autocast would
    hand them to a matmul: cast to the autocast dtype of ``device_type``
    when autocast is on and they are float32 (all groups in one
    :class:`JoinedCast`), else as they are: groups of several
    concatenated, in one :class:`JoinedCat` for all of them when they share
    a dtype."""
    tensors = [t for group in groups for t in group]
    for group in groups:
        if any(t.shape[1:] != group[0].shape[1:] for t in group):
            raise ValueError('joined: the tensors of a group must match in '
                             'all but their first dim, got '
                             f'{[tuple(t.shape) for t in group]}')
    dtype = autocast_dtype(device_type)
    if dtype is not None and all(t.dtype == torch.float32 for t in tensors):
        return list(
            JoinedCast.apply(dtype, tuple(len(group) for group in groups),
                             *tensors))
    several = [group for group in groups if len(group) > 1]
    if len(several) > 1 and len({t.dtype for g in several for t in g}) == 1:
        views = iter(
            JoinedCat.apply(
                tuple(len(g) for g in several),
                *(t for g in several for t in g)))
        return [
            group[0] if len(group) == 1 else next(views) for group in groups
        ]
    return [
        group[0] if len(group) == 1 else torch.cat(list(group))
        for group in groups
    ]


def _attention_groups(w: AttentionWeights, one_source: bool) -> List[list]:
    """What :func:`joined_attention` joins, as groups for :func:`joined`."""
    if one_source:
        ins = [[w.q_weight, w.k_weight, w.v_weight],
               [w.q_bias, w.k_bias, w.v_bias]]
    else:
        ins = [[w.q_weight], [w.k_weight, w.v_weight], [w.q_bias],
               [w.k_bias, w.v_bias]]
    return ins + [[w.out_weight], [w.out_bias], [w.gate_weight1],
                  [w.gate_weight2]]


def _attention_from(joined_groups: List[Tensor], w: AttentionWeights):
    *projections, out_w, out_b, gate1, gate2 = joined_groups
    n = len(projections) // 2
    return projections[:n], projections[n:], w._replace(
        out_weight=out_w,
        out_bias=out_b,
        gate_weight1=gate1,
        gate_weight2=gate2)


def joined_attention(w: AttentionWeights,
                     device_type: str,
                     one_source: bool = False):
    """An attention's weights for its GEMMs (:func:`joined`):
    ``(in_weights, in_biases, w)``. The input projections' weights and
    biases are ``[q | k | v]``, for one GEMM, when keys and values come
    from the queries' tokens (``one_source``: no spatial reduction), else
    ``[q]`` and ``[k | v]``; ``w`` has its output and gate weights
    replaced likewise."""
    return _attention_from(
        joined(_attention_groups(w, one_source), device_type), w)


def joined_block(attention: AttentionWeights,
                 mlp: Optional[MlpWeights],
                 device_type: str,
                 one_source: bool = False):
    """A block's weights for its GEMMs, from one :func:`joined`: under
    autocast one cast each way for the whole block instead of one per
    module. Returns ``(joined_attention(attention, ...), MlpWeights)``, the
    second None without ``mlp``."""
    groups = _attention_groups(attention, one_source)
    outs = joined(groups + [[t] for t in (mlp or ())], device_type)
    return (_attention_from(outs[:len(groups)], attention),
            MlpWeights(*outs[len(groups):]) if mlp else None)
