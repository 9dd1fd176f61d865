# Copyright (c) mmseg-vvt contributors.
"""Vicinity Vision Transformer (VVT) backbone for mmsegmentation.

Sun et al., "Vicinity Vision Transformer", IEEE TPAMI 2023, arXiv 2206.10552.
The network is the one the authors' ImageNet checkpoints were trained with
(docs/architecture.md); module names equal the checkpoints' keys, so those
checkpoints load as published. The modules compute the readable
formulation; faster implementations of the same functions live in
:mod:`mmseg_vvt.models.kernels`.
"""
import contextlib
import math
import numbers
from collections import Counter
from typing import Dict, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.logging import print_log
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import (constant_init, normal_init,
                                        trunc_normal_init)
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ...errors import (CheckpointMismatchError, CheckpointNotFoundError,
                       misfit_summary)
from .. import kernels
from ..layers.vicinity_attention import VicinityAttention

ARCH_KEYS = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios', 'fr_ratios',
             'sr_ratios')


class OverlapPatchEmbed(BaseModule):
    """Overlapping patch embedding: ``Conv2d(k, stride, k // 2)`` + LayerNorm.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels.
        kernel_size (int): Convolution kernel size.
        stride (int): Convolution stride.
        init_cfg (dict, optional): Initialization config. Default: None.
    """

    def __init__(self,
                 in_channels,
                 embed_dims,
                 kernel_size,
                 stride,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.proj = nn.Conv2d(
            in_channels,
            embed_dims,
            kernel_size=kernel_size,
            stride=stride,
            padding=kernel_size // 2)
        self.norm = nn.LayerNorm(embed_dims)  # eps 1e-5 in the published net

    def forward(self, x):
        x = self.proj(x)
        hw_shape = (x.shape[2], x.shape[3])
        # a channels-last map (see VVT.forward) flattens to tokens for free
        return self.norm(x.flatten(2).transpose(1, 2)), hw_shape


class DWConv(BaseModule):
    """Depthwise 3x3 convolution on the token grid (``mlp.dwconv.dwconv``).

    The tokens ``B x N x C`` are viewed as an NHWC map, i.e. a channels-last
    NCHW tensor: the conv reads and writes them without transposed copies.

    Args:
        channels (int): Token width (one 3x3 filter per channel).
        init_cfg (dict, optional): Initialization config. Default: None.
    """

    def __init__(self, channels, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.dwconv = nn.Conv2d(
            channels, channels, 3, 1, 1, bias=True, groups=channels)

    def forward(self, x, hw_shape):
        B, N, C = x.shape
        H, W = hw_shape
        x = self.dwconv(x.view(B, H, W, C).permute(0, 3, 1, 2))
        return x.permute(0, 2, 3, 1).reshape(B, N, C)


class Mlp(BaseModule):
    """``fc1 -> dwconv -> GELU -> Dropout -> fc2 -> Dropout``.

    Args:
        in_features (int): Token width ``C``.
        hidden_features (int): Hidden width ``C * mlp_ratio``.
        drop (float): Dropout rate. Default: 0.
        init_cfg (dict, optional): Initialization config. Default: None.
    """

    def __init__(self, in_features, hidden_features, drop=0., init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.dwconv = DWConv(hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x, hw_shape, joined_weights=None):
        """``x``: ``B x N x C`` tokens on an ``hw_shape`` grid;
        ``joined_weights``: this MLP's weights as
        :func:`~mmseg_vvt.models.kernels.common.joined_block` joined them for
        the training kernel (used when training without dropout; None:
        the module's own parameters)."""
        y = kernels.mlp(self, x, hw_shape, self.drop.p, joined_weights)
        if y is not None:
            return y
        x = self.act(self.dwconv(self.fc1(x), hw_shape))
        return self.drop(self.fc2(self.drop(x)))

    def kernel_weights(self) -> kernels.MlpWeights:
        """The parameters as the kernels take them."""
        conv = self.dwconv.dwconv
        return kernels.MlpWeights(self.fc1.weight, self.fc1.bias, conv.weight,
                                  conv.bias, self.fc2.weight, self.fc2.bias)


def _norm_weights(norm: nn.LayerNorm) -> kernels.NormWeights:
    return kernels.NormWeights(norm.weight, norm.bias, norm.eps)


class VVTBlock(BaseModule):
    """``x + DropPath(attn(norm1(x)))``, then ``x + DropPath(mlp(norm2(x)))``.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        mlp_ratio (float): Hidden width of the MLP over ``embed_dims``.
        fr_ratio (int): Feature-reduction ratio of the attention.
        sr_ratio (int): Spatial-reduction ratio of the attention.
        drop_rate (float): Dropout rate in the MLP. Default: 0.
        drop_path_rate (float): Stochastic depth rate. Default: 0.
        with_cp (bool): Use gradient checkpointing. Default: False.
        init_cfg (dict, optional): Initialization config. Default: None.
    """

    def __init__(self,
                 embed_dims,
                 num_heads,
                 mlp_ratio,
                 fr_ratio,
                 sr_ratio,
                 drop_rate=0.,
                 drop_path_rate=0.,
                 with_cp=False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = VicinityAttention(
            embed_dims, num_heads, fr_ratio=fr_ratio, sr_ratio=sr_ratio)
        self.drop_path = DropPath(
            drop_path_rate) if drop_path_rate > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop=drop_rate)

    def forward(self, x, hw_shape, inplace=False, drop_path_scales=None):
        """Args:
            x (Tensor): ``B x N x C`` tokens on an ``H x W`` grid.
            hw_shape (tuple[int, int]): ``(H, W)``.
            inplace (bool): The caller will not use ``x`` again: a kernel
                may write the result over it. Default: False.
            drop_path_scales (Tensor, optional): This block's stochastic
                depth factors (``2 x B x 1 x 1``, attention's then the
                MLP's), drawn by the caller for all blocks at once
                (:meth:`drop_probs`); None: the block draws its own.
        """
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(
                self._forward,
                x,
                hw_shape,
                False,
                drop_path_scales,
                use_reentrant=False,
                **self._recompute_as_now())
        return self._forward(x, hw_shape, inplace, drop_path_scales)

    @staticmethod
    def _recompute_as_now():
        """``checkpoint`` arguments that recompute in backward with the
        implementation of this forward, not whichever is current when
        backward runs (another one saves other tensors, which checkpoint
        refuses). Under ``torch.compile`` the recomputation is traced with
        the forward."""
        if torch.compiler.is_compiling():
            return {}
        name = kernels.current_implementation()
        return dict(context_fn=lambda:
                    (contextlib.nullcontext(), kernels.implementation(name)))

    def drop_probs(self):
        """The drop probabilities of the two residual branches when
        stochastic depth is active (train mode, rate > 0), else ``[]``."""
        if self.training and isinstance(self.drop_path, DropPath):
            return [self.drop_path.drop_prob] * 2
        return []

    def _forward(self, x, hw_shape, inplace=False, drop_path_scales=None):
        how = kernels.block_path(self, x, self.attn.sr_ratio, inplace)
        if how == 'training':
            return self._forward_training(x, hw_shape, drop_path_scales)
        if how == 'fused':
            return kernels.cpu.block(
                x, hw_shape, *self.kernel_weights(), inplace=inplace)
        if how == 'add_into':
            # x is the caller's own: the residuals add into it
            x = kernels.whole.add_into(x, self.attn(self.norm1(x), hw_shape))
            return kernels.whole.add_into(x, self.mlp(self.norm2(x), hw_shape))
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
        return x + self.drop_path(self.mlp(self.norm2(x), hw_shape))

    def kernel_weights(self):
        """The norms', attention's and MLP's parameters as the fused block
        kernel (:func:`~mmseg_vvt.models.kernels.cpu.block`) takes them."""
        return (_norm_weights(self.norm1), self.attn.kernel_weights(),
                _norm_weights(self.norm2), self.mlp.kernel_weights())

    def _forward_training(self, x, hw_shape, scales=None):
        """The same block with stochastic depth folded into the residual
        adds: one pass each instead of three, and one random draw for both
        branches (the same distribution as ``DropPath``)."""
        probs = self.drop_probs()
        if not probs:
            scales = (None, None)
        elif scales is None:
            scales = kernels.autograd.drop_path_scales(x, probs)
        # both modules' weights joined at once: under autocast one cast
        # each way for the block, not one per module
        attn_w, mlp_w = kernels.common.joined_block(
            self.attn.kernel_weights(),
            self.mlp.kernel_weights()
            if kernels.mlp_kernel_trains(self.mlp.drop.p) else None,
            x.device.type,
            one_source=self.attn.sr_ratio == 1)
        x = kernels.autograd.add_dropped_path(
            x, self.attn(self.norm1(x), hw_shape, joined_weights=attn_w),
            scales[0])
        return kernels.autograd.add_dropped_path(
            x, self.mlp(self.norm2(x), hw_shape, joined_weights=mlp_w),
            scales[1])


@MODELS.register_module()
class VVT(BaseModule):
    """Vicinity Vision Transformer backbone.

    A 4-stage pyramid (strides 4, 8, 16, 32) of overlapping patch
    embeddings and blocks of vicinity attention + depthwise-conv MLP, as in
    `Vicinity Vision Transformer <https://arxiv.org/abs/2206.10552>`_.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'medium'``, ``'large'``
            or a dict with the keys ``embed_dims``, ``depths``,
            ``num_heads``, ``mlp_ratios``, ``fr_ratios``, ``sr_ratios``
            (one entry per stage each). Default: ``'small'``.
        in_channels (int): Input image channels. Default: 3.
        out_indices (Sequence[int]): Stages (0-3) whose outputs are
            returned. Default: (0, 1, 2, 3).
        drop_rate (float): Dropout rate in the MLPs. Default: 0.
        drop_path_rate (float): Stochastic depth rate in [0, 1), rising
            linearly from 0 over all blocks to this value. Default: 0.1.
        frozen_stages (int): -1 freezes nothing; 0 freezes the stage-1 patch
            embedding; ``k >= 1`` freezes stages 1..k whole (patch embedding,
            blocks, norm): no gradients, eval mode, from construction on.
            Default: -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
            VVT itself only has LayerNorm (which has no running statistics),
            so this only matters for BatchNorm added by subclasses; kept for
            config compatibility with other mmseg backbones. Default: False.
        with_cp (bool): Gradient checkpointing per block (saves memory,
            costs a recomputation). Default: False.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)`` loads an ImageNet checkpoint as the authors
            published it (plain state dict, or under ``model`` /
            ``state_dict``; ``head.*`` dropped; an optional ``prefix`` key
            selects a sub-dict such as ``'backbone.'``). A checkpoint that
            does not fit (a shape that differs, keys missing or unexpected)
            is refused with :class:`~mmseg_vvt.errors.CheckpointMismatchError`;
            ``strict=False`` in ``init_cfg`` loads what matches and logs
            the missing and unexpected keys (shapes must still match).
            None: the paper's random initialisation. Default: None.
        pretrained (None): Only None. mmseg's segmentors hand their
            ``model.pretrained`` to the backbone; in a config written for
            another backbone it names that backbone's weights (e.g.
            ``'open-mmlab://resnet50_v1c'``), so anything else is refused,
            pointing to ``init_cfg``. Default: None.
    """

    arch_zoo: Dict[str, Dict[str, list]] = {
        **dict.fromkeys(['t', 'tiny'],
                        dict(
                            embed_dims=[96, 160, 320, 512],
                            depths=[2, 2, 2, 2],
                            num_heads=[1, 2, 5, 8],
                            mlp_ratios=[8, 8, 4, 4],
                            fr_ratios=[2, 2, 2, 2],
                            sr_ratios=[1, 1, 1, 1])),
        **dict.fromkeys(['s', 'small'],
                        dict(
                            embed_dims=[96, 160, 320, 512],
                            depths=[3, 3, 9, 3],
                            num_heads=[1, 2, 5, 8],
                            mlp_ratios=[8, 8, 4, 4],
                            fr_ratios=[2, 2, 2, 2],
                            sr_ratios=[1, 1, 1, 1])),
        **dict.fromkeys(['m', 'medium'],
                        dict(
                            embed_dims=[96, 160, 320, 512],
                            depths=[3, 3, 27, 3],
                            num_heads=[1, 2, 5, 8],
                            mlp_ratios=[8, 8, 4, 4],
                            fr_ratios=[2, 2, 2, 2],
                            sr_ratios=[1, 1, 1, 1])),
        **dict.fromkeys(['l', 'large'],
                        dict(
                            embed_dims=[96, 160, 320, 512],
                            depths=[4, 4, 36, 4],
                            num_heads=[1, 2, 5, 8],
                            mlp_ratios=[4, 4, 4, 4],
                            fr_ratios=[2, 2, 2, 2],
                            sr_ratios=[1, 1, 1, 1])),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None,
                 pretrained=None):
        self.check_pretrained(pretrained)
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(
                f'in_channels must be a positive int, got {in_channels!r}')
        self.in_channels = in_channels
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(out_indices)
        if not out_indices or any(not isinstance(i, int) or not 0 <= i < 4
                                  for i in out_indices) or len(
                                      set(out_indices)) != len(out_indices):
            raise ValueError('out_indices must be distinct stage indices in '
                             f'0..3, got {out_indices!r}')
        self.out_indices = out_indices
        if not isinstance(frozen_stages, int) or isinstance(
                frozen_stages, bool) or not -1 <= frozen_stages <= 4:
            raise ValueError(
                f'frozen_stages must be an int in -1..4, got {frozen_stages!r}'
            )
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        if init_cfg is not None and not isinstance(init_cfg, dict):
            raise ValueError(
                f'init_cfg must be a dict or None, got {type(init_cfg)}')

        if not isinstance(drop_path_rate, numbers.Real) or isinstance(
                drop_path_rate, bool) or not 0 <= drop_path_rate < 1:
            raise ValueError('drop_path_rate must be a number in [0, 1), got '
                             f'{drop_path_rate!r}')

        s = self.arch_settings
        self.embed_dims = s['embed_dims']
        self.depths = s['depths']
        num_blocks = sum(self.depths)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, num_blocks)]
        cur = 0
        prev_dims = in_channels
        for i in range(4):
            dims = s['embed_dims'][i]
            patch_embed = OverlapPatchEmbed(
                prev_dims,
                dims,
                kernel_size=7 if i == 0 else 3,
                stride=4 if i == 0 else 2)
            blocks = ModuleList([
                VVTBlock(
                    dims,
                    s['num_heads'][i],
                    s['mlp_ratios'][i],
                    s['fr_ratios'][i],
                    s['sr_ratios'][i],
                    drop_rate=drop_rate,
                    drop_path_rate=dpr[cur + j],
                    with_cp=with_cp) for j in range(s['depths'][i])
            ])
            cur += s['depths'][i]
            setattr(self, f'patch_embed{i + 1}', patch_embed)
            setattr(self, f'block{i + 1}', blocks)
            setattr(self, f'norm{i + 1}', nn.LayerNorm(dims, eps=1e-6))
            prev_dims = dims
        # frozen from the start, as mmseg's ResNet does: a model used
        # without a .train() call would otherwise train its frozen stages
        self._freeze_stages()

    @staticmethod
    def check_pretrained(pretrained) -> None:
        """Refuse a ``pretrained`` other than None (see the class's Args)."""
        if pretrained is not None:
            raise ValueError(
                f'VVT got pretrained={pretrained!r}: mmseg hands a config\'s '
                'model.pretrained to its backbone, and in a config written '
                "for another backbone it names that backbone's weights. Set "
                'model.pretrained (or model.backbone.pretrained, wherever it '
                "was given) to None; VVT's ImageNet weights go in "
                "model.backbone.init_cfg=dict(type='Pretrained', "
                'checkpoint=PATH)')

    @classmethod
    def _parse_arch(cls, arch) -> Dict[str, list]:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise KeyError(f'Unknown VVT arch {arch!r}; valid names: '
                               f'{sorted(set(cls.arch_zoo))}')
            return {k: list(v) for k, v in cls.arch_zoo[key].items()}
        if not isinstance(arch, dict):
            raise ValueError(
                f'arch must be a str or dict, got {type(arch).__name__}')
        missing = [k for k in ARCH_KEYS if k not in arch]
        if missing:
            raise KeyError(f'arch dict is missing keys {missing}; '
                           f'it needs all of {list(ARCH_KEYS)}')
        extra = sorted(set(arch) - set(ARCH_KEYS))
        if extra:
            raise KeyError(f'arch dict has unknown keys {extra}; '
                           f'valid keys: {list(ARCH_KEYS)}')
        settings = {k: list(arch[k]) for k in ARCH_KEYS}
        lengths = {k: len(v) for k, v in settings.items()}
        if set(lengths.values()) != {4}:
            raise ValueError('every per-stage list of the arch dict must '
                             f'have 4 entries (one per stage), got {lengths}')
        for i in range(4):
            dims, heads = settings['embed_dims'][i], settings['num_heads'][i]
            fr = settings['fr_ratios'][i]
            for k in ARCH_KEYS:
                val = settings[k][i]
                integral = k != 'mlp_ratios'
                if (isinstance(val, bool) or not isinstance(val, (int, float))
                        or val <= 0 or (integral and int(val) != val)):
                    raise ValueError(
                        f'arch {k}[{i}] must be a positive '
                        f'{"number" if k == "mlp_ratios" else "int"}, '
                        f'got {val!r}')
            if dims % (heads * fr) != 0:
                raise ValueError(
                    f'stage {i + 1}: embed_dims {dims} is not divisible by '
                    f'num_heads x fr_ratio = {heads} x {fr} = {heads * fr}')
        return settings

    # -- initialisation ---------------------------------------------------
    def _random_init(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.)
            elif isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                fan_out //= m.groups
                normal_init(m, mean=0, std=math.sqrt(2.0 / fan_out), bias=0)

    def init_weights(self):
        """Random initialisation of the paper, then the pretrained weights
        when ``init_cfg`` is ``dict(type='Pretrained', checkpoint=...)``."""
        cfg = self.init_cfg
        if cfg is None:
            self._random_init()
        elif cfg.get('type') == 'Pretrained':
            unknown = set(cfg) - {
                'type', 'checkpoint', 'prefix', 'map_location', 'strict'
            }
            if unknown or 'checkpoint' not in cfg:
                raise ValueError(
                    'Pretrained init_cfg of VVT takes checkpoint (required), '
                    f'prefix, map_location, strict; got {dict(cfg)}')
            self._random_init()
            source = cfg['checkpoint']
            try:
                ckpt = CheckpointLoader.load_checkpoint(
                    source,
                    map_location=cfg.get('map_location', 'cpu'),
                    logger='current')
            except FileNotFoundError as err:
                raise CheckpointNotFoundError(
                    f'the VVT backbone\'s pretrained checkpoint {source!r} '
                    'does not exist. Convert the authors\' ImageNet '
                    'checkpoint into it (tools/convert_vvt_checkpoint.py), '
                    'point model.backbone.init_cfg.checkpoint elsewhere, or '
                    'set model.backbone.init_cfg=None: to train from '
                    'scratch (then with model.data_preprocessor.pad_val=-1: '
                    'see docs/training.md), or when load_from or --resume '
                    'loads a whole segmentor, whose weights replace these'
                ) from err
            state_dict = extract_backbone_state_dict(
                ckpt, prefix=cfg.get('prefix'), source=source)
            load_backbone_state_dict(
                self,
                state_dict,
                source=source,
                strict=cfg.get('strict', True))
        else:
            super().init_weights()
            return
        self._is_init = True

    # -- forward ----------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Args:
            x (Tensor): ``B x in_channels x H x W`` images, any ``H, W``.

        Returns:
            tuple[Tensor]: NCHW feature maps of the stages in
            ``out_indices``, at strides 4, 8, 16, 32.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(
                'VVT expects a 4-D tensor B x C x H x W, got '
                f'{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}'
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'VVT was built for {self.in_channels} input channels, got an '
                f'input with {x.shape[1]} (shape {tuple(x.shape)})')
        if 0 in x.shape:
            raise ValueError(f'VVT got an empty input (shape '
                             f'{tuple(x.shape)}); expected at least one image '
                             'of at least 1x1 pixels')
        # tokens are NHWC, i.e. channels-last maps: the convolutions read
        # and write them without transposed copies
        x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        scales = None
        for i in range(4):
            x, hw_shape = getattr(self, f'patch_embed{i + 1}')(x)
            if i == 0:
                scales = self._drop_path_scales(x)
            for block in getattr(self, f'block{i + 1}'):
                n = len(block.drop_probs()) if scales is not None else 0
                # x is this loop's own: a kernel may overwrite it
                x = block(x, hw_shape, True, scales[:n] if n else None)
                scales = scales[n:] if n else scales
            x = getattr(self, f'norm{i + 1}')(x)
            x = x.unflatten(1, hw_shape).permute(0, 3, 1, 2)  # NCHW view
            if i in self.out_indices:
                # necks and heads expect contiguous NCHW maps
                outs.append(kernels.nchw_output(self, x))
            if i == max(self.out_indices):
                break
        return tuple(outs)

    def _drop_path_scales(self, tokens):
        """Stochastic depth's factors of every block that runs, drawn at
        once in the order ``DropPath`` would draw them (None where the
        blocks draw their own: the readable formulation, or no stochastic
        depth)."""
        if not kernels.trains(self, tokens):
            return None
        probs = [
            p for i in range(max(self.out_indices) + 1)
            for block in getattr(self, f'block{i + 1}')
            for p in block.drop_probs()
        ]
        return kernels.autograd.drop_path_scales(tokens,
                                                 probs) if probs else None

    def _freeze_stages(self):
        frozen = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed1)
        for i in range(1, self.frozen_stages + 1):
            frozen += [
                getattr(self, f'patch_embed{i}'),
                getattr(self, f'block{i}'),
                getattr(self, f'norm{i}')
            ]
        for m in frozen:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def extract_backbone_state_dict(checkpoint, prefix=None, source='checkpoint'):
    """The backbone weights of a checkpoint as published by the authors.

    Accepts a plain state dict or one under ``model`` / ``state_dict``;
    strips a ``module.`` prefix (DDP) and, if given, selects ``prefix``
    (e.g. ``'backbone.'``); drops the classifier ``head.*``.

    Raises:
        CheckpointMismatchError: not a dict, or no key starts with
            ``prefix``.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(f'{source}: expected a dict checkpoint, '
                                      f'got {type(checkpoint).__name__}')
    state_dict = checkpoint
    for key in ('state_dict', 'model'):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
            break
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    if prefix:
        if not prefix.endswith('.'):
            prefix += '.'
        selected = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
        if not selected:
            raise CheckpointMismatchError(
                f'{source}: no key starts with prefix {prefix!r} (first '
                f'keys: {list(state_dict)[:3]})')
        state_dict = selected
    return {
        k: v
        for k, v in state_dict.items()
        if not (k.startswith('head.') or k == 'head')
    }


def _prefix_hint(own, state_dict) -> str:
    """A ``prefix`` under which most of the model's keys are in the
    checkpoint (a segmentor checkpoint's ``backbone.``), as advice."""
    hits = Counter()
    for key in state_dict:
        for name in own:
            if key.endswith('.' + name):
                hits[key[:-len(name)]] += 1
    if hits:
        prefix, count = hits.most_common(1)[0]
        if count > len(own) // 2:
            return (f"; its keys under {prefix!r} are this VVT's ({count} "
                    f'of {len(own)}): load them with '
                    "init_cfg=dict(type='Pretrained', checkpoint=..., "
                    f'prefix={prefix!r})')
    return '; is it a VVT checkpoint?'


def load_backbone_state_dict(module: nn.Module,
                             state_dict,
                             source='checkpoint',
                             strict: bool = True):
    """Load ``state_dict`` into a VVT.

    Args:
        module (nn.Module): The VVT.
        state_dict (dict): Its weights, as
            :func:`extract_backbone_state_dict` returns them.
        source (str): The checkpoint's name, for messages. Default:
            ``'checkpoint'``.
        strict (bool): Refuse missing and unexpected keys. False: load the
            keys that match, and log the others as warnings. Default: True.

    Raises:
        CheckpointMismatchError: at the first key whose shape differs
            (naming the key and both shapes), when no key matches at all,
            or (``strict``) when keys are missing or unexpected (the first
            few of each and the counts).

    Returns:
        tuple[list, list]: the missing and the unexpected keys.
    """
    own = module.state_dict()
    for key, value in state_dict.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointMismatchError(
                f'{source}: shape mismatch for {key!r}: checkpoint has '
                f'{tuple(value.shape)}, the model expects '
                f'{tuple(own[key].shape)} (is it a checkpoint of another '
                'VVT arch?)')
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if len(missing) == len(own):
        raise CheckpointMismatchError(
            f'{source}: none of the model\'s keys is in the checkpoint '
            f'(first checkpoint keys: {list(state_dict)[:3]})' +
            _prefix_hint(own, state_dict))
    if strict and (missing or unexpected):
        raise CheckpointMismatchError(
            f'{source} does not fit the VVT backbone: ' + misfit_summary(
                missing, unexpected, len(own), whose="the backbone's") +
            '. Is it a checkpoint of this arch? To load the matching '
            "weights anyway, add strict=False to the backbone's init_cfg.")
    module.load_state_dict(state_dict, strict=False)
    if missing:
        print_log(
            f'{source}: {len(missing)} backbone keys missing from the '
            f'checkpoint (left randomly initialised): {missing}',
            logger='current',
            level=30)
    if unexpected:
        print_log(
            f'{source}: {len(unexpected)} unexpected keys in the checkpoint '
            f'(ignored): {unexpected}',
            logger='current',
            level=30)
    return missing, unexpected
