"""The straightforward VVT (the spec step by step), for tests and benchmarks."""
from .vvt import VVTReference

__all__ = ['VVTReference']
