"""FLOP and parameter counting (runtime code uses it: the results table of
``tools/collect_results.py``) and the tools' checks of their command lines
(``cli``). Timing and memory measurement live with the tools, in
``tools/analysis_tools/``."""
from .complexity import (MATMUL_OPS, backbone_complexity, build_segmentor,
                         count_flops, einsum_macs, flop_analyzer, flop_handles,
                         segmentor_complexity)

__all__ = [
    'MATMUL_OPS', 'backbone_complexity', 'build_segmentor', 'count_flops',
    'einsum_macs', 'flop_analyzer', 'flop_handles', 'segmentor_complexity'
]
