"""Checks of a command line's inputs, shared by the scripts in ``tools/``.

Each turns a user's mistake into one :class:`BadInputError` that names the
argument and what was expected, before any model is built, instead of a
traceback from mmengine or torch halfway through a run. The tools print the
message as ``error: ...`` and exit with a nonzero status.
"""
import logging
import os
import os.path as osp
import re
from pathlib import Path
from typing import Optional, Sequence, Union

from mmengine.config import DictAction

__all__ = [
    'BadInputError', 'load_config', 'vvt_backbone', 'check_vvt_arch',
    'check_vvt_widths', 'check_classes', 'segmentor_cfg', 'check_out_file',
    'check_out_dir', 'check_device', 'positive_int', 'nonnegative_int',
    'positive_float', 'CfgOptionsAction', 'error_text',
    'check_optimizer_constructor', 'scratch_padding_warning'
]

PathLike = Union[str, os.PathLike]


class BadInputError(ValueError):
    """An argument (a path, a config, a device, a number) the tool cannot
    use; the message names it and says what was expected."""


def error_text(err: BaseException) -> str:
    """``err``'s message. For an error a DataLoader worker raised, that is
    the worker's own message: torch re-raises it in the main process with
    the worker's whole traceback as its text, whose last exception line
    (``package.module.Name: message``, maybe over several lines) holds it."""
    text = str(err)
    if not (text.startswith('Caught ') and 'Original Traceback' in text):
        return text
    lines = text.rstrip().split('\n')
    head = re.compile(r'[\w.]*\b' + re.escape(type(err).__name__) + ': ')
    for i in range(len(lines) - 1, -1, -1):
        found = head.match(lines[i])
        if found:
            return '\n'.join([lines[i][found.end():]] + lines[i + 1:])
    return text


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


def load_config(path: PathLike,
                cfg_options: Optional[dict] = None,
                require: Sequence[str] = ('model', ),
                data: Sequence[str] = ()):
    """Read an mmengine config file and merge ``--cfg-options`` into it.

    Refused with a :class:`BadInputError` naming the file: a path that is
    not a file, a file mmengine cannot read (not .py/.json/.yaml, a syntax
    error, an exception raised while it runs, a missing ``_base_``, a
    ``custom_imports`` module that is not installed), a config without the
    ``require``d top-level keys, options that cannot be merged, a VVT
    backbone with keys VVT does not take (another backbone's, merged in
    without ``_delete_``), whose ``arch`` is not a preset or a well-formed
    dict or that would be handed a ``pretrained`` (VVT takes its weights
    from ``init_cfg``), a neck / head list entry without a ``type`` (a
    list written over a base's list), a MaskFormer / Mask2Former head
    without mmdet installed, a neck or head whose input widths are not the
    VVT's (:func:`check_vvt_widths`) and, for the dataloaders named in
    ``data`` (e.g. ``('train_dataloader', 'val_dataloader')``: the ones the
    tool runs), heads with fewer classes than their datasets
    (:func:`check_classes`). All without building the model or the data.
    """
    from mmengine.config import Config

    path = str(path)
    if osp.isdir(path):
        raise BadInputError(f'config {path} is a folder; expected an mmseg '
                            'config file (.py)')
    if not osp.isfile(path):
        raise BadInputError(f'config file {path} does not exist')
    try:
        cfg = Config.fromfile(path)
    except Exception as err:  # a config is code: any exception is its own
        missing = _missing_module(err)
        if missing is not None:
            # mmengine's message for custom_imports is a dump of sys.path
            raise BadInputError(_missing_module_text(path, missing)) from err
        raise BadInputError(f'config {path} cannot be read as an mmengine '
                            f'config: {_describe(err)}') from err
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as err:
            raise BadInputError(
                f'--cfg-options {cfg_options} cannot be merged into config '
                f'{path}: {_describe(err)}') from err
    missing = [key for key in require if key not in cfg]
    if missing:
        # without a model it is no model config; with one, the tool needs
        # more of it (a training or test recipe)
        kind = ('an mmseg model config (e.g. configs/vvt/*.py)' if 'model'
                in missing else f'a config that sets {" and ".join(require)}')
        raise BadInputError(f'config {path} has no {" / ".join(missing)} '
                            f'entry; expected {kind}')
    if 'model' in cfg:
        # keys first: another backbone's `arch` is not a VVT preset
        _check_vvt_keys(cfg.model, path)
        _check_vvt_arch(cfg.model, path)
        _check_vvt_pretrained(cfg.model, path)
        _check_untyped_list_entries(cfg.model, path)
        _check_mmdet_heads(cfg.model, path)
        check_vvt_widths(cfg.model, f'config {path}')
        check_classes(cfg, data, f'config {path}')
    return cfg


def check_loader_workers(cfg, keys: Sequence[str], where: str) -> None:
    """Refuse ``persistent_workers=True`` in a dataloader with no workers.

    mmseg's dataset bases keep their workers alive between epochs; with
    ``--cfg-options X.num_workers=0`` torch's DataLoader then stops the run
    in a traceback (``persistent_workers option needs num_workers > 0``)
    once the runner builds it.

    Args:
        cfg (Config): The merged config.
        keys (sequence[str]): The dataloaders the runner will build as the
            config gives them (``runner_dataloader_keys``).
        where (str): How the message names the config.

    Raises:
        BadInputError: Naming the loader and the setting to add.
    """
    for key in keys:
        loader = cfg.get(key)
        if (hasattr(loader, 'get') and loader.get('persistent_workers')
                and loader.get('num_workers', 0) == 0):
            raise BadInputError(
                f'{where}: {key}.persistent_workers=True needs '
                f'{key}.num_workers > 0; with num_workers=0 also set '
                f'{key}.persistent_workers=False')


def segmentor_cfg(model_cfg):
    """The segmentor of a ``model`` config: the config itself, or the one a
    TTA model wraps (``test.py --tta`` makes ``model`` a
    ``SegTTAModel(module=...)``)."""
    if hasattr(model_cfg, 'get') and 'backbone' not in model_cfg \
            and hasattr(model_cfg.get('module'), 'get'):
        return model_cfg['module']
    return model_cfg


def vvt_backbone(model_cfg):
    """The ``backbone`` of a ``model`` config (or of the segmentor a TTA
    model wraps) when it is this package's VVT (named ``'VVT'`` /
    ``'mmseg.VVT'``, or the class in a pure-Python config), else None."""
    from mmseg_vvt.models.backbones.vvt import VVT
    model_cfg = segmentor_cfg(model_cfg)
    backbone = model_cfg.get('backbone') if hasattr(model_cfg, 'get') else None
    if not hasattr(backbone, 'get'):
        return None
    kind = backbone.get('type')
    return backbone if kind is VVT or kind in ('VVT', 'mmseg.VVT') else None


def _check_vvt_arch(model_cfg, path: str) -> None:
    # the one backbone this package owns: its arch is checked up front, so
    # `--cfg-options model.backbone.arch=huge` is one line, not a traceback
    backbone = vvt_backbone(model_cfg)
    if backbone is not None:
        check_vvt_arch(
            backbone.get('arch', 'small'),
            f'config {path}: model.backbone.arch')


def _missing_module(err: BaseException) -> Optional[str]:
    # the name of a module an import did not find, anywhere in the chain of
    # causes (mmengine wraps it in two ImportErrors)
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ModuleNotFoundError) and err.name:
            return err.name
        err = err.__cause__ or err.__context__
    return None


# installed with `mim install NAME` (they build against torch and mmcv)
OPENMMLAB_PACKAGES = ('mmcv', 'mmdet', 'mmengine', 'mmpretrain', 'mmseg')


def _missing_module_text(path: str, missing: str) -> str:
    import importlib.util
    top = missing.split('.')[0]
    try:
        installed = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        installed = False
    if installed:  # a misspelt submodule, or one the package itself needs
        return (f'config {path}: no module named {missing!r}, though '
                f'{top!r} is installed (a misspelt module in the config\'s '
                f'custom_imports, or one that {top!r} needs)')
    hint = f' (mim install {top})' if top in OPENMMLAB_PACKAGES else ''
    return (f'config {path} imports module {missing!r}, but {top!r} is not '
            f'installed{hint}: install it, or take it out of the config\'s '
            'custom_imports')


def _check_vvt_keys(model_cfg, path: str) -> None:
    # a backbone dict merged into another backbone's keeps that one's keys
    # (depth, num_stages, ...): without this, a 400-line build traceback
    import inspect

    from mmseg_vvt.models.backbones.vvt import VVT
    backbone = vvt_backbone(model_cfg)
    if backbone is None:
        return
    takes = [
        name for name in inspect.signature(VVT.__init__).parameters
        if name != 'self'
    ]
    # (VVT takes `pretrained` only to refuse it: _check_vvt_pretrained)
    extra = sorted(set(backbone) - set(takes) - {'type', '_delete_'})
    if extra:
        raise BadInputError(
            f'config {path}: model.backbone has {extra}, which VVT does not '
            f'take (it takes {takes}). Replacing another backbone, write '
            "backbone=dict(_delete_=True, type='VVT', ...): without "
            "_delete_ the base config's backbone keys are kept")


def _check_untyped_list_entries(model_cfg, path: str) -> None:
    # mmengine merges dicts but replaces lists: `decode_head=[dict(
    # in_index=3), ...]` over OCRNet's list loses each head's type
    if vvt_backbone(model_cfg) is None:
        return
    model_cfg = segmentor_cfg(model_cfg)
    for key in ('neck', 'decode_head', 'auxiliary_head'):
        for j, entry in enumerate(_seq(model_cfg.get(key)) or []):
            if hasattr(entry, 'get') and 'type' not in entry:
                raise BadInputError(
                    f'config {path}: model.{key}[{j}] has no type. A list in '
                    "a config replaces the base config's list instead of "
                    'merging into it; write each entry whole, e.g. '
                    f'dict(_base_.model.{key}[{j}], in_channels=...)')


def _check_vvt_pretrained(model_cfg, path: str) -> None:
    # mmseg's segmentors hand model.pretrained to the backbone: a config
    # VVT was dropped into may still name the old backbone's weights there
    backbone = vvt_backbone(model_cfg)
    if backbone is None:
        return
    for key, value in (('model.pretrained',
                        segmentor_cfg(model_cfg).get('pretrained')),
                       ('model.backbone.pretrained',
                        backbone.get('pretrained'))):
        if value is None:
            continue
        why = (' (in a config written for another backbone it names that '
               "backbone's weights)" if key == 'model.pretrained' else '')
        handed = (', which mmseg hands to the backbone,'
                  if key == 'model.pretrained' else ',')
        raise BadInputError(
            f'config {path}: {key} is {value!r}{handed} but VVT takes its '
            f'weights only from model.backbone.init_cfg{why}; set {key}=None, '
            "and VVT's ImageNet weights with model.backbone.init_cfg="
            "dict(type='Pretrained', checkpoint=PATH)")


# mmseg heads built on mmdet's; without mmdet, mmseg derives them from
# BaseModule instead, and the build fails with "unexpected keyword argument"
MMDET_HEADS = ('MaskFormerHead', 'Mask2FormerHead')


def _check_mmdet_heads(model_cfg, path: str) -> None:
    import importlib.util
    model_cfg = segmentor_cfg(model_cfg)
    if not hasattr(model_cfg,
                   'get') or importlib.util.find_spec('mmdet') is not None:
        return
    for name, head in _heads(model_cfg, ('decode_head', )):
        kind = head.get('type')
        if kind is not None and _is_a(kind, MMDET_HEADS):
            raise BadInputError(
                f'config {path}: {name} is a {_type_name(kind)}, which mmseg '
                "builds on mmdet's, but mmdet is not installed (mim install "
                'mmdet)')


# mmseg's layer-wise learning-rate decay: it gives layer ids to ConvNeXt,
# BEiT and MAE parameter names only, and raises a bare NotImplementedError
# for any other backbone when the optimizer is built
LAYER_DECAY_CONSTRUCTORS = ('LearningRateDecayOptimizerConstructor',
                            'LayerDecayOptimizerConstructor')


def check_optimizer_constructor(cfg, where: str = 'config') -> None:
    """Refuse mmseg's layer-decay optimizer constructors for a VVT model
    (a BEiT / ConvNeXt recipe with VVT dropped in), before a training run
    builds anything."""
    wrapper = cfg.get('optim_wrapper')
    if vvt_backbone(cfg.get('model')) is None or not hasattr(wrapper, 'get'):
        return
    constructor = wrapper.get('constructor')
    if constructor is not None and (_type_name(constructor)
                                    in LAYER_DECAY_CONSTRUCTORS):
        raise BadInputError(
            f'{where}: optim_wrapper.constructor is '
            f"{_type_name(constructor)!r}, mmseg's layer-wise learning-rate "
            'decay, which knows only ConvNeXt, BEiT and MAE parameters and '
            "fails on VVT's. Replace the optimizer settings, e.g. "
            "optim_wrapper=dict(_delete_=True, type='OptimWrapper', "
            "optimizer=dict(type='AdamW', lr=6e-05, betas=(0.9, 0.999), "
            'weight_decay=0.01)) (the UperNet recipe)')


def _pretrained(init_cfg) -> bool:
    # one init_cfg or a list of them; only 'Pretrained' loads weights
    return any(
        hasattr(c, 'get') and _type_name(c.get('type')) == 'Pretrained'
        for c in (_seq(init_cfg) or [init_cfg]))


def scratch_padding_warning(cfg, where: str = 'config') -> Optional[str]:
    """The warning for a VVT trained from random weights on crops padded
    with 0 (``model.data_preprocessor.pad_val``, mmseg's default), or None.

    Random weights: no ``Pretrained`` ``init_cfg``, no ``load_from``, and
    no checkpoint for ``resume`` to find in ``work_dir``. With VVT's
    zero-initialised biases a zero-padded region gives constant tokens to
    the LayerNorms of stage 1, and the first steps' gradients grow by their
    ``1/sqrt(eps)`` per norm (docs/training.md, "Training without the
    ImageNet checkpoints").
    """
    backbone = vvt_backbone(cfg.get('model'))
    if backbone is None or _pretrained(backbone.get('init_cfg')) or \
            cfg.get('load_from'):
        return None
    if cfg.get('resume') and cfg.get('work_dir'):
        from mmengine.runner import find_latest_checkpoint
        if find_latest_checkpoint(cfg.work_dir):  # resumed, not random
            return None
    preprocessor = segmentor_cfg(cfg.model).get('data_preprocessor')
    if not hasattr(preprocessor, 'get') or preprocessor.get('pad_val', 0) != 0:
        return None
    return (f'{where}: VVT starts from random weights (no Pretrained '
            'model.backbone.init_cfg, no load_from) and the data '
            'preprocessor pads training crops with model.data_preprocessor.'
            "pad_val=0: on zero padding the first steps' gradients reach "
            '1e6-1e19 (NaN losses with SGD). Set model.data_preprocessor.'
            'pad_val=-1, as the demo config does (docs/training.md, '
            '"Training without the ImageNet checkpoints")')


def check_vvt_arch(arch, name: str = '--arch'):
    """A VVT ``arch`` (a preset name or a dict of per-stage lists) that the
    backbone accepts, checked without building it."""
    from mmseg_vvt.models.backbones.vvt import VVT
    try:
        VVT._parse_arch(arch)
    except (KeyError, TypeError, ValueError) as err:
        # KeyError's str() quotes its message: take the argument itself
        msg = err.args[0] if err.args else err
        raise BadInputError(f'{name}: {msg}') from err
    return arch


def _seq(value) -> Optional[list]:
    return list(value) if isinstance(value, (list, tuple)) else None


def _type_name(kind) -> str:
    """A config's ``type``: a registered name (``'mmseg.VVT'`` -> ``'VVT'``)
    or, in pure-Python configs, the class itself."""
    if isinstance(kind, type):
        return kind.__name__
    return str(kind).split('.')[-1]


def _vvt_out_stages(model_cfg) -> Optional[tuple]:
    """(stages, embed_dims) of a VVT backbone config: the stage of each
    output in order and every stage's width; None for another backbone (or
    an arch or out_indices VVT itself refuses, naming them)."""
    from mmseg_vvt.models.backbones.vvt import VVT
    backbone = vvt_backbone(model_cfg)
    if backbone is None:
        return None
    try:
        dims = VVT._parse_arch(backbone.get('arch', 'small'))['embed_dims']
    except (KeyError, TypeError, ValueError):
        return None
    stages = backbone.get('out_indices', (0, 1, 2, 3))
    stages = [stages] if isinstance(stages, int) else _seq(stages)
    if stages is None or not all(
            isinstance(i, int) and 0 <= i < len(dims) for i in stages):
        return None
    return sorted(stages), dims  # VVT returns its outputs in stage order


def _head_width_errors(head, key: str, widths: list) -> list:
    """What a head reading the backbone's outputs directly gets wrong, as
    (message, whether it is a width) pairs."""
    if not hasattr(head, 'get'):
        return []
    errors = []
    inner = head.get('kernel_generate_head')  # K-Net's reads the backbone
    if hasattr(inner, 'get'):
        errors += _head_width_errors(inner, f'{key}.kernel_generate_head',
                                     widths)
    if 'in_channels' not in head:
        return errors
    channels = head.get('in_channels')
    if 'in_index' not in head and _seq(channels) is not None:
        # a list without in_index: the head takes every output in order
        # (Mask2Former's pixel decoder; mmseg's BaseDecodeHead refuses it)
        if all(isinstance(c, int)
               for c in channels) and list(channels) != widths:
            errors.append((f'{key}.in_channels is {channels!r}, but the '
                           f'VVT backbone returns {widths} channels (the '
                           'head reads every output)', True))
        return errors
    index = head.get('in_index', -1)
    many = _seq(index) is not None
    indices = _seq(index) if many else [index]
    bad = [
        i for i in indices if not isinstance(i, int) or isinstance(i, bool)
        or not -len(widths) <= i < len(widths)
    ]
    if bad:
        return errors + [
            (f'{key}.in_index {index!r} picks backbone output(s) {bad}, '
             f'but the backbone returns {len(widths)} outputs '
             f'({widths} channels): pick among 0..{len(widths) - 1}, or '
             'return more stages with model.backbone.out_indices', False)
        ]
    c1 = head.get('c1_in_channels')  # DeepLabV3+: backbone output 0 too
    if isinstance(c1, int) and c1 > 0 and c1 != widths[0]:
        errors.append((f'{key}.c1_in_channels is {c1}, but backbone output '
                       f'0 has {widths[0]} channels', True))
    expected = [widths[i] for i in indices]
    got = _seq(channels) if many else [channels]
    if got is not None and all(isinstance(c, int)
                               for c in got) and (got != expected):
        outputs = (f'outputs {index!r} have {expected}'
                   if many else f'output {index} has {expected[0]}')
        errors.append((f'{key}.in_channels is {channels!r}, but backbone '
                       f'{outputs} channels', True))
    return errors


def _head_output(head) -> Optional[int]:
    """The backbone output at whose resolution a head predicts, when its
    config tells: a single ``in_index``, or the first of ``resize_concat``
    (which resizes the others to it)."""
    index = head.get('in_index', -1)
    if isinstance(index, int):
        return index
    if head.get('input_transform') == 'resize_concat' and _seq(index):
        return _seq(index)[0]
    return None


def _cascade_stride_errors(heads, strides: list) -> list:
    # CascadeEncoderDecoder's OCRHead gathers its input's pixels by the
    # previous head's prediction, which must have that input's size. In
    # mmseg's OCRNet configs both heads read dilated ResNet outputs, all at
    # stride 8; VVT's outputs have four strides.
    errors = []
    for j in range(1, len(heads)):
        prev, head = heads[j - 1], heads[j]
        if not (hasattr(prev, 'get') and hasattr(head, 'get')) or \
                _type_name(head.get('type')) != 'OCRHead':
            continue
        mine, theirs = _head_output(head), _head_output(prev)
        if mine is None or theirs is None or \
                strides[mine] == strides[theirs]:
            continue
        errors.append(
            (f'model.decode_head[{j}] is an OCRHead, which needs '
             f"model.decode_head[{j - 1}]'s prediction at the size of its "
             f'own input, but it reads backbone output {mine} (stride '
             f'{strides[mine]}) and model.decode_head[{j - 1}] predicts at '
             f'output {theirs} (stride {strides[theirs]}): let both read one '
             'output (one in_index, with its in_channels)', False))
    return errors


def _check_vvt_input_channels(model_cfg, where: str) -> None:
    # the data preprocessor normalises as many channels as the images have:
    # VVT's first patch embedding must take that many (else a ValueError in
    # the first forward)
    backbone = vvt_backbone(model_cfg)
    pre = model_cfg.get('data_preprocessor')
    if backbone is None or not hasattr(pre, 'get'):
        return
    mean = _seq(pre.get('mean'))
    channels = backbone.get('in_channels', 3)
    # one value is broadcast over every channel
    if mean is not None and len(mean) > 1 and isinstance(channels, int) \
            and channels != len(mean):
        raise BadInputError(
            f'{where}: model.backbone.in_channels is {channels}, but '
            f'model.data_preprocessor normalises {len(mean)} channels '
            f'(mean={list(mean)}); set in_channels={len(mean)}, or give '
            f'the preprocessor a mean and std for {channels} channels')


def _neck_width_errors(neck, key: str, widths: list,
                       dims: Sequence[int] = ()) -> list:
    if not hasattr(neck, 'get'):
        return []
    channels = neck.get('in_channels')
    if _seq(channels) is not None and _seq(channels) != widths:
        n = len(_seq(channels))
        fewer = ''
        if dims and n < len(widths):
            # e.g. FastFCN's JPU: three inputs, the last three stages
            last = tuple(range(len(dims) - n, len(dims)))
            fewer = (f'; it reads {n} inputs: e.g. model.backbone.'
                     f'out_indices={last} gives it the last {n} outputs, '
                     f'of {[dims[i] for i in last]} channels')
        return [(f'{key}.in_channels is {channels!r}, but the VVT backbone '
                 f'returns {widths} channels{fewer}', True)]
    dim = neck.get('embed_dim')
    if _type_name(neck.get('type')) == 'Feature2Pyramid' and isinstance(
            dim, int) and set(widths) != {dim}:
        # made for ViT-like backbones, whose outputs share one width
        return [(f'{key} is a Feature2Pyramid, which takes outputs of '
                 f'embed_dim={dim} channels each, but the VVT backbone '
                 f'returns {widths} channels: use a neck with one '
                 'in_channels per output (e.g. FPN, or MultiLevelNeck with '
                 'scales=[1, 1, 1, 1])', False)]
    return []


def check_vvt_widths(model_cfg, where: str = 'model') -> None:
    """Refuse a neck or decode / auxiliary head whose ``in_channels`` are
    not the widths of a VVT backbone's outputs (its arch's ``embed_dims``
    at ``out_indices``), e.g. VVT dropped into a Swin config (96, 192, 384,
    768 channels where VVT has 96, 160, 320, 512), which otherwise fails in
    the first forward with a convolution shape error. A head's list of
    ``in_channels`` without ``in_index`` (Mask2Former) is read as every
    output in order; K-Net's ``kernel_generate_head`` is checked inside its
    head. With a neck (or a list of necks: the first), the heads read the
    neck's outputs and only the neck is checked; a ``Feature2Pyramid`` neck
    needs outputs of one width, which VVT's are not."""
    model_cfg = segmentor_cfg(model_cfg)
    _check_vvt_input_channels(model_cfg, where)
    outputs = _vvt_out_stages(model_cfg)
    if outputs is None:
        return
    stages, dims = outputs
    widths = [dims[i] for i in stages]
    neck, errors = model_cfg.get('neck'), []
    if _seq(neck):  # mmengine chains a list of necks; the first reads VVT
        errors = _neck_width_errors(neck[0], 'model.neck[0]', widths, dims)
    elif neck is not None:
        errors = _neck_width_errors(neck, 'model.neck', widths, dims)
    else:
        for name, head in _heads(model_cfg):
            errors += _head_width_errors(head, name, widths)
        if not errors and _seq(model_cfg.get('decode_head')):
            errors = _cascade_stride_errors(model_cfg['decode_head'],
                                            [4 * 2**i for i in stages])
    if errors:
        advice = ('. Set them to the VVT widths (docs/training.md, "Drop-in '
                  'use in other mmseg configs")' if any(
                      w for _, w in errors) else '')
        raise BadInputError(f'{where}: ' + '; '.join(e for e, _ in errors) +
                            advice)


def dataset_classes(ds_cfg) -> Optional[tuple]:
    """(number of classes, dataset type) of a dataset config, from its
    ``metainfo`` (a list, or a file of names as mmengine reads it) or its
    class's ``METAINFO``; through ``dataset`` / ``datasets`` wrappers. None
    when it cannot be told."""
    if not hasattr(ds_cfg, 'get'):
        return None
    kind = ds_cfg.get('type')
    meta = ds_cfg.get('metainfo')
    if hasattr(meta, 'get') and meta.get('classes') is not None:
        classes = meta['classes']
        if isinstance(classes, str):  # mmengine reads a file of names
            if not osp.isfile(classes):
                return None  # the dataset build names it
            from mmengine.fileio import list_from_file
            classes = list_from_file(classes)
        classes = _seq(classes)
        return (len(classes), _type_name(kind)) if classes else None
    if hasattr(ds_cfg.get('dataset'), 'get'):
        return dataset_classes(ds_cfg['dataset'])
    if _seq(ds_cfg.get('datasets')) is not None:
        found = {dataset_classes(d) for d in ds_cfg['datasets']}
        counts = {f[0] for f in found if f is not None}
        return (counts.pop(),
                _type_name(kind)) if (len(counts) == 1
                                      and None not in found) else None
    if isinstance(kind, type):
        cls = kind
    elif isinstance(kind, str):
        from mmseg.registry import DATASETS
        try:
            cls = DATASETS.get(kind)
        except Exception:  # an unknown type: the dataset build names it
            return None
    else:
        return None
    classes = getattr(cls, 'METAINFO', {}).get('classes')
    return (len(classes),
            _type_name(kind)) if _seq(classes) is not None else None


def _is_a(kind, names: Sequence[str], registry: str = 'MODELS') -> bool:
    """Whether config type ``kind`` (a name in mmseg's ``registry``, or a
    class) is (a subclass of) a class named in ``names``."""
    if isinstance(kind, str):
        import mmseg.registry
        try:
            kind = getattr(mmseg.registry, registry).get(kind) or kind
        except Exception:  # an unknown type: the build names it
            pass
    if isinstance(kind, type):
        return any(c.__name__ in names for c in kind.__mro__)
    return _type_name(kind) in names


def _own_class_count(kind) -> bool:
    """Whether head type ``kind`` is (a subclass of) a head in
    :data:`OWN_CLASS_COUNT_HEADS`."""
    return _is_a(kind, OWN_CLASS_COUNT_HEADS)


def _softmax_losses(head) -> list:
    losses = head.get('loss_decode')
    losses = _seq(losses) or [losses]
    return [
        loss for loss in losses
        if hasattr(loss, 'get') and _type_name(loss.get('type')) ==
        'CrossEntropyLoss' and not loss.get('use_sigmoid', False)
    ]


# heads whose num_classes is not the dataset's on purpose: STDC's detail
# head makes its own 2-class boundary targets, SAN's counts classes without
# the background. Over mmseg 1.2.2's own configs these are the only heads
# the rule below would refuse (tests/test_utils/test_cli.py sweeps them).
OWN_CLASS_COUNT_HEADS = ('STDCHead', 'SideAdapterCLIPHead')


def _heads(model_cfg, keys: Sequence[str] = ('decode_head', 'auxiliary_head')):
    """(name, config) of the heads under ``keys`` of a segmentor config,
    one or a list each (``model.decode_head[1]``)."""
    for key in keys:
        value = model_cfg.get(key)
        for j, head in enumerate(_seq(value) or [value]):
            if hasattr(head, 'get'):
                yield f'model.{key}' + (f'[{j}]' if _seq(value) else ''), head


def _class_heads(model_cfg):
    """(name, config) of every head that predicts classes: the decode and
    auxiliary heads, and K-Net's heads inside its decode head."""
    for name, head in _heads(model_cfg):
        yield name, head
        inner = head.get('kernel_generate_head')
        if hasattr(inner, 'get'):
            yield f'{name}.kernel_generate_head', inner
        updates = _seq(head.get('kernel_update_head')) or []
        for i, update in enumerate(updates):
            if hasattr(update, 'get'):
                yield f'{name}.kernel_update_head[{i}]', update


def check_classes(cfg,
                  data: Sequence[str],
                  where: str = 'config',
                  log_more: bool = True) -> None:
    """Refuse decode / auxiliary heads with fewer classes than the
    datasets of the dataloaders named in ``data``: their labels would be
    out of the head's range (``IndexError: Target k is out of bounds`` at
    the first loss on CPU, a device-side assert on CUDA) and their IoU
    could never be earned. A head with ``out_channels=1`` (one sigmoid
    output) counts as two classes and needs a sigmoid loss. More classes
    than the dataset names is allowed (e.g. labels kept unreduced) and
    logged (unless not ``log_more``). Heads that count classes their own
    way (subclasses of :data:`OWN_CLASS_COUNT_HEADS`) are not checked, nor
    is any head in a config that sets ``check_num_classes = False``.

    The label loaders of those dataloaders' pipelines (``TestTimeAug``'s
    and wrapped datasets' too) are checked against their dataset and the
    decode head: ``reduce_zero_label`` as the dataset's, a
    ``CheckedLoadAnnotations``'s ``num_classes`` from the dataset's classes
    to the head's; one message names every loader that is wrong."""
    from mmengine.logging import print_log
    model_cfg = segmentor_cfg(cfg.get('model'))
    if not data or not hasattr(model_cfg, 'get') or not cfg.get(
            'check_num_classes', True):
        return
    imports = cfg.get('custom_imports')
    if hasattr(imports, 'get') and imports.get('imports'):
        # a head type of the user's is registered there (pure-Python configs
        # do not import them on reading)
        from mmengine.utils import import_modules_from_strings
        try:
            import_modules_from_strings(**imports)
        except ImportError:
            pass  # the model build names it
    heads = []
    for name, head in _class_heads(model_cfg):
        if not isinstance(head.get('num_classes'), int):
            continue
        if _own_class_count(head.get('type')):
            continue
        num_classes = head['num_classes']
        if head.get('out_channels') == 1:
            if _softmax_losses(head):
                raise BadInputError(
                    f'{where}: {name}.out_channels is 1 (one sigmoid '
                    'output for two classes), but its loss_decode is a '
                    'CrossEntropyLoss with use_sigmoid=False, which '
                    'needs one output per class; set use_sigmoid=True '
                    f'or out_channels={max(num_classes, 2)}')
            num_classes = 2  # background and foreground
        heads.append((name, num_classes))
    logged = set()  # train and val on one dataset: one line
    decode = [h for h in heads if h[0].startswith('model.decode_head')]
    loader_errors = []
    for loader in data:
        loader_cfg = cfg.get(loader)
        found = dataset_classes(
            loader_cfg.get('dataset') if hasattr(loader_cfg, 'get') else None)
        count, kind = found or (None, None)
        # the last decode head's prediction is the model's
        loader_errors += _label_loader_errors(loader, loader_cfg,
                                              decode[-1] if decode else None,
                                              found)
        for name, num_classes in heads if found else ():
            what = (f'{where}: {name}.num_classes is {num_classes}, but the '
                    f'dataset of {loader} ({kind}) has {count} classes')
            if num_classes < count:
                first, last = num_classes, count - 1
                labels = (f'its label {last} is' if first == last else
                          f'its labels {first}..{last} are')
                raise BadInputError(
                    f"{what}: {labels} out of the head's range; set "
                    f'{name}.num_classes={count} (or choose classes with the '
                    "dataset's metainfo; check_num_classes = False in the "
                    'config skips this check for heads that count classes '
                    'their own way)')
            if log_more and num_classes > count and (name, count,
                                                     kind) not in logged:
                logged.add((name, count, kind))
                if int(os.environ.get('RANK', '0')) == 0:  # once per job
                    print_log(
                        f"{what}: the head's extra outputs are trained only "
                        'if the labels use them, and pixels predicted as '
                        f'{_ids(count, num_classes - 1)} count as misses in '
                        'the metric',
                        logger='current',
                        level=logging.WARNING)
    if loader_errors:  # train, val and test often share one mistake
        raise BadInputError(f'{where}: ' +
                            '; '.join(dict.fromkeys(loader_errors)))


def _ids(first: int, last: int) -> str:
    return f'class {first}' if first == last else f'classes {first}..{last}'


# mmseg's label loaders, by registered name
LABEL_LOADERS = ('LoadAnnotations', 'CheckedLoadAnnotations')


def _label_loaders(pipeline, key: str):
    """(name, config) of the label loaders in ``pipeline``, through
    ``TestTimeAug``'s lists of transforms."""
    for i, step in enumerate(_seq(pipeline) or []):
        if not hasattr(step, 'get'):
            continue
        name = f'{key}[{i}]'
        if _is_a(step.get('type'), LABEL_LOADERS, 'TRANSFORMS'):
            yield name, step
        for j, branch in enumerate(_seq(step.get('transforms')) or []):
            yield from _label_loaders(branch, f'{name}.transforms[{j}]')


def _default_reduce_zero_label(kind) -> Optional[bool]:
    # the default of the dataset class's __init__ (ADE20K, LoveDA, Potsdam
    # and a few others reduce; BaseSegDataset does not)
    import inspect
    if isinstance(kind, str):
        from mmseg.registry import DATASETS
        try:
            kind = DATASETS.get(kind)
        except Exception:  # an unknown type: the dataset build names it
            return None
    if not isinstance(kind, type):
        return None
    for cls in kind.__mro__:  # Cityscapes' passes **kwargs to the base's
        param = inspect.signature(
            cls.__init__).parameters.get('reduce_zero_label')
        if param is not None and isinstance(param.default, bool):
            return param.default
    return None


def _label_loader_errors(loader: str, loader_cfg, head, found) -> list:
    """What the label loaders of ``loader``'s dataset get wrong: a
    ``reduce_zero_label`` unlike their dataset's (mmseg asserts it at the
    first label), or a ``CheckedLoadAnnotations`` ``num_classes`` above the
    decode head's (``head``: (name, classes it predicts)), which lets
    labels the loss cannot take through (e.g. ADE20K's 150 left in a config
    moved to another dataset), or below the dataset's (``found``: (classes,
    type)), which refuses valid labels as bad files."""
    ds = loader_cfg.get('dataset') if hasattr(loader_cfg, 'get') else None
    return _dataset_label_loader_errors(ds, f'{loader}.dataset', head, found)


def _dataset_label_loader_errors(ds, key: str, head, found) -> list:
    if not hasattr(ds, 'get'):
        return []
    if 'pipeline' not in ds:  # RepeatDataset, ConcatDataset and the like
        inner = [(ds.get('dataset'), f'{key}.dataset')]
        inner += [(d, f'{key}.datasets[{i}]')
                  for i, d in enumerate(_seq(ds.get('datasets')) or [])]
        return [
            e for d, k in inner
            for e in _dataset_label_loader_errors(d, k, head, found)
        ]
    errors = []
    kind = _type_name(ds.get('type'))
    reduce = ds.get('reduce_zero_label',
                    _default_reduce_zero_label(ds.get('type')))
    for name, step in _label_loaders(ds.get('pipeline'), f'{key}.pipeline'):
        mine = step.get('reduce_zero_label')
        if isinstance(mine, bool) and isinstance(reduce, bool) and \
                mine != reduce:
            errors.append(
                f'{name}.reduce_zero_label is {mine}, but its dataset '
                f'({kind}) loads with reduce_zero_label={reduce}: leave it '
                "out of the loader to follow the dataset's, or set the "
                "dataset's (True where label 0 means \"other\" and is "
                'ignored, as in ADE20K)')
        count = step.get('num_classes')
        if not isinstance(count, int):
            continue
        if head is not None and count > head[1]:
            errors.append(
                f'{name}.num_classes is {count}, but {head[0]} predicts '
                f'{head[1]} classes: labels {head[1]}..{count - 1} would '
                f'pass the loader and fail the loss; set it to {head[1]}')
        elif found is not None and count < found[0]:
            errors.append(
                f'{name}.num_classes is {count}, but its dataset '
                f'({found[1]}) has {found[0]} classes: labels of '
                f'{_ids(count, found[0] - 1)} would be refused as not '
                f'classes; set it to {found[0]}')
    return errors


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable_parent(path: Path, flag: str) -> None:
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise BadInputError(f'{flag} {path}: {base} is a file, not a folder')
    if not os.access(base, os.W_OK | os.X_OK):
        raise BadInputError(f'{flag} {path}: no permission to write in '
                            f'{base}')


def check_out_file(path: PathLike,
                   flag: str = '--out',
                   overwrite: bool = False,
                   overwrite_flag: Optional[str] = '--overwrite') -> Path:
    """An output file path that can be written: not a folder, its parent a
    folder (or creatable) with write permission, and not an existing file
    unless ``overwrite`` (``overwrite_flag`` is named in the refusal; None:
    the tool never replaces files)."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f'{flag} {path} is a folder; expected a file '
                            'path')
    if path.exists() and not overwrite:
        hint = (f'; pass {overwrite_flag} to replace it'
                if overwrite_flag else '; give a new path')
        raise BadInputError(f'{flag} {path} exists{hint}')
    _check_writable_parent(path, flag)
    return path


def check_out_dir(path: PathLike, flag: str = '--out-dir') -> Path:
    """An output folder that exists or can be created, with write
    permission; an existing file there is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInputError(f'{flag} {path} is a file; expected a folder')
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise BadInputError(f'{flag} {path}: no permission to write in '
                                'it')
        return path
    _check_writable_parent(path, flag)
    return path


def check_device(device: str, flag: str = '--device') -> str:
    """``'cpu'``, ``'cuda'`` or ``'cuda:N'`` that this torch can use."""
    import torch
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise BadInputError(f"{flag} {device!r} is not a device; expected "
                            f"'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type not in ('cpu', 'cuda'):
        raise BadInputError(f"{flag} {device!r}: expected 'cpu', 'cuda' or "
                            f"'cuda:N' (this tool runs nowhere else)")
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise BadInputError(f'{flag} {device}: torch {torch.__version__} '
                                'sees no CUDA device here; use --device cpu')
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise BadInputError(f'{flag} {device}: this machine has {count} '
                                f'CUDA device(s), cuda:0 to cuda:{count - 1}')
    return device


def _int_at_least(text: str, low: int, what: str) -> int:
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}')
    if value < low:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value}')
    return value


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer >= 1 (sizes, counts, repeats)."""
    return _int_at_least(text, 1, 'an integer >= 1')


def nonnegative_int(text: str) -> int:
    """argparse ``type=``: an integer >= 0 (warm-up counts)."""
    return _int_at_least(text, 0, 'an integer >= 0')


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number > 0 (seconds, budgets)."""
    import argparse
    import math
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, got {text!r}')
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f'expected a number > 0, got {text}')
    return value


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` (``--cfg-options key=value ...``) with a
    malformed item refused by the parser, naming it, where mmengine raises
    ``ValueError: not enough values to unpack``."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values or ():
            if '=' not in item or not item.split('=', 1)[0]:
                parser.error(f'argument {option_string}: expected KEY=VALUE '
                             f'items, got {item!r}')
        try:
            super().__call__(parser, namespace, values, option_string)
        except (ValueError, AssertionError) as err:
            parser.error(f'argument {option_string}: cannot parse '
                         f'{list(values)}: {_describe(err)}')
