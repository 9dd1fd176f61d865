"""mmseg-vvt: the Vicinity Vision Transformer as an mmsegmentation backbone.

Importing this package registers its modules in mmseg's registries, so a
config can say ``custom_imports = dict(imports=['mmseg_vvt'])`` and then
``backbone=dict(type='VVT', ...)``.
"""
from ._torch_check import check_torch

check_torch()  # before any module below touches what it checks

# registers the modules
from . import datasets, engine, evaluation, models  # noqa: F401,E402
from .version import __version__  # noqa: E402

__all__ = ['__version__']
