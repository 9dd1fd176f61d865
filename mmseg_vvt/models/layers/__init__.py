from .vicinity_attention import (VicinityAttention, VicinityAttentionReference,
                                 signed_clamp)

__all__ = ['VicinityAttention', 'VicinityAttentionReference', 'signed_clamp']
