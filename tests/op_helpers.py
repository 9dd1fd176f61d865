"""Watching the ATen ops a piece of code dispatches, for the kernel tests."""
import torch
from torch.utils._python_dispatch import TorchDispatchMode


class CastShapes(TorchDispatchMode):
    """Records the shape of every tensor a ``_to_copy`` (a cast) copies."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default:
            self.shapes.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))
