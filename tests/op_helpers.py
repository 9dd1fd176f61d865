"""Watching the ATen ops a piece of code dispatches, for the kernel tests."""
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class CastShapes(TorchDispatchMode):
    """Records the shape of every tensor a ``_to_copy`` (a cast) copies."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default:
            self.shapes.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


class LargestOutput(TorchDispatchMode):
    """The bytes of the largest tensor an op (not a view) makes."""

    def __init__(self):
        super().__init__()
        self.nbytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.nbytes = max(self.nbytes, t.nbytes)
        return out
