# Copyright (c) mmseg-vvt contributors.
"""The torch features mmseg_vvt needs, checked before anything uses them.

mmseg 1.2.2's usual stack pairs it with an older torch (mmcv 2.1.0's
prebuilt wheels stop at torch 2.1). There, the first call of a missing API
would fail deep inside a checkpoint load or a forward pass; this names
what is missing at ``import mmseg_vvt`` instead. Features are looked up
rather than a version compared: that is what the code calls.
"""
import torch

# (owner, attribute, what mmseg_vvt uses it for)
REQUIRED = (
    (torch.serialization, 'add_safe_globals',
     "checkpoints loaded with weights_only=True and mmseg_vvt's allow-list"),
    (torch.serialization, 'get_unsafe_globals_in_checkpoint',
     'naming what a refused checkpoint holds'),
    (torch, 'get_autocast_dtype', 'the kernels under AMP'),
    (torch.amp, 'is_autocast_available', 'the kernels under AMP'),
    (torch.compiler, 'is_compiling',
     'the readable formulation under torch.compile'),
)
TESTED = 'torch 2.13 (CPU build) and 2.11 (CUDA 13.0)'


def missing_features(torch_module=torch):
    """``'owner.attribute (what for)'`` for each required feature that
    ``torch_module``'s release lacks."""
    return [
        f'{owner.__name__}.{name} ({why})' for owner, name, why in REQUIRED
        if not hasattr(owner, name)
    ]


def check_torch() -> None:
    """Raise ImportError naming every missing feature, if any."""
    missing = missing_features()
    if missing:
        raise ImportError(
            f'mmseg_vvt needs a newer torch than {torch.__version__}, which '
            f'lacks: {"; ".join(missing)}. mmseg_vvt is tested with '
            f'{TESTED}. mmseg 1.2.2 then '
            'needs an mmcv < 2.2 built for that torch (tools/setup_env.sh '
            'builds mmcv 2.1.0 from source).')
