# Copyright (c) mmseg-vvt contributors.
"""The MLP's depthwise 3x3 conv and exact GELU in one Triton kernel.

In eager PyTorch the conv writes the hidden map and the GELU reads it back
and writes it again, a large share of the bytes a VVT-S forward moves on
the whole-tensor path (measured in docs/benchmark.md). Here
each program reads a tile of tokens with its one-pixel halo once,
accumulates the nine taps in registers (float32, or float64 for float64
tokens), adds the bias, applies ``0.5 x (1 + erf(x / sqrt 2))`` and writes
the tile in the tokens' dtype: one read of the map and one write. The
backward twin (:func:`dwconv_gelu_backward`) recomputes the conv the same
way and turns the gradient at the GELU's output into the one at its input
in place, so training keeps no pre-activation map.

The tokens stay in their ``B x rows x W x C`` (token-major, NHWC) layout,
where ``fc1`` wrote them and ``fc2`` reads them, so nothing is permuted. A
band of rows is given with its context rows (see :func:`dwconv_gelu`).
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from .triton_ops import check_device, fake, op

# pixels of a row and channels per program
BLOCK_W = 32
BLOCK_C = 64


@triton.jit
def _dwconv_gelu_kernel(t, w, bias, out, h, W, C, first, rows,
                        CT: tl.constexpr, BACKWARD: tl.constexpr,
                        BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
    """``out = gelu(c)``, ``c = dwconv3x3(t) + bias`` on the rows asked
    for; ``BACKWARD``: ``out`` holds the gradient at ``gelu(c)`` and
    becomes the gradient at ``c``, ``out * gelu'(c)``."""
    # one output row (batch element b, band row i) per program on axis 0;
    # int64 offsets, since a batch of large maps passes 2**31 elements
    b = (tl.program_id(0) // rows).to(tl.int64)
    i = tl.program_id(0) % rows
    x = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    acc = tl.zeros((BLOCK_W, BLOCK_C), CT)
    for dy in tl.static_range(3):
        y = first + i + dy - 1  # a row of t; zero outside it
        for dx in tl.static_range(3):
            xs = x + dx - 1
            # the row test on a vector: Triton's interpreter makes int32
            # of a bool vector & a bool scalar, which load refuses as a mask
            ys = xs * 0 + y
            inside = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < h)
            m = inside[:, None] & cmask[None, :]
            tap = tl.load(
                t + ((b * h + y) * W + xs[:, None]) * C + c[None, :],
                mask=m,
                other=0.0).to(CT)
            wt = tl.load(w + c * 9 + dy * 3 + dx, mask=cmask).to(CT)
            acc += tap * wt[None, :]
    acc += tl.load(bias + c, mask=cmask).to(CT)[None, :]
    # the constants in CT: some Triton versions make float constants
    # float32, which rounds them for float64
    cdf = 0.5 * (1.0 + tl.math.erf(acc * tl.full(
        (), 0.7071067811865476, CT)))  # Phi(c)
    at = out + ((b * rows + i) * W + x[:, None]) * C + c[None, :]
    omask = (x < W)[:, None] & cmask[None, :]
    if BACKWARD:
        # gelu'(c) = Phi(c) + c phi(c)
        pdf = tl.exp(-0.5 * acc * acc) * tl.full(
            (), 0.3989422804014327, CT)  # 1 / sqrt(2 pi)
        g = tl.load(at, mask=omask, other=0.0).to(CT)
        tl.store(
            at, (g * (cdf + acc * pdf)).to(out.dtype.element_ty), mask=omask)
    else:
        tl.store(at, (acc * cdf).to(out.dtype.element_ty), mask=omask)


def _launch(t, weight, bias, out, first, rows, backward):
    B, h, W, C = t.shape
    ct = tl.float64 if t.dtype == torch.float64 else tl.float32
    grid = (B * rows, triton.cdiv(W, BLOCK_W), triton.cdiv(C, BLOCK_C))
    _dwconv_gelu_kernel[grid](t, weight.contiguous(), bias.contiguous(), out,
                              h, W, C, first, rows, ct, backward, BLOCK_W,
                              BLOCK_C)


@op('dwconv3x3_gelu(Tensor t, Tensor weight, Tensor bias, int first, '
    'int rows) -> Tensor')
def dwconv_gelu(t: Tensor, weight: Tensor, bias: Tensor, first: int,
                rows: int) -> Tensor:
    """``gelu(depthwise_conv3x3(t) + bias)`` on rows ``[first, first +
    rows)`` of ``t`` (``B x h x W x C``, contiguous), zero-padded outside
    ``t``'s rows and columns: ``B x rows x W x C`` in ``t``'s dtype.

    For a band of rows ``[r0, r1)`` of an ``H``-row map, ``t`` holds rows
    ``[max(r0 - 1, 0), min(r1 + 1, H))``: the conv's context where the map
    has it, its zero padding where it does not. ``weight``: ``C x 1 x 3 x
    3`` (contiguous), ``bias``: ``C``.
    """
    check_device('the Triton depthwise conv + GELU', t)
    B, h, W, C = t.shape
    if not (0 <= first and first + rows <= h):
        raise ValueError(f'rows [{first}, {first + rows}) are not all in '
                         f'the {h} rows of t')
    t = t.contiguous()
    out = t.new_empty((B, rows, W, C))
    _launch(t, weight, bias, out, first, rows, False)
    return out


@fake('dwconv3x3_gelu')
def _(t, weight, bias, first, rows):
    B, h, W, C = t.shape
    return t.new_empty((B, rows, W, C))


@op('dwconv3x3_gelu_backward(Tensor t, Tensor weight, Tensor bias, '
    'Tensor(a!) grad) -> ()')
def dwconv_gelu_backward(t: Tensor, weight: Tensor, bias: Tensor,
                         grad: Tensor) -> None:
    """Turns ``grad``, the gradient at ``gelu(c)`` with ``c =
    depthwise_conv3x3(t) + bias`` (``t``: ``B x H x W x C``, contiguous, the
    whole map), into the gradient at ``c``, in place: ``c`` recomputed in
    registers, ``grad`` read and written once."""
    check_device('the Triton depthwise conv + GELU', t)
    if grad.shape != t.shape or not grad.is_contiguous():
        raise ValueError('grad must be contiguous and shaped like t '
                         f'{tuple(t.shape)}, got {tuple(grad.shape)}')
    _launch(t.contiguous(), weight, bias, grad, 0, t.shape[1], True)


@fake('dwconv3x3_gelu_backward')
def _(t, weight, bias, grad):
    return None
