# Copyright (c) mmseg-vvt contributors.
"""The one place that decides which implementation computes a VVT op.

The modules' ``forward`` methods are the readable formulation of the
network (docs/architecture.md). Each hands its call to one of the routing
functions below (:func:`attention`, :func:`mlp`, :func:`block_path`,
:func:`nchw_output`), which asks :func:`select` which path runs and returns
the kernel's result (or the block's way), or None where the module's
readable code is to run:

================  ==========================================================
``reference``     the module's own readable code. Chosen under
                  ``implementation('reference')``, while tracing (the FLOP
                  counter counts the network's math) and while compiling
                  (inductor fuses the readable ops itself).
``autograd``      training: gradients needed, or the module in train mode
                  (dropout and stochastic depth). Memory-lean autograd
                  functions (:mod:`.autograd`) where one exists, else the
                  readable code.
``cpu``           CPU inference in fp32 outside autocast: row bands, token
                  chunks and fused oneDNN ops that keep working sets in
                  cache (:mod:`.cpu`).
``whole``         inference elsewhere (CUDA, or CPU under autocast): whole-
                  tensor ops, a few large kernels (:mod:`.whole`). On every
                  device under ``implementation('whole')``: what CUDA runs,
                  e.g. to measure its memory on CPU.
``triton``        training under ``implementation('triton')`` (or with
                  ``MMSEG_VVT_IMPLEMENTATION=triton`` set): ``autograd``
                  with the attention's core and the MLP's conv + GELU in
                  fused Triton kernels (:mod:`.triton_attention`,
                  :mod:`.triton_mlp`). Opt-in (why: docs/implementation.md,
                  "Triton kernels"), and Triton optional; on CPU tensors
                  it runs in Triton's interpreter (``TRITON_INTERPRET=1``).
``whole_triton``  inference under ``implementation('triton')``, on every
                  device: ``whole``, with the attention's core and gated
                  clamp in the same Triton kernels (four launches where
                  ``whole`` makes some 25 ops), and each MLP band's conv
                  and GELU in one.
================  ==========================================================
"""
import contextlib
import os
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

from . import autograd, cpu, whole
from .common import HW

IMPLEMENTATIONS = ('auto', 'reference', 'triton', 'whole')
# the paths that compute gradients
TRAINING_PATHS = ('autograd', 'triton')
# the inference paths of the whole-tensor kernels (kernels.whole)
WHOLE_PATHS = ('whole', 'whole_triton')
# the default outside implementation() blocks, e.g. for tools/train.py
ENV_VAR = 'MMSEG_VVT_IMPLEMENTATION'


def _checked(name: str, what: str) -> str:
    if name not in IMPLEMENTATIONS:
        raise ValueError(f'{what} must be one of {IMPLEMENTATIONS}, '
                         f'got {name!r}')
    if name == 'triton':
        try:
            import triton  # noqa: F401
        except ImportError as e:
            raise ImportError(
                f"{what} 'triton' needs the triton package (pip install "
                'triton; CUDA builds of torch bring it)') from e
    return name


_current = _checked(os.environ.get(ENV_VAR) or 'auto', ENV_VAR)


@contextlib.contextmanager
def implementation(name: str) -> Iterator[None]:
    """Run VVT modules with ``'auto'`` (dispatched), ``'reference'`` (the
    readable formulation everywhere), ``'triton'`` (``'auto'``, with the
    attention's core and gated clamp and the MLP's conv + GELU in Triton
    kernels, training and inference on every device) or ``'whole'``
    (``'auto'``, with inference in the whole-tensor kernels on every device)
    inside the ``with`` block. Outside such blocks:
    ``$MMSEG_VVT_IMPLEMENTATION``, else ``'auto'``."""
    global _current
    _checked(name, 'implementation')
    previous, _current = _current, name
    try:
        yield
    finally:
        _current = previous


def current_implementation() -> str:
    return _current


def _needs_grad(x: Tensor, module: nn.Module) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad
                                        or any(p.requires_grad
                                               for p in module.parameters()))


def select(x: Tensor, module: nn.Module) -> str:
    """Which implementation ``module`` runs on input ``x`` (see above)."""
    if (_current == 'reference' or torch.jit.is_tracing()
            or torch.compiler.is_compiling()):
        return 'reference'
    if module.training or _needs_grad(x, module):
        return 'triton' if _current == 'triton' else 'autograd'
    if _current == 'triton':
        return 'whole_triton'
    if (_current != 'whole' and x.device.type == 'cpu'
            and x.dtype == torch.float32
            and not torch.is_autocast_enabled('cpu')):
        return 'cpu'
    return 'whole'


def attention(module: nn.Module,
              x: Tensor,
              src: Tensor,
              hw: HW,
              kv_hw: HW,
              joined: Optional[tuple] = None) -> Optional[Tensor]:
    """A ``VicinityAttention``'s output by the kernel of its path, or None
    on the ``reference`` path (the module's readable code runs).

    Args:
        module (nn.Module): The attention (its ``kernel_weights()``).
        x (Tensor): Its ``B x N x C`` query tokens.
        src (Tensor): The tokens keys and values come from (``x``, or its
            spatial reduction).
        hw (tuple[int, int]): ``x``'s grid.
        kv_hw (tuple[int, int]): ``src``'s grid.
        joined (tuple, optional): Its weights as a training block joined
            them (:func:`~.common.joined_block`); None:
            ``module.kernel_weights()``.
    """
    path = select(x, module)
    if path == 'reference':
        return None
    weights = module.kernel_weights()
    if path == 'cpu':
        return cpu.attention(x, src, hw, kv_hw, weights)
    if path in WHOLE_PATHS:
        return whole.attention(
            x, src, hw, kv_hw, weights, fused=path == 'whole_triton')
    return autograd.attention(
        x, src, hw, kv_hw, weights, fused=path == 'triton', joined=joined)


def mlp_kernel_trains(dropout: float) -> bool:
    """Whether an MLP with this dropout rate trains in the training kernel,
    which has no dropout (its block then joins the MLP's weights too)."""
    return dropout == 0


def mlp(module: nn.Module,
        x: Tensor,
        hw: HW,
        dropout: float = 0.,
        joined=None) -> Optional[Tensor]:
    """An ``Mlp``'s output by the kernel of its path, or None where the
    module's readable code runs: the ``reference`` path, and training with
    dropout (:func:`mlp_kernel_trains`).

    Args:
        module (nn.Module): The MLP (its ``kernel_weights()``).
        x (Tensor): Its ``B x N x C`` tokens.
        hw (tuple[int, int]): Their grid.
        dropout (float): The MLP's dropout rate. Default: 0.
        joined (MlpWeights, optional): As for :func:`attention`.
    """
    path = select(x, module)
    if path == 'reference' or (path in TRAINING_PATHS
                               and not mlp_kernel_trains(dropout)):
        return None
    weights = module.kernel_weights()
    if path == 'cpu':
        return cpu.mlp(x, hw, weights)
    if path in WHOLE_PATHS:
        return whole.mlp(x, hw, weights, fused=path == 'whole_triton')
    return autograd.mlp(x, hw, weights, joined=joined, fused=path == 'triton')


def block_path(module: nn.Module, x: Tensor, sr_ratio: int,
               inplace: bool) -> str:
    """How a ``VVTBlock`` runs on tokens ``x``: ``'training'`` (the
    training kernels, with stochastic depth folded into the residual adds
    and the weights joined), ``'fused'`` (CPU inference in one kernel,
    :func:`~.cpu.block`), ``'add_into'`` (whole-tensor inference adding the
    residuals into ``x``, which the caller gave up) or ``'readable'``.

    Args:
        module (nn.Module): The block.
        x (Tensor): Its ``B x N x C`` tokens.
        sr_ratio (int): Its attention's spatial-reduction ratio (the fused
            kernel has none).
        inplace (bool): The caller will not use ``x`` again.
    """
    path = select(x, module)
    if path in TRAINING_PATHS:
        return 'training'
    if path == 'cpu' and cpu.fuses_block(x, sr_ratio):
        return 'fused'
    if path in WHOLE_PATHS and inplace:
        return 'add_into'
    return 'readable'


def trains(module: nn.Module, x: Tensor) -> bool:
    """Whether ``module`` runs the training kernels on ``x`` (then VVT draws
    all its blocks' stochastic depth factors at once)."""
    return select(x, module) in TRAINING_PATHS


def nchw_output(module: nn.Module, x: Tensor) -> Tensor:
    """A stage's NCHW view ``x`` of channels-last tokens as the contiguous
    map necks and heads expect; in CPU inference copied in cache-sized
    steps (:func:`~.cpu.contiguous_nchw`). ``module``: the backbone."""
    if select(x, module) == 'cpu':
        return cpu.contiguous_nchw(x)
    return x.contiguous()
