# Copyright (c) mmseg-vvt contributors.
"""The vicinity attention's core and gated clamps as Triton kernels, for
training.

:class:`FusedVicinityCore` is the function of
:class:`~.autograd.VicinityCore` (from the projections ``q_lin``, ``kv_lin``
to the clamped ``o``), in two passes over the tokens each way instead of
some sixty small ops:

forward
    * keys pass: ``KV_f = sum_j (k_j w_jf)^T v_j`` and the key sums
      ``s_f = sum_j k_j w_jf`` for each of the four position factors
      ``f``, in partial sums over token chunks (summed by one reduction);
    * queries pass: ``q~_i KV`` and ``q~_i . s``, the normaliser and the
      published clamps, written straight into the ``B x N x h*d`` layout.

backward
    * queries pass: the gradient of ``q`` and ``g_out = [g_num | g_den]``
      (the gradients of ``q~ KV`` and of the normaliser), then the
      query-side sums ``q~^T g_out`` in chunked partial sums;
    * keys pass: the gradients of ``k`` and ``v``.

ReLUs, the position modulation and every clamp run in registers; nothing
``4d``-wide reaches memory. The kernels take the projections with their
batch and token strides, so ``q``, ``k`` and ``v`` are read where one GEMM
wrote them, and their gradients are written into one tensor for that GEMM's
backward. What backward needs is saved as in
``VicinityCore``: the projections, the small unclamped ``[KV | s]`` and the
reciprocal normaliser ``r``. Token sums run in :func:`~.common.core_dtype`
(float32, or float64), products in IEEE precision (no TF32), so results
match the readable formulation to rounding.

:class:`FusedGatedClamp` is :class:`~.autograd.GatedClamp` (``out_proj``'s
clamp, the feature-preserving gate, the last clamp): one pass forward, one
backward plus the gate gradient's reduction, instead of sixteen ops.

Each launch is an op of the ``mmseg_vvt`` namespace, defined with
``torch.library.Library`` (schema, CPU and CUDA kernel, fake for
``torch.compile``), so it is one op to autograd, to a
``TorchDispatchMode`` and to ``torch.compile``. Triton is optional: this
module is imported only when ``implementation('triton')`` asks for it. On CPU
tensors the kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` set
before this module is imported), which is how the tests check them without
a GPU.
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from . import common
from .triton_ops import check_device
from .triton_ops import fake as _fake
from .triton_ops import op as _op

BLOCK_N = 64  # tokens per loop step of the token sums and the gate
# no software pipelining of the token loops: their loads are small, and one
# stage keeps shared memory within 48 KiB, which every CUDA GPU gives
NUM_STAGES = 1
# tokens per program and warps of the per-token passes: this way the tiles
# each keeps live (four 64-wide float32 products) fit in registers, with
# no spills to local memory (checked on the compiled cubins in the tests)
QUERIES = dict(BLOCK=32, num_warps=8)
QUERIES_BACKWARD = dict(BLOCK=16, num_warps=8)
KEYS_BACKWARD = dict(BLOCK=32, num_warps=8)
# enough programs to fill a GPU's SMs when a pass reduces over tokens
_TARGET_PROGRAMS = 512


@triton.jit
def _bounds(lo, hi, CT: tl.constexpr):
    """The clamp bounds as ``CT`` scalars. Left as float constants, some
    Triton versions (3.6) make them float32 first, which rounds them for
    float64 tensors."""
    return tl.full((), lo, CT), tl.full((), hi, CT)


@triton.jit
def _signed_clamp(t, lo, hi):
    mag = tl.minimum(tl.maximum(tl.abs(t), lo), hi)
    return tl.where(t > 0, mag, tl.where(t < 0, -mag, 0.0))


@triton.jit
def _passes(t, lo, hi):
    """Where ``clamp(|t|, lo, hi)`` passes its gradient."""
    return (tl.abs(t) >= lo) & (tl.abs(t) <= hi)


@triton.jit
def _sign(t):
    return tl.where(t > 0, 1.0, tl.where(t < 0, -1.0, 0.0))


@triton.jit
def _load_tokens(ptr, n, nmask, cols, dmask, row_stride, CT: tl.constexpr):
    """``len(n) x D`` tokens of one head, zero outside, in ``CT``."""
    return tl.load(
        ptr + n[:, None] * row_stride + cols[None, :],
        mask=nmask[:, None] & dmask[None, :],
        other=0.0).to(CT)


@triton.jit
def _token_tile(N, d, BLOCK: tl.constexpr, D: tl.constexpr):
    """This program's ``BLOCK`` tokens and a head's ``D`` columns, with
    their masks (``n < N``, ``cols < d``)."""
    n = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    cols = tl.arange(0, D)
    return n, n < N, cols, cols < d


@triton.jit
def _kv_tile(ptr, bh, f, cols, dmask, d):
    """Factor ``f``'s ``d x d`` block of ``[KV | s]`` (``B*h x 4 x d x
    (d+1)``) and its last column ``s``."""
    at = ptr + (bh * 4 + f) * d * (d + 1)
    square = tl.load(
        at + cols[:, None] * (d + 1) + cols[None, :],
        mask=dmask[:, None] & dmask[None, :],
        other=0.0)
    return square, tl.load(at + cols * (d + 1) + d, mask=dmask, other=0.0)


@triton.jit
def _queries_times_kv(q, w_ptr, kvs_ptr, bh, n, nmask, cols, dmask, d, lo, hi,
                      BLOCK: tl.constexpr, D: tl.constexpr, CT: tl.constexpr):
    """``num = q~ clamp(KV)`` and ``den = q~ . s`` for a tile of queries
    ``q`` (after their ReLU); a caller that does not use ``den`` has it
    compiled away."""
    num = tl.zeros((BLOCK, D), dtype=CT)
    den = tl.zeros((BLOCK, ), dtype=CT)
    # a loop over the four position factors, not unrolled: unrolled, the
    # factors' products took the compiler up to a minute per kernel
    for f in range(4):
        kv, s = _kv_tile(kvs_ptr, bh, f, cols, dmask, d)
        w = tl.load(w_ptr + n * 4 + f, mask=nmask, other=0.0).to(CT)
        qf = q * w[:, None]
        num += tl.dot(qf, _signed_clamp(kv, lo, hi), input_precision='ieee')
        den += tl.sum(qf * s[None, :], 1)
    return num, den


@triton.jit
def _token_sums_kernel(a_ptr, a_stride, b_ptr, b_stride, w_ptr, out_ptr, N, H,
                       d, chunk, a_batch, b_batch, B_HEADS: tl.constexpr,
                       D: tl.constexpr, BLOCK: tl.constexpr):
    """Partial sums over one chunk of tokens, for one head and factor ``f``:
    ``P_f = sum_j (relu(a_j) w_jf)^T b_j`` (``d x d``) and
    ``p_f = sum_j relu(a_j) w_jf`` (``d``), with the last column of ``b``
    given by ``b_ptr`` (``B_HEADS``: ``b`` is laid out by heads as ``a``;
    else ``b`` is ``B*h x N x (d+1)`` and its column ``d`` multiplies ``p``).
    Writes ``out[bh, chunk, f] = [P_f | p_f]`` (``d x (d+1)``)."""
    bh = tl.program_id(0)
    c = tl.program_id(1)
    f = tl.program_id(2)
    CT: tl.constexpr = out_ptr.dtype.element_ty
    b = bh // H
    h = bh % H
    cols = tl.arange(0, D)
    dmask = cols < d
    a_base = a_ptr + b * a_batch + h * d
    if B_HEADS:
        b_base = b_ptr + b * b_batch + h * d
    else:
        b_base = b_ptr + bh * b_batch
    acc = tl.zeros((D, D), dtype=CT)
    acc_s = tl.zeros((D, ), dtype=CT)
    start = c * chunk
    end = tl.minimum(start + chunk, N)
    for n0 in range(start, end, BLOCK):
        n = n0 + tl.arange(0, BLOCK)
        nmask = n < end
        a = _load_tokens(a_base, n, nmask, cols, dmask, a_stride, CT)
        w = tl.load(w_ptr + n * 4 + f, mask=nmask, other=0.0).to(CT)
        a = tl.maximum(a, 0.0) * w[:, None]
        bt = _load_tokens(b_base, n, nmask, cols, dmask, b_stride, CT)
        acc += tl.dot(tl.trans(a), bt, input_precision='ieee')
        if B_HEADS:
            acc_s += tl.sum(a, 0)
        else:
            last = tl.load(
                b_base + n * b_stride + d, mask=nmask, other=0.0).to(CT)
            acc_s += tl.sum(a * last[:, None], 0)
    nc = tl.num_programs(1)
    out = out_ptr + ((bh * nc + c) * 4 + f) * d * (d + 1)
    tl.store(
        out + cols[:, None] * (d + 1) + cols[None, :],
        acc,
        mask=dmask[:, None] & dmask[None, :])
    tl.store(out + cols * (d + 1) + d, acc_s, mask=dmask)


@triton.jit
def _queries_kernel(q_ptr, q_batch, q_row, w_ptr, kvs_ptr, o_ptr, r_ptr, N, H,
                    d, lo: tl.constexpr, hi: tl.constexpr, eps: tl.constexpr,
                    D: tl.constexpr, BLOCK: tl.constexpr):
    """``o = sign(num) clamp(clamp(|num|) clamp(r))`` with
    ``num = q~ clamp(KV)`` and ``r = 1 / (q~ . s + eps)``, for one block of
    queries of one head (``q``: batch and token strides ``q_batch``,
    ``q_row``; ``o`` contiguous)."""
    bh = tl.program_id(0)
    b = bh // H
    h = bh % H
    CT: tl.constexpr = kvs_ptr.dtype.element_ty
    lo, hi = _bounds(lo, hi, CT)
    hd = H * d
    n, nmask, cols, dmask = _token_tile(N, d, BLOCK, D)
    q = _load_tokens(q_ptr + b * q_batch + h * d, n, nmask, cols, dmask, q_row,
                     CT)
    num, den = _queries_times_kv(
        tl.maximum(q, 0.0), w_ptr, kvs_ptr, bh, n, nmask, cols, dmask, d, lo,
        hi, BLOCK, D, CT)
    r = 1.0 / (den + tl.full((), eps, CT))
    z = tl.minimum(tl.maximum(r, lo), hi)
    o_abs = tl.minimum(tl.maximum(tl.abs(num), lo), hi) * z[:, None]
    o = _sign(num) * tl.minimum(tl.maximum(o_abs, lo), hi)
    tl.store(
        o_ptr + b * N * hd + h * d + n[:, None] * hd + cols[None, :],
        o.to(o_ptr.dtype.element_ty),
        mask=nmask[:, None] & dmask[None, :])
    tl.store(r_ptr + bh * N + n, r, mask=nmask)


@triton.jit
def _queries_backward_kernel(g_ptr, q_ptr, q_batch, q_row, w_ptr, kvs_ptr,
                             r_ptr, gq_ptr, gq_batch, gq_row, gout_ptr, N, H,
                             d, lo: tl.constexpr, hi: tl.constexpr,
                             D: tl.constexpr, BLOCK: tl.constexpr):
    """From ``o``'s gradient (contiguous) to ``q``'s and to ``g_out =
    [g_num | g_den]`` (``B*h x N x (d+1)``), for one block of queries of one
    head; ``q`` and its gradient with their own batch and token strides."""
    bh = tl.program_id(0)
    b = bh // H
    h = bh % H
    CT: tl.constexpr = kvs_ptr.dtype.element_ty
    lo, hi = _bounds(lo, hi, CT)
    hd = H * d
    n, nmask, cols, dmask = _token_tile(N, d, BLOCK, D)
    tokens = b * N * hd + h * d
    q_lin = _load_tokens(q_ptr + b * q_batch + h * d, n, nmask, cols, dmask,
                         q_row, CT)
    num, _ = _queries_times_kv(
        tl.maximum(q_lin, 0.0), w_ptr, kvs_ptr, bh, n, nmask, cols, dmask, d,
        lo, hi, BLOCK, D, CT)
    r = tl.load(r_ptr + bh * N + n, mask=nmask, other=1.0)
    z = tl.minimum(tl.maximum(r, lo), hi)
    p_abs = tl.minimum(tl.maximum(tl.abs(num), lo), hi)
    g = _load_tokens(g_ptr + tokens, n, nmask, cols, dmask, hd, CT)
    g = tl.where(_passes(p_abs * z[:, None], lo, hi), g, 0.0)
    g_num = tl.where(_passes(num, lo, hi), g * z[:, None], 0.0)
    g_z = tl.sum(g * _sign(num) * p_abs, 1)
    g_den = tl.where(_passes(r, lo, hi), -(g_z * r * r), 0.0)
    g_q = tl.zeros((BLOCK, D), dtype=CT)
    for f in range(4):
        kv, s = _kv_tile(kvs_ptr, bh, f, cols, dmask, d)
        w = tl.load(w_ptr + n * 4 + f, mask=nmask, other=0.0).to(CT)
        g_qf = tl.dot(
            g_num, tl.trans(_signed_clamp(kv, lo, hi)),
            input_precision='ieee') + g_den[:, None] * s[None, :]
        g_q += w[:, None] * g_qf
    g_q = tl.where(q_lin > 0, g_q, 0.0)
    nm2 = nmask[:, None] & dmask[None, :]
    tl.store(
        gq_ptr + b * gq_batch + h * d + n[:, None] * gq_row + cols[None, :],
        g_q.to(gq_ptr.dtype.element_ty),
        mask=nm2)
    gout = gout_ptr + bh * N * (d + 1) + n * (d + 1)
    tl.store(gout[:, None] + cols[None, :], g_num, mask=nm2)
    tl.store(gout + d, g_den, mask=nmask)


@triton.jit
def _keys_backward_kernel(kv_ptr, kv_batch, kv_row, w_ptr, kvs_ptr, gkvs_ptr,
                          gkv_ptr, g_batch, g_row, N, H, d, lo: tl.constexpr,
                          hi: tl.constexpr, D: tl.constexpr,
                          BLOCK: tl.constexpr):
    """From the gradient of ``[KV | s]`` to those of ``k`` and ``v``, for
    one block of keys of one head. ``[k | v]`` (``B x Nk x 2hd``) and its
    gradient with their own batch and token strides."""
    bh = tl.program_id(0)
    b = bh // H
    h = bh % H
    CT: tl.constexpr = kvs_ptr.dtype.element_ty
    lo, hi = _bounds(lo, hi, CT)
    hd = H * d
    n, nmask, cols, dmask = _token_tile(N, d, BLOCK, D)
    tokens = kv_ptr + b * kv_batch + h * d
    k_lin = _load_tokens(tokens, n, nmask, cols, dmask, kv_row, CT)
    k = tl.maximum(k_lin, 0.0)
    v = _load_tokens(tokens + hd, n, nmask, cols, dmask, kv_row, CT)
    g_k = tl.zeros((BLOCK, D), dtype=CT)
    g_v = tl.zeros((BLOCK, D), dtype=CT)
    for f in range(4):
        kv, _ = _kv_tile(kvs_ptr, bh, f, cols, dmask, d)
        gkv, gs = _kv_tile(gkvs_ptr, bh, f, cols, dmask, d)
        gkv = tl.where(_passes(kv, lo, hi), gkv, 0.0)
        w = tl.load(w_ptr + n * 4 + f, mask=nmask, other=0.0).to(CT)
        g_k += w[:, None] * (
            tl.dot(v, tl.trans(gkv), input_precision='ieee') + gs[None, :])
        g_v += tl.dot(k * w[:, None], gkv, input_precision='ieee')
    g_k = tl.where(k_lin > 0, g_k, 0.0)
    nm2 = nmask[:, None] & dmask[None, :]
    out = gkv_ptr + b * g_batch + h * d + n[:, None] * g_row + cols[None, :]
    tl.store(out, g_k.to(gkv_ptr.dtype.element_ty), mask=nm2)
    tl.store(out + hd, g_v.to(gkv_ptr.dtype.element_ty), mask=nm2)


@triton.jit
def _gated_clamp_kernel(p_ptr, g_ptr, y_ptr, N, C, lo: tl.constexpr,
                        hi: tl.constexpr, CT: tl.constexpr,
                        BLOCK: tl.constexpr, BLOCK_C: tl.constexpr):
    """``y = sign(p) min(a + a g, hi)``, ``a = clamp(|p|, lo, hi)``: the
    last two clamps and the gate, on a ``BLOCK x BLOCK_C`` tile."""
    b = tl.program_id(0)
    n = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    m = (n < N)[:, None] & (c < C)[None, :]
    at = b * N * C + n[:, None] * C + c[None, :]
    p = tl.load(p_ptr + at, mask=m, other=0.0).to(CT)
    g = tl.load(g_ptr + b * C + c, mask=c < C, other=0.0).to(CT)
    lo, hi = _bounds(lo, hi, CT)
    a = tl.minimum(tl.maximum(tl.abs(p), lo), hi)
    y = _sign(p) * tl.minimum(a + a * g[None, :], hi)
    tl.store(y_ptr + at, y.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _gated_clamp_backward_kernel(gy_ptr, p_ptr, g_ptr, gp_ptr, gg_ptr, N, C,
                                 chunk, lo: tl.constexpr, hi: tl.constexpr,
                                 BLOCK: tl.constexpr, BLOCK_C: tl.constexpr):
    """The gradients of ``p`` and, in partial sums over one chunk of
    tokens, of the gate ``g``."""
    b = tl.program_id(0)
    k = tl.program_id(1)
    CT: tl.constexpr = gg_ptr.dtype.element_ty
    lo, hi = _bounds(lo, hi, CT)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    g = tl.load(g_ptr + b * C + c, mask=cmask, other=0.0).to(CT)
    acc = tl.zeros((BLOCK_C, ), dtype=CT)
    end = tl.minimum(k * chunk + chunk, N)
    for n0 in range(k * chunk, end, BLOCK):
        n = n0 + tl.arange(0, BLOCK)
        m = (n < end)[:, None] & cmask[None, :]
        at = b * N * C + n[:, None] * C + c[None, :]
        p = tl.load(p_ptr + at, mask=m, other=0.0).to(CT)
        gy = tl.load(gy_ptr + at, mask=m, other=0.0).to(CT)
        a = tl.minimum(tl.maximum(tl.abs(p), lo), hi)
        gy = tl.where(a + a * g[None, :] <= hi, gy, 0.0)
        gp = tl.where(_passes(p, lo, hi), gy * (1.0 + g[None, :]), 0.0)
        tl.store(gp_ptr + at, gp.to(gp_ptr.dtype.element_ty), mask=m)
        acc += tl.sum(gy * _sign(p) * a, 0)
    tl.store(gg_ptr + (b * tl.num_programs(1) + k) * C + c, acc, mask=cmask)


def _width(d: int) -> int:
    """The power-of-two tile width for head width ``d`` (``tl.dot`` needs
    at least 16)."""
    return max(16, triton.next_power_of_2(d))


def _chunks(programs: int, n: int, chunks) -> int:
    """How many chunks a token-sum pass of ``programs`` programs per chunk
    splits ``n`` tokens into."""
    blocks = triton.cdiv(n, BLOCK_N)
    if chunks is None:
        chunks = triton.cdiv(_TARGET_PROGRAMS, programs)
    return max(1, min(int(chunks), blocks))


def _check_device(*tensors: Tensor) -> None:
    check_device('the Triton vicinity attention', tensors[0])


@_op('vicinity_token_sums(Tensor a, Tensor b, Tensor w, int num_heads, '
     'bool b_by_heads, ScalarType dtype, int chunks) -> Tensor')
def token_sums(a: Tensor, b: Tensor, w: Tensor, num_heads: int,
               b_by_heads: bool, dtype: torch.dtype, chunks: int) -> Tensor:
    """Partial ``[sum_j relu(a_j)~^T b_j | sum_j relu(a_j)~ b_jd]`` per chunk
    of tokens: ``B*h x chunks x 4 x d x (d+1)`` in ``dtype``.

    ``a`` is a ``B x N x (..., h*d)`` slice of heads (keys, or queries);
    ``b`` the same layout (values, with the key sums' ones implied) when
    ``b_by_heads``, else ``B*h x N x (d+1)`` (the backward's ``g_out``).
    """
    _check_device(a)
    B, N, hd = a.shape
    d = hd // num_heads
    bh = B * num_heads
    out = a.new_empty((bh, chunks, 4, d, d + 1), dtype=dtype)
    chunk = triton.cdiv(triton.cdiv(N, chunks), BLOCK_N) * BLOCK_N
    _token_sums_kernel[(bh, chunks,
                        4)](a,
                            a.stride(1),
                            b,
                            b.stride(1),
                            w,
                            out,
                            N,
                            num_heads,
                            d,
                            chunk,
                            a.stride(0),
                            b.stride(0),
                            b_by_heads,
                            _width(d),
                            BLOCK_N,
                            num_stages=NUM_STAGES)
    return out


@_fake('vicinity_token_sums')
def _(a, b, w, num_heads, b_by_heads, dtype, chunks):
    B, N, hd = a.shape
    d = hd // num_heads
    return a.new_empty((B * num_heads, chunks, 4, d, d + 1), dtype=dtype)


@_op('vicinity_queries(Tensor q_lin, Tensor wq, Tensor kvs, int num_heads) '
     '-> (Tensor, Tensor)')
def queries(q_lin: Tensor, wq: Tensor, kvs: Tensor,
            num_heads: int) -> tuple[Tensor, Tensor]:
    """``(o, r)``: ``o`` (``B x N x h*d``, contiguous, ``q_lin``'s dtype),
    the reciprocal normaliser ``r`` (``B*h x N``, in ``kvs``' dtype).
    ``q_lin`` may be a slice of a wider tensor (its last dim contiguous)."""
    _check_device(q_lin)
    B, N, hd = q_lin.shape
    d = hd // num_heads
    o = q_lin.new_empty((B, N, hd))
    r = kvs.new_empty((B * num_heads, N))
    grid = (B * num_heads, triton.cdiv(N, QUERIES['BLOCK']))
    _queries_kernel[grid](
        q_lin,
        q_lin.stride(0),
        q_lin.stride(1),
        wq,
        kvs,
        o,
        r,
        N,
        num_heads,
        d,
        common.CLAMP_MIN,
        common.CLAMP_MAX,
        common.DENOMINATOR_EPS,
        _width(d),
        num_stages=NUM_STAGES,
        **QUERIES)
    return o, r


@_fake('vicinity_queries')
def _(q_lin, wq, kvs, num_heads):
    B, N, hd = q_lin.shape
    return q_lin.new_empty((B, N, hd)), kvs.new_empty((B * num_heads, N))


@_op('vicinity_queries_backward(Tensor grad_o, Tensor q_lin, Tensor wq, '
     'Tensor kvs, Tensor r, int num_heads, int width) -> (Tensor, Tensor)')
def queries_backward(grad_o: Tensor, q_lin: Tensor, wq: Tensor, kvs: Tensor,
                     r: Tensor, num_heads: int,
                     width: int) -> tuple[Tensor, Tensor]:
    """``(grad, g_out)``: ``grad`` is ``B x N x width`` in ``q_lin``'s dtype,
    ``q_lin``'s gradient in its first ``h*d`` columns (the rest for
    :func:`keys_backward` to fill when q, k and v came from one GEMM);
    ``g_out`` is ``B*h x N x (d+1)``."""
    _check_device(q_lin)
    B, N, hd = q_lin.shape
    d = hd // num_heads
    grad = q_lin.new_empty((B, N, width))
    g_out = kvs.new_empty((B * num_heads, N, d + 1))
    grid = (B * num_heads, triton.cdiv(N, QUERIES_BACKWARD['BLOCK']))
    _queries_backward_kernel[grid](
        grad_o.contiguous(),
        q_lin,
        q_lin.stride(0),
        q_lin.stride(1),
        wq,
        kvs,
        r,
        grad,
        grad.stride(0),
        grad.stride(1),
        g_out,
        N,
        num_heads,
        d,
        common.CLAMP_MIN,
        common.CLAMP_MAX,
        _width(d),
        num_stages=NUM_STAGES,
        **QUERIES_BACKWARD)
    return grad, g_out


@_fake('vicinity_queries_backward')
def _(grad_o, q_lin, wq, kvs, r, num_heads, width):
    B, N, hd = q_lin.shape
    return q_lin.new_empty((B, N, width)), kvs.new_empty(
        (B * num_heads, N, hd // num_heads + 1))


@_op('vicinity_keys_backward(Tensor kv_lin, Tensor wk, Tensor kvs, '
     'Tensor g_kvs, int num_heads, Tensor(a!) grad) -> ()')
def keys_backward(kv_lin: Tensor, wk: Tensor, kvs: Tensor, g_kvs: Tensor,
                  num_heads: int, grad: Tensor) -> None:
    """Writes the gradient of ``kv_lin`` (``B x Nk x 2hd``, may be a slice
    of a wider tensor) into the last ``2hd`` columns of ``grad``
    (``B x Nk x width``, ``kv_lin``'s dtype)."""
    _check_device(kv_lin)
    B, N, hd2 = kv_lin.shape
    d = hd2 // 2 // num_heads
    grid = (B * num_heads, triton.cdiv(N, KEYS_BACKWARD['BLOCK']))
    _keys_backward_kernel[grid](
        kv_lin,
        kv_lin.stride(0),
        kv_lin.stride(1),
        wk,
        kvs,
        g_kvs,
        grad[..., grad.shape[-1] - hd2:],
        grad.stride(0),
        grad.stride(1),
        N,
        num_heads,
        d,
        common.CLAMP_MIN,
        common.CLAMP_MAX,
        _width(d),
        num_stages=NUM_STAGES,
        **KEYS_BACKWARD)


@_fake('vicinity_keys_backward')
def _(kv_lin, wk, kvs, g_kvs, num_heads, grad):
    return None


def _last_dim_contiguous(t: Tensor) -> Tensor:
    """``t``, copied only if its rows are not contiguous (the kernels take
    batch and token strides)."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _reduce_chunks(partials: Tensor) -> Tensor:
    """``B*h x chunks x 4 x d x (d+1)`` to ``B*h x 4 x d x (d+1)``."""
    if partials.shape[1] == 1:
        return partials.squeeze(1)
    return partials.sum(dim=1)


class FusedVicinityCore(torch.autograd.Function):
    """:class:`~.autograd.VicinityCore` in Triton kernels.

    ``forward(q_lin, kv_lin, wq, wk, num_heads, chunks)``; ``chunks``: how
    many partial sums a token-sum pass uses (None: enough programs for a
    GPU). ``kv_lin`` None: ``q_lin`` is ``B x N x 3hd`` (q, k and v from
    one GEMM), which the kernels read in place, and its gradient comes
    back as one tensor. Returns ``o`` (``B x N x h*d``) in ``q_lin``'s
    dtype: the cast happens as it is stored.
    """

    @staticmethod
    def _split(q_in, kv_in):
        """``q_lin, kv_lin``, each with its last dim contiguous (views of
        ``q_in`` when ``kv_in`` is None)."""
        if kv_in is None:
            q_in = _last_dim_contiguous(q_in)
            hd = q_in.shape[-1] // 3
            return q_in[..., :hd], q_in[..., hd:]
        return _last_dim_contiguous(q_in), _last_dim_contiguous(kv_in)

    @staticmethod
    def forward(ctx, q_in, kv_in, wq, wk, num_heads, chunks=None):
        q_lin, kv_lin = FusedVicinityCore._split(q_in, kv_in)
        B, Nk, hd2 = kv_lin.shape
        hd = hd2 // 2
        ct = common.core_dtype(q_lin.dtype)
        wq, wk = wq.to(ct), wk.to(ct)
        ctx.chunks = chunks
        c = _chunks(4 * B * num_heads, Nk, chunks)
        kvs = _reduce_chunks(
            token_sums(kv_lin[..., :hd], kv_lin[..., hd:], wk, num_heads, True,
                       ct, c))
        o, r = queries(q_lin, wq, kvs, num_heads)
        ctx.save_for_backward(q_in, kv_in, wq, wk, kvs, r)
        ctx.num_heads = num_heads
        return o

    @staticmethod
    def backward(ctx, grad_o):
        q_in, kv_in, wq, wk, kvs, r = ctx.saved_tensors
        q_lin, kv_lin = FusedVicinityCore._split(q_in, kv_in)
        h = ctx.num_heads
        joined = kv_in is None
        B, N, hd = q_lin.shape
        grad, g_out = queries_backward(
            grad_o.to(q_lin.dtype), q_lin, wq, kvs, r, h,
            3 * hd if joined else hd)
        c = _chunks(4 * B * h, N, ctx.chunks)
        g_kvs = _reduce_chunks(
            token_sums(q_lin, g_out, wq, h, False, kvs.dtype, c))
        # one GEMM's [q | k | v]: k and v's gradients beside q's
        grad_kv = grad if joined else kv_lin.new_empty(kv_lin.shape)
        keys_backward(kv_lin, wk, kvs, g_kvs, h, grad_kv)
        return (grad, None if joined else grad_kv, None, None, None, None)


GATE_BLOCK_C = 64  # channels per program of the gated clamp


@_op('gated_clamp(Tensor p, Tensor g) -> Tensor')
def gated_clamp(p: Tensor, g: Tensor) -> Tensor:
    """``signed_clamp(o + o g)`` with ``o = signed_clamp(p)``; ``p``:
    ``B x N x C`` (``out_proj``'s output), ``g``: ``B x 1 x C`` (the gate)."""
    _check_device(p)
    B, N, C = p.shape
    y = torch.empty_like(p)
    grid = (B, triton.cdiv(N, BLOCK_N), triton.cdiv(C, GATE_BLOCK_C))
    ct = tl.float64 if p.dtype == torch.float64 else tl.float32
    _gated_clamp_kernel[grid](p, g.contiguous(), y, N, C, common.CLAMP_MIN,
                              common.CLAMP_MAX, ct, BLOCK_N, GATE_BLOCK_C)
    return y


@_fake('gated_clamp')
def _(p, g):
    return torch.empty_like(p)


@_op('gated_clamp_backward(Tensor grad_y, Tensor p, Tensor g, int chunks) '
     '-> (Tensor, Tensor)')
def gated_clamp_backward(grad_y: Tensor, p: Tensor, g: Tensor,
                         chunks: int) -> tuple[Tensor, Tensor]:
    """``(grad_p, partial grad_g)``; the second is ``B x chunks x C`` in
    :func:`~.common.core_dtype`, to be summed over the chunks."""
    _check_device(p)
    B, N, C = p.shape
    grad_p = torch.empty_like(p)
    partial = p.new_empty((B, chunks, C), dtype=common.core_dtype(p.dtype))
    chunk = triton.cdiv(triton.cdiv(N, chunks), BLOCK_N) * BLOCK_N
    grid = (B, chunks, triton.cdiv(C, GATE_BLOCK_C))
    _gated_clamp_backward_kernel[grid](grad_y.contiguous(), p, g.contiguous(),
                                       grad_p, partial, N, C, chunk,
                                       common.CLAMP_MIN, common.CLAMP_MAX,
                                       BLOCK_N, GATE_BLOCK_C)
    return grad_p, partial


@_fake('gated_clamp_backward')
def _(grad_y, p, g, chunks):
    B, N, C = p.shape
    return torch.empty_like(p), p.new_empty((B, chunks, C),
                                            dtype=common.core_dtype(p.dtype))


class FusedGatedClamp(torch.autograd.Function):
    """:class:`~.autograd.GatedClamp` in Triton kernels, on the gate ``g``
    itself (``B x 1 x C``, not ``1 + g``): one pass each way.
    ``forward(p, g, chunks=None)``; ``chunks`` as in
    :class:`FusedVicinityCore`."""

    @staticmethod
    def forward(ctx, p, g, chunks=None):
        p = p.contiguous()
        ctx.save_for_backward(p, g)
        ctx.chunks = chunks
        return gated_clamp(p, g)

    @staticmethod
    def backward(ctx, grad_y):
        p, g = ctx.saved_tensors
        B, N, C = p.shape
        blocks = B * triton.cdiv(C, GATE_BLOCK_C)
        c = _chunks(blocks, N, ctx.chunks)
        grad_p, partial = gated_clamp_backward(grad_y, p, g, c)
        grad_g = partial.sum(dim=1, keepdim=True, dtype=g.dtype)
        return grad_p, grad_g, None
