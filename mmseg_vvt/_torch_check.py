# Copyright (c) mmseg-vvt contributors.
"""The torch features mmseg_vvt needs, checked before anything uses them.

mmseg 1.2.2's usual stack pairs it with an older torch (mmcv 2.1.0's
prebuilt wheels stop at torch 2.1). There, the first call of a missing API
would fail deep inside a checkpoint load or a forward pass; this names
what is missing at ``import mmseg_vvt`` instead. Features are looked up
rather than a version compared: that is what the code calls.
"""
import torch

# (dotted name under torch, what mmseg_vvt uses it for); looked up one
# attribute at a time, so a release without a whole submodule
# (torch.compiler before 2.1) is reported, not an AttributeError here
REQUIRED = (
    ('torch.serialization.add_safe_globals',
     "checkpoints loaded with weights_only=True and mmseg_vvt's allow-list"),
    ('torch.serialization.get_unsafe_globals_in_checkpoint',
     'naming what a refused checkpoint holds'),
    ('torch.get_autocast_dtype', 'the kernels under AMP'),
    ('torch.amp.is_autocast_available', 'the kernels under AMP'),
    ('torch.compiler.is_compiling',
     'the readable formulation under torch.compile'),
)
TESTED = 'torch 2.13 (CPU build) and 2.11 (CUDA 13.0)'


def _has(dotted: str) -> bool:
    obj = torch
    for part in dotted.split('.')[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return True


def missing_features():
    """``'name (what for)'`` for each required feature this torch lacks."""
    return [f'{name} ({why})' for name, why in REQUIRED if not _has(name)]


def check_torch() -> None:
    """Raise ImportError naming every missing feature, if any."""
    missing = missing_features()
    if missing:
        raise ImportError(
            f'mmseg_vvt needs a newer torch than {torch.__version__}, which '
            f'lacks: {"; ".join(missing)}. mmseg_vvt is tested with '
            f'{TESTED}. mmseg 1.2.2 then needs an mmcv < 2.2 built for that '
            'torch (tools/setup_env.sh builds mmcv 2.1.0 from source).')
