"""mmseg-vvt: the Vicinity Vision Transformer as an mmsegmentation backbone.

Importing this package registers its modules in mmseg's registries, so a
config can say ``custom_imports = dict(imports=['mmseg_vvt'])`` and then
``backbone=dict(type='VVT', ...)``.
"""
from . import datasets, engine, evaluation, models  # noqa: F401 (registers)
from .version import __version__

__all__ = ['__version__']
