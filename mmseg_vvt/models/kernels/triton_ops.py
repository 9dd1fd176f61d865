# Copyright (c) mmseg-vvt contributors.
"""How the Triton kernels become PyTorch ops: the ``mmseg_vvt`` op
namespace, the device check every kernel makes.

Each launch is an op defined with ``torch.library.Library`` (schema, CPU
and CUDA kernel, fake for ``torch.compile``), so autograd, a
``TorchDispatchMode`` and ``torch.compile`` see one op. On CPU tensors the
kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` set before the
Triton kernels are imported), which is how the tests check them without a
GPU.
"""
import torch
from torch import Tensor

NAMESPACE = 'mmseg_vvt'
# Library.define / impl rather than torch.library.custom_op: a call is then
# one dispatch to the kernel, without custom_op's Python layers around it
# (host time per call: tools/op_overhead.py, docs/benchmark.md)
_LIB = torch.library.Library(NAMESPACE, 'DEF')


def op(schema: str):
    """Defines ``mmseg_vvt::<schema>`` with the decorated function as its
    kernel on CUDA and on CPU (Triton's interpreter); returns the op. Its
    fake (shapes only, for ``torch.compile``) is registered with
    :func:`fake`."""

    def define(kernel):
        name = schema[:schema.index('(')]
        _LIB.define(schema)
        for key in ('CPU', 'CUDA'):
            _LIB.impl(name, kernel, key)
        # the overload itself: calling the packet resolves it every call
        return getattr(getattr(torch.ops, NAMESPACE), name).default

    return define


def fake(name: str):
    """Registers the decorated function as ``mmseg_vvt::name``'s fake."""
    return torch.library.register_fake(f'{NAMESPACE}::{name}', lib=_LIB)


def check_device(what: str, t: Tensor) -> None:
    """Refuses CPU tensor ``t`` outside Triton's interpreter, naming the
    kernel (``what``) and the ways out."""
    from triton import knobs
    if t.device.type == 'cpu' and not knobs.runtime.interpret:
        raise RuntimeError(
            f'{what} got CPU tensors; it runs on CUDA, or on CPU in '
            "Triton's interpreter: set TRITON_INTERPRET=1 before Triton is "
            "imported (slow: for tests), or leave implementation('triton') / "
            'MMSEG_VVT_IMPLEMENTATION=triton unset to run the CPU kernels')
