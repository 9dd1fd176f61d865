from ..kernels import signed_clamp
from .vicinity_attention import VicinityAttention

__all__ = ['VicinityAttention', 'signed_clamp']
