"""Device-independent proxies of GPU cost for one training step, or for
one inference forward.

* **ops**: ATen operators dispatched during forward + backward (the
  optimizer step is *not* included: it is the same fused AdamW for every
  backbone and would only add a per-parameter constant). Views, ``detach``
  and other ops that only alias an input (``_unsafe_view``, which
  ``reshape`` and ``matmul`` call) are not counted: they launch no kernel.
  On a GPU each counted op is (at least) one kernel launch and one pass
  over its operands, so a step that dispatches many small ops is launch-
  and memory-bound.
* **bytes moved**: what the counted ops read and write, each op reading
  its inputs and writing its outputs once (a tensor's bytes: its distinct
  elements, so a broadcast input counts once; an ``out=`` argument is
  written, not read). Eager execution moves at least this through device
  memory, and where its ops are memory-bound (all but the GEMMs and
  convolutions) time follows it; a fused kernel (Triton's, one op here)
  moves only its own inputs and outputs.
* **saved bytes**: what autograd keeps alive for backward, from
  ``torch.autograd.graph.saved_tensors_hooks``; each storage is counted
  once however many tensors or views of it are saved (parameters included:
  autograd saves them like any other tensor).

For an inference forward (:func:`inference_proxies`) the ops and the bytes
moved are counted the same way; instead of saved bytes, **peak live
bytes**: the most bytes of storages made inside the forward and alive at
once, taken after each op (:class:`PeakLiveBytes`). On a GPU the caching
allocator's ``max_memory_allocated`` follows the same tensors, rounded to
its blocks, plus library workspaces.

Under autocast (``forward_context``) the counts include mixed precision's
casts: on a GPU each is a launch too. CPU autocast runs LayerNorm in its
input's dtype where CUDA's runs it in fp32, so CUDA's count differs by a
few casts per norm.
"""
import contextlib
import weakref
from collections import Counter
from typing import Callable, Dict

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = [
    'OpCounter', 'PeakLiveBytes', 'SavedTensorBytes', 'inference_proxies',
    'training_step_proxies', 'triton_interpreter_skipped'
]

# ops that only allocate: counted as ops, but they move no bytes
_ALLOCATIONS = {
    torch.ops.aten.empty, torch.ops.aten.empty_like,
    torch.ops.aten.empty_strided, torch.ops.aten.new_empty,
    torch.ops.aten.new_empty_strided
}


def _elements_bytes(t: torch.Tensor) -> int:
    """Bytes of ``t``'s distinct elements (broadcast dimensions, stride 0,
    once)."""
    n = t.element_size()
    for size, stride in zip(t.shape, t.stride()):
        n *= size if stride else 1
    return n if t.numel() else 0


class OpCounter(TorchDispatchMode):
    """Count the ATen ops dispatched inside the ``with`` block, and the
    bytes they move.

    ``counts`` maps each op (``aten.mm.default``...) to its count;
    ``total`` is their sum. Views (per their schema), ``detach`` and ops
    that only alias an input (not in place, every output on an input's
    storage: ``_unsafe_view``) are left out. ``bytes_by_op`` maps each
    counted op to the bytes it read and wrote (:func:`_elements_bytes` of
    its tensor inputs, ``out=`` arguments left out, and of its outputs and
    the arguments it writes in place without returning them; nothing for
    an allocation such as ``empty``); ``bytes_moved`` is their sum.
    """

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()
        self.bytes_by_op: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.is_view or func.overloadpacket is torch.ops.aten.detach:
            return out
        written = [
            t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)
        ]
        mutable = func._schema.is_mutable
        if not mutable and written and _all_alias(
                written,
                tree_flatten((args, kwargs))[0]):
            return out
        self.counts[str(func)] += 1
        if func.overloadpacket in _ALLOCATIONS:
            return out
        read = [
            t for t in tree_flatten(_read_arguments(func, args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        ]
        if mutable:
            written += _mutated_not_returned(func, args, kwargs, written)
        self.bytes_by_op[str(func)] += sum(
            _elements_bytes(t) for t in read + written)
        return out

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def bytes_moved(self) -> int:
        return sum(self.bytes_by_op.values())


def _read_arguments(func, args, kwargs) -> list:
    """``func``'s arguments but its ``out=`` ones (written, not read)."""
    outs = {a.name for a in func._schema.arguments if a.is_out}
    if not outs:
        return [args, kwargs]
    positional = [
        v for a, v in zip(func._schema.arguments, args) if a.name not in outs
    ]
    return [positional, {k: v for k, v in kwargs.items() if k not in outs}]


def _mutated_not_returned(func, args, kwargs, outputs) -> list:
    """The tensors ``func`` writes in place (``Tensor(a!)`` in its schema)
    that it does not return, such as a kernel's gradient buffer: written
    too. (In-place ops such as ``add_`` return what they write.)"""
    returned = {(t.data_ptr(), t.shape) for t in outputs}
    named = dict(zip((a.name for a in func._schema.arguments), args))
    named.update(kwargs)
    return [
        t for a in func._schema.arguments
        if a.alias_info is not None and a.alias_info.is_write and not a.is_out
        for t in tree_flatten(named.get(a.name))[0]
        if isinstance(t, torch.Tensor) and (t.data_ptr(),
                                            t.shape) not in returned
    ]


def _all_alias(outputs, inputs) -> bool:
    """Whether every tensor of ``outputs`` lies on an input's storage."""
    storages = {
        t.untyped_storage().data_ptr()
        for t in inputs if isinstance(t, torch.Tensor)
    }
    return all(t.untyped_storage().data_ptr() in storages
               and t.untyped_storage().nbytes() for t in outputs)


class PeakLiveBytes(TorchDispatchMode):
    """The most bytes of storages made inside the ``with`` block that were
    alive at once (``peak``), checked after each op; ``live``: those alive
    now.

    An op's output is new memory unless its storage is one of its inputs'
    (views, in-place ops, ``out=``); storages made before the block
    (parameters, inputs, caches) are not counted. Each storage is freed
    from the count when it dies (storages keep their Python object while
    alive, so a finalizer on it fires with the memory).
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            if storage.data_ptr() in inputs or storage.nbytes() == 0:
                continue
            inputs.add(storage.data_ptr())  # one storage, several outputs
            self.live += storage.nbytes()
            weakref.finalize(storage, self._free, storage.nbytes())
        self.peak = max(self.peak, self.live)
        return out


class SavedTensorBytes:
    """Bytes of the distinct storages autograd saves for backward inside
    the ``with`` block (``nbytes``, ``tensors``: how many were packed)."""

    def __init__(self):
        self._storages: Dict[tuple, int] = {}
        self.tensors = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self.tensors += 1
        storage = t.untyped_storage()
        key = (t.device.type, t.device.index, storage.data_ptr())
        self._storages[key] = max(self._storages.get(key, 0), storage.nbytes())
        return t

    @property
    def nbytes(self) -> int:
        return sum(self._storages.values())

    def __enter__(self):
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)


def training_step_proxies(
        model: torch.nn.Module,
        inputs: torch.Tensor,
        loss_fn: Callable = None,
        warmup: int = 1,
        forward_context: Callable = None) -> Dict[str, object]:
    """Ops dispatched, bytes moved and bytes saved in one forward +
    backward of ``model`` on ``inputs`` (train mode; loss: the sum of the
    outputs' means unless ``loss_fn(outputs)`` is given), after ``warmup``
    uncounted steps: the step a training run repeats, without one-time
    work such as filling caches (VVT builds its grids' position factors
    once). The forward and the loss run inside ``forward_context()`` when
    given (an autocast, for mixed precision's casts). Gradients are cleared
    before and after. Returns ``dict(ops, ops_by_name, bytes_moved,
    bytes_moved_by_name, saved_bytes, saved_tensors)``.
    """
    model.train()
    if loss_fn is None:
        loss_fn = _mean_of_outputs
    if forward_context is None:
        forward_context = contextlib.nullcontext

    def loss_of_step():
        with forward_context():
            return loss_fn(model(inputs))

    for _ in range(warmup):
        loss_of_step().backward()
    model.zero_grad(set_to_none=True)
    with OpCounter() as ops:
        with SavedTensorBytes() as saved:
            loss = loss_of_step()
        loss.backward()
    model.zero_grad(set_to_none=True)
    return dict(
        ops=ops.total,
        ops_by_name=dict(ops.counts.most_common()),
        bytes_moved=ops.bytes_moved,
        bytes_moved_by_name=dict(ops.bytes_by_op.most_common()),
        saved_bytes=saved.nbytes,
        saved_tensors=saved.tensors)


def inference_proxies(model: torch.nn.Module,
                      inputs: torch.Tensor,
                      warmup: int = 1,
                      forward_context: Callable = None) -> Dict[str, object]:
    """Ops dispatched, bytes moved and peak live bytes
    (:class:`PeakLiveBytes`) of one eval forward of ``model`` on ``inputs``
    under ``no_grad``, after
    ``warmup`` uncounted forwards (one-time work such as VVT's position
    factors left out), inside ``forward_context()`` when given. Returns
    ``dict(ops, ops_by_name, bytes_moved, bytes_moved_by_name,
    peak_bytes)``."""
    model.eval()
    if forward_context is None:
        forward_context = contextlib.nullcontext
    with torch.no_grad():
        for _ in range(warmup):
            with forward_context():
                model(inputs)
        with OpCounter() as ops, PeakLiveBytes() as mem:
            with forward_context():
                out = model(inputs)
        del out
    return dict(
        ops=ops.total,
        ops_by_name=dict(ops.counts.most_common()),
        bytes_moved=ops.bytes_moved,
        bytes_moved_by_name=dict(ops.bytes_by_op.most_common()),
        peak_bytes=mem.peak)


@contextlib.contextmanager
def triton_interpreter_skipped():
    """Inside the block, Triton kernels on CPU tensors are not run: each
    launch returns at once, its output tensors (allocated by the op around
    it) left unset.

    The proxies count the ops dispatched and the tensors they make, not
    their values, and the model's shapes and control flow do not depend on
    values: the ops are the interpreted run's (checked in the tests),
    without Triton's interpreter, which runs a program at a time in Python
    (over an hour for VVT-S at 2048x2048). The live bytes are what a GPU would
    hold: the interpreter keeps its kernels' arguments in reference cycles,
    so under it their memory lives until the garbage collector runs (more
    at the peak). Needs ``TRITON_INTERPRET=1``.
    """
    from unittest import mock

    from triton.runtime.interpreter import InterpretedFunction
    with mock.patch.object(InterpretedFunction, 'run',
                           lambda self, *args, **kwargs: None):
        yield


def _mean_of_outputs(out):
    outs = out if isinstance(out, (list, tuple)) else [out]
    return sum(o.float().mean() for o in outs)
