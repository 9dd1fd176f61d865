"""FLOP and parameter counting built on mmengine's analysis counter.

mmengine's :class:`~mmengine.analysis.FlopAnalyzer` traces a model with
``torch.jit`` and counts one fused multiply-add as one FLOP (the convention of
the Swin / SegFormer / PVT papers' GFLOPs tables). Out of the box it only has
handles for a few matrix products, and two of them undercount:

* ``aten::matmul``: the stock handle computes ``prod(a.shape) * b.shape[-1]``,
  which is wrong when the *second* operand carries the (broadcast) batch
  dimensions, e.g. ``q (B, h, N, 4d) @ kv (B, h, 4d, d)`` after a broadcast;
* ``aten::einsum``: the stock handle allocates dense ``numpy`` arrays of the
  operand shapes (hundreds of MB at 2048x2048) and rounds the result to 3
  significant digits;

and ``baddbmm`` / ``addbmm`` / ``mv`` / ``dot`` /
``scaled_dot_product_attention`` / ``_native_multi_head_attention`` and the
in-place ``addmm_`` / ``baddbmm_`` / ... forms are not counted at all.
Linear attention such as VVT's (and its fused inference path) is made of
exactly these ops, so :func:`flop_handles` supplies exact shape-based handles
for all of them; every counting function here
installs them.

Element-wise ops (additions, the cos/sin position modulation, activations,
clamps) are not counted, as in mmengine and the papers; ``unsupported_ops`` in
the results lists them so nothing is silently ignored.
"""
import os.path as osp
from collections import Counter
from math import prod
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.complexity_analysis import _DEFAULT_SUPPORTED_FLOP_OPS
from mmengine.analysis.jit_handles import get_shape
from mmengine.analysis.print_helper import complexity_stats_table

__all__ = [
    'MATMUL_OPS', 'flop_handles', 'einsum_macs', 'flop_analyzer',
    'count_flops', 'backbone_complexity', 'build_segmentor',
    'segmentor_complexity'
]

# The matrix-product ops whose FLOPs this module counts on top of (or instead
# of) mmengine's defaults. ``count_flops(..., count_matmuls=False)`` switches
# exactly these off, which is how the tests check that they are counted.
MATMUL_OPS = (
    'aten::matmul',
    'aten::mm',
    'aten::bmm',
    'aten::baddbmm',
    'aten::baddbmm_',
    'aten::addbmm',
    'aten::addbmm_',
    'aten::mv',
    'aten::addmv',
    'aten::addmv_',
    'aten::dot',
    'aten::vdot',
    'aten::einsum',
    'aten::scaled_dot_product_attention',
    'aten::_native_multi_head_attention',
)


def _shape(value: Any, op: str) -> List[int]:
    shape = get_shape(value)
    if shape is None:
        raise ValueError(f'{op}: the traced graph has no complete shape for '
                         f'an operand ({value}); cannot count its FLOPs')
    return list(shape)


def _contraction_handle(op: str, first: int, second: int):
    """Handle for ``out = A @ B`` style ops: MACs = numel(out) * K.

    ``first``/``second`` index the two product operands in the op's inputs
    (``addmm``-like ops carry an extra ``self`` operand in front). Batch
    dimensions of either operand (broadcast included) are accounted for by
    the output's numel; for ``addbmm`` the summed batch is multiplied in.
    """

    def handle(inputs: List[Any], outputs: List[Any]) -> int:
        a = _shape(inputs[first], op)
        b = _shape(inputs[second], op)
        out = _shape(outputs[0], op)
        k = a[-1]
        if len(b) >= 2 and b[-2] != k:
            raise ValueError(f'{op}: inner dimensions differ: {a} @ {b}')
        macs = prod(out) * k
        if op.startswith('aten::addbmm'):
            macs *= a[0]
        return int(macs)

    return handle


def _expand_einsum(
        equation: str, shapes: Sequence[Sequence[int]]
) -> Tuple[List[str], str, Dict[str, int]]:
    """Parse an einsum equation into per-operand subscripts, output
    subscripts and index sizes, expanding ``...`` and implicit outputs."""
    equation = equation.replace(' ', '')
    if '->' in equation:
        lhs, rhs = equation.split('->')
    else:
        lhs, rhs = equation, None
    terms = lhs.split(',')
    if len(terms) != len(shapes):
        raise ValueError(f'einsum {equation!r}: {len(terms)} operands in the '
                         f'equation but {len(shapes)} tensors')
    used = set(c for c in equation if c.isalpha())
    spare = [
        c for c in 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
        if c not in used
    ]
    n_ell = 0
    for term, shape in zip(terms, shapes):
        if '...' in term:
            n_ell = max(n_ell, len(shape) - len(term.replace('...', '')))
    ell = ''.join(spare[:n_ell])
    subs = []
    sizes: Dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        if '...' in term:
            k = len(shape) - len(term.replace('...', ''))
            term = term.replace('...', ell[n_ell - k:] if k else '')
        if len(term) != len(shape):
            raise ValueError(f'einsum {equation!r}: subscripts {term!r} do '
                             f'not match an operand of shape {list(shape)}')
        for c, n in zip(term, shape):
            # broadcasting: a size-1 dimension takes the other operand's size
            sizes[c] = max(sizes.get(c, 1), int(n))
        subs.append(term)
    if rhs is None:
        counts = Counter(''.join(subs))
        rhs = ell + ''.join(
            sorted(c for c in counts if counts[c] == 1 and c not in ell))
    else:
        rhs = rhs.replace('...', ell)
    return subs, rhs, sizes


def einsum_macs(equation: str, shapes: Sequence[Sequence[int]]) -> int:
    """Exact multiply-accumulate count of an einsum, from shapes only.

    Two operands: the product of the sizes of all distinct indices. More
    operands: contracted pairwise along numpy's optimal path, summing the
    MACs of every pairwise product. A single operand (a sum / transpose /
    diagonal) involves no products and counts 0.
    """
    subs, out, sizes = _expand_einsum(equation, shapes)
    if len(subs) == 1:
        return 0
    if len(subs) == 2:
        return int(prod(sizes[c] for c in set(subs[0]) | set(subs[1])))
    # zero-stride dummies: numpy needs arrays but only reads their shapes
    dummies = [
        np.lib.stride_tricks.as_strided(
            np.zeros(1), shape=[sizes[c] for c in s], strides=[0] * len(s))
        for s in subs
    ]
    path = np.einsum_path(
        ','.join(subs) + '->' + out, *dummies, optimize='optimal')[0][1:]
    operands = list(subs)
    macs = 0
    for step in path:
        picked = [operands[i] for i in step]
        for i in sorted(step, reverse=True):
            operands.pop(i)
        involved = set(''.join(picked))
        if len(picked) > 1:
            macs += (len(picked) - 1) * prod(sizes[c] for c in involved)
        keep = set(''.join(operands)) | set(out)
        operands.append(''.join(c for c in sorted(involved) if c in keep))
    return int(macs)


def _einsum_handle(inputs: List[Any], outputs: List[Any]) -> int:
    equation = inputs[0].toIValue()
    shapes = [_shape(v, 'aten::einsum') for v in inputs[1].node().inputs()]
    return einsum_macs(equation, shapes)


def _sdpa_handle(inputs: List[Any], outputs: List[Any]) -> int:
    """``softmax(q k^T) v``: two products of ``Nq x Nk x d`` per batch."""
    q = _shape(inputs[0], 'aten::scaled_dot_product_attention')
    k = _shape(inputs[1], 'aten::scaled_dot_product_attention')
    v = _shape(inputs[2], 'aten::scaled_dot_product_attention')
    batch = prod(q[:-2])
    return int(batch * q[-2] * k[-2] * (q[-1] + v[-1]))


def _native_mha_handle(inputs: List[Any], outputs: List[Any]) -> int:
    """``torch._native_multi_head_attention`` (nn.MultiheadAttention's
    inference fast path): in-projections, q k^T, attn v, out-projection."""
    op = 'aten::_native_multi_head_attention'
    q, k, v = (_shape(inputs[i], op) for i in range(3))
    embed = int(inputs[3].toIValue())
    batch, nq, nk = q[0], q[1], k[1]
    proj = batch * (nq + 2 * nk) * embed * embed + batch * nq * embed * embed
    attn = batch * nq * nk * embed * 2
    return int(proj + attn)


def flop_handles() -> Dict[str, Any]:
    """Op handles for :class:`~mmengine.analysis.FlopAnalyzer` covering every
    op in :data:`MATMUL_OPS` exactly (see the module docstring)."""
    return {
        'aten::matmul': _contraction_handle('aten::matmul', 0, 1),
        'aten::mm': _contraction_handle('aten::mm', 0, 1),
        'aten::bmm': _contraction_handle('aten::bmm', 0, 1),
        'aten::mv': _contraction_handle('aten::mv', 0, 1),
        'aten::dot': _contraction_handle('aten::dot', 0, 1),
        'aten::vdot': _contraction_handle('aten::vdot', 0, 1),
        'aten::baddbmm': _contraction_handle('aten::baddbmm', 1, 2),
        'aten::baddbmm_': _contraction_handle('aten::baddbmm_', 1, 2),
        'aten::addbmm': _contraction_handle('aten::addbmm', 1, 2),
        'aten::addbmm_': _contraction_handle('aten::addbmm_', 1, 2),
        'aten::addmv': _contraction_handle('aten::addmv', 1, 2),
        'aten::addmv_': _contraction_handle('aten::addmv_', 1, 2),
        'aten::einsum': _einsum_handle,
        'aten::scaled_dot_product_attention': _sdpa_handle,
        'aten::_native_multi_head_attention': _native_mha_handle,
    }


# In-place ``out.addmm_(x, w)``: a linear layer's GEMM accumulated into its
# output (e.g. fused with a residual add). mmengine counts ``aten::addmm``
# (a Linear's GEMM) by default but not this in-place form; like ``addmm`` it
# is counted whether or not ``count_matmuls`` is set.
LINEAR_INPLACE_OPS = {
    'aten::addmm_': _contraction_handle('aten::addmm_', 1, 2)
}


def flop_analyzer(model: nn.Module,
                  inputs: Union[torch.Tensor, Tuple[Any, ...]],
                  count_matmuls: bool = True) -> FlopAnalyzer:
    """A :class:`~mmengine.analysis.FlopAnalyzer` with :func:`flop_handles`
    installed (``count_matmuls=False`` removes every op in
    :data:`MATMUL_OPS` instead, e.g. to see what the products contribute).

    Warnings about uncalled modules / unsupported ops are silenced; the
    unsupported ops are still reported by ``analyzer.unsupported_ops()``.
    """
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**LINEAR_INPLACE_OPS)
    if count_matmuls:
        analyzer.set_op_handle(**flop_handles())
    else:
        # set_op_handle(op=None) only adds ``op`` to the ignored set and
        # leaves an existing default handle counting (mmengine 0.10.7), so
        # rebuild the handle table without the product ops instead.
        defaults = dict(_DEFAULT_SUPPORTED_FLOP_OPS)
        analyzer.clear_op_handles()
        analyzer.set_op_handle(**{
            op: handle
            for op, handle in defaults.items() if op not in MATMUL_OPS
        })
        analyzer.set_op_handle(**LINEAR_INPLACE_OPS)
        analyzer.set_op_handle(**{op: None for op in MATMUL_OPS})
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def count_flops(model: nn.Module,
                inputs: Union[torch.Tensor, Tuple[Any, ...]],
                count_matmuls: bool = True) -> Dict[str, Any]:
    """Count the FLOPs (MACs) of ``model(*inputs)``.

    Returns ``dict(flops=int, params=int, by_operator=dict,
    unsupported_ops=dict, analyzer=FlopAnalyzer)``. The model is traced as
    is: put it in ``eval()`` first for inference numbers.
    """
    analyzer = flop_analyzer(model, inputs, count_matmuls=count_matmuls)
    with torch.no_grad():
        total = int(analyzer.total())
    return dict(
        flops=total,
        params=int(parameter_count(model)['']),
        by_operator={
            k: int(v)
            for k, v in analyzer.by_operator().items()
        },
        unsupported_ops=dict(analyzer.unsupported_ops()),
        analyzer=analyzer)


def backbone_complexity(model: nn.Module,
                        shape: Tuple[int, int] = (512, 512),
                        batch_size: int = 1,
                        in_channels: int = 3,
                        count_matmuls: bool = True) -> Dict[str, Any]:
    """Params and FLOPs of a backbone on a random ``B x C x H x W`` input
    (the model is put in eval mode for the count and restored after)."""
    shape = _check_shape(shape)
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else 'cpu'
        x = torch.randn(batch_size, in_channels, *shape, device=device)
        result = count_flops(model, x, count_matmuls=count_matmuls)
    finally:
        model.train(was_training)
    result['shape'] = tuple(shape)
    return result


def _check_shape(shape: Any) -> Tuple[int, int]:
    if isinstance(shape, int):
        shape = (shape, shape)
    shape = tuple(shape)
    if len(shape) == 1:
        shape = (shape[0], shape[0])
    if len(shape) != 2 or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0
            for s in shape):
        raise ValueError(f'shape must be (H, W) with positive ints (or one '
                         f'int for a square), got {shape!r}')
    return shape


def _load_cfg(cfg_or_path: Any, cfg_options: Optional[dict] = None):
    from mmengine.config import Config
    if isinstance(cfg_or_path, (str, )) or hasattr(cfg_or_path, '__fspath__'):
        path = str(cfg_or_path)
        if not osp.isfile(path):
            raise FileNotFoundError(f'config file not found: {path}')
        cfg = Config.fromfile(path)
    elif isinstance(cfg_or_path, Config):
        cfg = cfg_or_path.copy()
    elif isinstance(cfg_or_path, dict):
        cfg = Config(cfg_or_path)
    else:
        raise TypeError(f'cfg_or_path must be a config path, an mmengine '
                        f'Config or a dict, got {type(cfg_or_path).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError('the config has no `model` entry to build')
    return cfg


def build_segmentor(cfg_or_path: Any,
                    cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the (randomly initialised, no checkpoint loaded) model of an
    mmseg config on CPU, with SyncBN reverted to BN so it runs in one
    process. ``custom_imports`` in the config are honoured."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    cfg = _load_cfg(cfg_or_path, cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    return revert_sync_batchnorm(model)


def segmentor_complexity(cfg_or_path: Any,
                         shape: Tuple[int, int] = (512, 512),
                         cfg_options: Optional[dict] = None,
                         count_matmuls: bool = True) -> Dict[str, Any]:
    """Params and FLOPs of the segmentor in an mmseg config, for one image.

    Counts what inference runs: ``model(inputs, mode='tensor')`` (backbone,
    neck, decode head; the auxiliary head is train-only and left out, as in
    mmseg's own ``get_flops.py``) on a normalised random ``1 x 3 x H x W``
    input, in eval mode, with :func:`flop_handles` so attention products are
    counted.

    Args:
        cfg_or_path: A config path, an mmengine ``Config`` or a dict.
        shape (tuple[int, int]): The input's ``(H, W)``. Default: 512x512.
        cfg_options (dict, optional): Overrides merged into the config, as
            ``--cfg-options`` takes them. Default: None.
        count_matmuls (bool): Count the matrix products of
            :data:`MATMUL_OPS` (False: mmengine's stock handles only, which
            is how the tests show what they add). Default: True.

    Returns ``dict(params=int, flops=int, table=str, shape=(H, W),
    by_operator=dict, unsupported_ops=dict, params_with_aux=int)``;
    ``params`` excludes the auxiliary head, ``params_with_aux`` includes it.
    """
    shape = _check_shape(shape)
    model = build_segmentor(cfg_or_path, cfg_options)
    params_with_aux = int(parameter_count(model)[''])
    if getattr(model, 'auxiliary_head', None) is not None:
        model.auxiliary_head = None
    model.eval()
    channels = 3
    backbone = getattr(model, 'backbone', None)
    if backbone is not None and hasattr(backbone, 'in_channels'):
        if isinstance(backbone.in_channels, int):
            channels = backbone.in_channels
    inputs = torch.randn(1, channels, *shape)

    # BaseSegmentor.forward(inputs) defaults to mode='tensor'
    result = count_flops(model, inputs, count_matmuls=count_matmuls)
    analyzer = result.pop('analyzer')
    table = complexity_stats_table(
        flops=analyzer, max_depth=3, show_param_shapes=False)
    result.update(
        table=table, shape=tuple(shape), params_with_aux=params_with_aux)
    return result
