from .vvt import VVT

__all__ = ['VVT']
