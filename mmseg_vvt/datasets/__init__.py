"""Dataset-side additions: loading transforms that name the offending file.

Importing this module registers ``CheckedLoadImageFromFile`` and
``CheckedLoadAnnotations`` in mmseg's ``TRANSFORMS`` registry.
"""
from .transforms import (CheckedLoadAnnotations, CheckedLoadImageFromFile,
                         DataFileError)

__all__ = [
    'CheckedLoadAnnotations', 'CheckedLoadImageFromFile', 'DataFileError'
]
