"""Measuring tools: FLOP/parameter counting and peak-memory helpers.

Light to import (torch + mmengine only); the benchmark driver in
:mod:`mmseg_vvt.utils.benchmark` is imported on demand.
"""
from .complexity import (MATMUL_OPS, backbone_complexity, build_segmentor,
                         count_flops, einsum_macs, flop_analyzer,
                         flop_handles, segmentor_complexity)
from .memory import measure_peak_rss, read_rss, reset_peak_rss
from .throughput import segmentor_throughput

__all__ = [
    'MATMUL_OPS', 'backbone_complexity', 'build_segmentor', 'count_flops',
    'einsum_macs', 'flop_analyzer', 'flop_handles', 'segmentor_complexity',
    'measure_peak_rss', 'read_rss', 'reset_peak_rss', 'segmentor_throughput'
]
