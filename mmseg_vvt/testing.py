# Copyright (c) mmseg-vvt contributors.
"""Tiny VVT models and segmentor configs, for tests and plumbing checks.

Everything here is CPU-sized (widths 16-128, one block per stage) and not a
published variant; the tests, ``tools/benchmark_scaling.py --quick`` and the
tools' own tests build their models from it instead of each spelling out a
copy.
"""
import copy
from typing import Sequence, Tuple

from mmengine.config import Config

__all__ = [
    'TINY_ARCH', 'tiny_arch', 'tiny_segmentor', 'write_tiny_config',
    'outputs_and_grads'
]

#: a 4-stage VVT of widths 16/32/64/128, one block per stage, 1-2 heads
TINY_ARCH = dict(
    embed_dims=[16, 32, 64, 128],
    depths=[1, 1, 1, 1],
    num_heads=[1, 1, 2, 2],
    mlp_ratios=[2, 2, 2, 2],
    fr_ratios=[2, 2, 2, 2],
    sr_ratios=[1, 1, 1, 1])

DECODE_HEADS = ('fpn', 'fcn', 'uper', 'ocr')


def tiny_arch(**overrides) -> dict:
    """A copy of :data:`TINY_ARCH` with ``overrides`` (e.g. ``depths``)."""
    arch = copy.deepcopy(TINY_ARCH)
    unknown = sorted(set(overrides) - set(arch))
    if unknown:
        raise KeyError(f'unknown arch keys {unknown}; valid: {list(arch)}')
    arch.update(copy.deepcopy(overrides))
    return arch


def tiny_segmentor(num_classes: int = 4,
                   decode_head: str = 'fpn',
                   auxiliary_head: bool = False,
                   crop_size: Tuple[int, int] = (64, 64),
                   norm_type: str = 'BN',
                   data_preprocessor: bool = True) -> dict:
    """The ``model`` dict of a tiny VVT ``EncoderDecoder``.

    Args:
        num_classes (int): Classes of the heads.
        decode_head (str): ``'fpn'`` (FPN neck + FPNHead, the Semantic FPN
            of the paper), ``'fcn'`` (FCNHead on stage 4), ``'uper'``
            (UPerHead) or ``'ocr'`` (OCRNet: a ``CascadeEncoderDecoder``
            whose ``decode_head`` is a list, an FCNHead then an OCRHead on
            stage 4).
        auxiliary_head (bool): Add an FCNHead on stage 3, as the UperNet
            recipe does.
        crop_size (tuple[int, int]): Size the data preprocessor pads to.
        norm_type (str): Norm of the heads (``'SyncBN'`` as the multi-GPU
            recipes, ``'BN'``).
        data_preprocessor (bool): Include a ``SegDataPreProcessor``.
    """
    if decode_head not in DECODE_HEADS:
        raise ValueError(f'decode_head must be one of {DECODE_HEADS}, got '
                         f'{decode_head!r}')
    widths = TINY_ARCH['embed_dims']
    norm_cfg = dict(type=norm_type, requires_grad=True)
    loss = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
    model = dict(
        type='EncoderDecoder',
        backbone=dict(type='VVT', arch=tiny_arch(), drop_path_rate=0.0),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    if data_preprocessor:
        model['data_preprocessor'] = dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=255,
            size=tuple(crop_size))
    common = dict(
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=loss)
    if decode_head == 'fpn':
        model['neck'] = dict(
            type='FPN', in_channels=list(widths), out_channels=16, num_outs=4)
        model['decode_head'] = dict(
            type='FPNHead',
            in_channels=[16, 16, 16, 16],
            in_index=[0, 1, 2, 3],
            feature_strides=[4, 8, 16, 32],
            channels=16,
            dropout_ratio=0.1,
            **common)
    elif decode_head == 'fcn':
        model['decode_head'] = _fcn_head(3, 16, common)
    elif decode_head == 'ocr':
        model.update(type='CascadeEncoderDecoder', num_stages=2)
        model['decode_head'] = [
            _fcn_head(3, 16, common),
            dict(
                type='OCRHead',
                in_channels=widths[3],
                in_index=3,
                channels=16,
                ocr_channels=8,
                dropout_ratio=0.1,
                **common)
        ]
    else:
        model['decode_head'] = dict(
            type='UPerHead',
            in_channels=list(widths),
            in_index=[0, 1, 2, 3],
            pool_scales=(1, 2),
            channels=16,
            dropout_ratio=0.1,
            **common)
    if auxiliary_head:
        model['auxiliary_head'] = _fcn_head(
            2, 8, dict(common, loss_decode=dict(loss, loss_weight=0.4)))
    return model


def _fcn_head(stage: int, channels: int, common: dict) -> dict:
    """A one-conv FCNHead on ``stage`` of the tiny VVT."""
    return dict(
        type='FCNHead',
        in_channels=TINY_ARCH['embed_dims'][stage],
        in_index=stage,
        channels=channels,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        **common)


def write_tiny_config(path,
                      num_classes: int = 4,
                      decode_head: str = 'fpn',
                      auxiliary_head: bool = False,
                      crop_size: Sequence[int] = (64, 64),
                      norm_type: str = 'BN',
                      data_preprocessor: bool = True,
                      **top_level) -> str:
    """Write a config file with :func:`tiny_segmentor`'s model.

    The file imports ``mmseg_vvt`` (``custom_imports``), sets
    ``default_scope='mmseg'`` and ``crop_size``; ``top_level`` adds or
    replaces top-level keys (``test_pipeline``, ``train_cfg``, ...).
    Returns the path as a string.
    """
    cfg = dict(
        custom_imports=dict(imports=['mmseg_vvt'], allow_failed_imports=False),
        default_scope='mmseg',
        crop_size=tuple(crop_size),
        model=tiny_segmentor(num_classes, decode_head, auxiliary_head,
                             tuple(crop_size), norm_type, data_preprocessor))
    cfg.update(top_level)
    Config(cfg).dump(str(path))
    return str(path)


def outputs_and_grads(module, x, hw_shape, implementation: str = 'auto'):
    """``module(x, hw_shape)`` under ``implementation(...)`` and its
    backward from a fixed weighting of the output (``linspace(-1, 1)``, so
    every element's gradient differs): ``[output, x's gradient, each
    parameter's gradient]``, for comparing two implementations."""
    import torch

    from mmseg_vvt.models.kernels import implementation as use
    module.zero_grad()
    x = x.detach().requires_grad_()
    with use(implementation):
        y = module(x, hw_shape)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype,
                        device=y.device).view_as(y)).sum().backward()
    return [y.detach(), x.grad] + [p.grad.clone() for p in module.parameters()]
