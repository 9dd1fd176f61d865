from .vvt import VVT, VVTReference

__all__ = ['VVT', 'VVTReference']
