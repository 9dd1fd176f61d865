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


def block_inference_ops(impl: str) -> int:
    """ATen ops (:class:`OpCounter`'s count) of one inference forward of a
    small ``VVTBlock`` at batch 1, the launch-bound case on a GPU, under
    ``implementation(impl)``, its position factors already built."""
    from analysis_tools.proxies import OpCounter

    from mmseg_vvt.models.backbones.vvt import VVTBlock
    from mmseg_vvt.models.kernels import implementation
    torch.manual_seed(0)
    block = VVTBlock(64, 2, 4, 2, 1).eval()
    x = torch.randn(1, 8 * 8, 64)
    with torch.no_grad(), implementation(impl):
        block(x.clone(), (8, 8), True)  # builds the position factors
        x = x.clone()
        with OpCounter() as count:
            block(x, (8, 8), True)
    return count.total
