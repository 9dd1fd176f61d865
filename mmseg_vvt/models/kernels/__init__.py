# Copyright (c) mmseg-vvt contributors.
"""Optimised implementations of VVT's ops, apart from the model's math.

The modules in :mod:`mmseg_vvt.models` compute the readable formulation;
:mod:`.dispatch` is the one point that hands a call to one of these
kernels instead (:func:`select` picks the path; :func:`attention`,
:func:`mlp`, :func:`block_path` and :func:`nchw_output` run it).
Kernels are functions of tensors and weight bundles (:mod:`.common`); they
import nothing from the modules that call them. The published numerical
constants live in :mod:`.common`. :mod:`.triton_attention` needs the
optional triton package and is imported only when a module runs under
``implementation('triton')``.
"""
from . import autograd, common, cpu, whole
from .common import (CLAMP_MAX, CLAMP_MIN, DENOMINATOR_EPS, AttentionWeights,
                     MlpWeights, NormWeights, autocast_off, core_dtype,
                     position_weights, signed_clamp)
from .dispatch import (IMPLEMENTATIONS, TRAINING_PATHS, WHOLE_PATHS, attention,
                       block_path, current_implementation, implementation, mlp,
                       mlp_kernel_trains, nchw_output, select, trains)

__all__ = [
    'autograd', 'common', 'cpu', 'whole', 'CLAMP_MAX', 'CLAMP_MIN',
    'DENOMINATOR_EPS', 'AttentionWeights', 'MlpWeights', 'NormWeights',
    'autocast_off', 'core_dtype', 'position_weights', 'signed_clamp',
    'IMPLEMENTATIONS', 'TRAINING_PATHS', 'WHOLE_PATHS',
    'current_implementation', 'implementation', 'select', 'attention', 'mlp',
    'mlp_kernel_trains', 'block_path', 'trains', 'nchw_output'
]
