"""Hooks that carry this project's guards into any tool that runs a VVT
config: a checkpoint whose weights do not fit the model is refused, and a
config whose heads cannot fit the VVT or the data stops before the first
iteration."""
import logging
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from .checkpoint import check_checkpoint_fits

__all__ = [
    'CheckpointFitHook', 'add_checkpoint_fit_hook', 'VVTConfigCheckHook',
    'lists_hook', 'unmatched_custom_keys'
]

# the loops a runner has built when its before_run hooks are called, and the
# dataloader each runs
_LOOPS = (('_train_loop', 'train_dataloader'), ('_val_loop', 'val_dataloader'),
          ('_test_loop', 'test_dataloader'))


@HOOKS.register_module()
class VVTConfigCheckHook(Hook):
    """The config checks of this project's tools, for runs other tools start
    (mmseg's own ``tools/train.py`` / ``tools/test.py``, ``mim train``):
    VVT's input channels and output widths against the data preprocessor,
    the neck and the heads (``check_vvt_widths``), and each head's
    ``num_classes`` against the datasets of the loops the run has built
    (``check_classes``, refusals only; ``check_num_classes = False`` in the
    config skips it). A TTA model (``test.py --tta``) is checked through the
    segmentor it wraps.

    Without them a wrong width fails in the first forward with a shape
    error, and a head with fewer classes than the data with ``Target k is
    out of bounds`` at the first loss (a device-side assert on CUDA). This
    hook raises :class:`~mmseg_vvt.utils.cli.BadInputError` with the message
    the project's tools print up front, in ``before_run``: after the runner
    has built the model and the loops, before it loads pretrained weights or
    a checkpoint (whose errors would hide the config's). For a training run
    it also warns of ``paramwise_cfg.custom_keys`` that match no parameter
    (:func:`unmatched_custom_keys`) and of a VVT trained from random weights
    on zero padding (:func:`~mmseg_vvt.utils.cli.scratch_padding_warning`).
    """
    # before any other hook's before_run: nothing of the run should start
    # on a config that cannot run
    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        from mmengine.runner import BaseLoop

        from ..utils.cli import (check_classes, check_vvt_widths,
                                 scratch_padding_warning)
        cfg = runner.cfg
        name = getattr(cfg, 'filename', None)
        where = f'config {name}' if name else 'config'
        if not hasattr(cfg.get('model'), 'get'):
            return
        loaders = [
            loader for attr, loader in _LOOPS
            if isinstance(getattr(runner, attr, None), BaseLoop)
        ]
        check_vvt_widths(cfg.model, where)
        check_classes(cfg, loaders, where, log_more=False)
        if isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            # (a layer-decay constructor cannot be refused here: the runner
            # builds the optimizer before before_run; tools/train.py does)
            warning = scratch_padding_warning(cfg, where)
            if warning:
                print_log(warning, logger='current', level=logging.WARNING)
            unmatched = unmatched_custom_keys(cfg,
                                              getattr(runner, 'model', None))
            if unmatched:
                print_log(
                    f'{where}: optim_wrapper.paramwise_cfg.custom_keys '
                    f'{unmatched} match no parameter of the model, so their '
                    'settings apply to nothing (mmengine looks for a key in '
                    "each parameter's name; VVT's are backbone.patch_embedN."
                    '*, backbone.blockN.M.{norm1,attn,norm2,mlp}.* and '
                    'backbone.normN.*)',
                    logger='current',
                    level=logging.WARNING)


def unmatched_custom_keys(cfg, model) -> List[str]:
    """The keys of ``cfg.optim_wrapper.paramwise_cfg.custom_keys`` that are
    in no parameter name of ``model`` (a wrapper's module), as mmengine's
    default optimizer constructor matches them: settings that silently
    apply to nothing, e.g. Swin's ``relative_position_bias_table`` in a
    config moved to VVT. Empty for another constructor, which may read the
    keys its own way."""
    wrapper = cfg.get('optim_wrapper') or {}
    constructor = wrapper.get('constructor', 'DefaultOptimWrapperConstructor')
    paramwise = wrapper.get('paramwise_cfg') or {}
    keys = paramwise.get('custom_keys') or {}
    if model is None or not keys or constructor not in (
            'DefaultOptimWrapperConstructor',
            'mmengine.DefaultOptimWrapperConstructor'):
        return []
    module = getattr(model, 'module', model)
    names = [name for name, _ in module.named_parameters()]
    return [key for key in keys if not any(key in name for name in names)]


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Check the checkpoint the runner loads (``load_from``, ``--resume``,
    ``tools/test.py``) against the model before its weights are copied.

    mmengine loads with ``strict=False``: a checkpoint of another arch or
    config loads partly, with one warning line, and the run goes on with a
    partly random model. This hook raises
    :class:`~mmseg_vvt.engine.CheckpointMismatchError` instead (first keys
    and counts), unless a partial load is asked for (then it logs the same
    summary): ``allow_partial``, or ``allow_partial_checkpoint = True`` in
    the runner's config. The VVT configs list this hook in
    ``custom_hooks`` (``configs/_base_/default_runtime.py``), so the check
    also holds under mmseg's own ``tools/test.py`` and ``tools/train.py``,
    where ``--cfg-options allow_partial_checkpoint=True`` asks for the
    partial load.

    A resumed run (``resume = True``) is refused a misfit even then: the
    optimizer state it goes on to load fits only the model the checkpoint
    was saved with.

    ``after_load_checkpoint`` is mmengine's hook point between reading a
    checkpoint and loading it into the model, for loading and resuming
    alike; the lowest priority lets hooks that rewrite the checkpoint there
    (e.g. ``EMAHook``) go first.

    Args:
        allow_partial (bool): Load what matches and log what does not.
            Default: False.

    Attributes:
        fits (bool | None): Whether the last checkpoint loaded fitted the
            model whole; None before one is loaded. ``tools/test.py``
            records a partial load with the result it scores.
    """
    priority = 'LOWEST'

    def __init__(self, allow_partial: bool = False):
        self.allow_partial = allow_partial
        self.fits: Optional[bool] = None

    def after_load_checkpoint(self, runner, checkpoint: Optional[dict]):
        cfg = getattr(runner, 'cfg', None) or {}
        allow_partial = self.allow_partial or bool(
            cfg.get('allow_partial_checkpoint', False))
        self.fits = check_checkpoint_fits(
            runner.model,
            checkpoint,
            allow_partial=allow_partial,
            # mmengine keeps whether it resumes in this attribute only
            resuming=bool(getattr(runner, '_resume', False)))


def add_checkpoint_fit_hook(cfg, allow_partial: bool = False) -> None:
    """Leave one :class:`CheckpointFitHook` in ``cfg.custom_hooks``.

    A partial load is allowed when ``allow_partial``, the config's
    ``allow_partial_checkpoint = True`` or a ``CheckpointFitHook`` the
    config lists already asks for it; either is logged when the checkpoint
    does not fit. The config's own entry (the VVT configs carry one) is
    kept, as the built hook when it is one (its ``fits`` stays readable),
    and any further entries are dropped, so the hook runs once.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    own = [h for h in hooks if _is_fit_hook(h)]
    allow_partial = bool(
        allow_partial or cfg.get('allow_partial_checkpoint', False)
        or any(_asks_partial(h) for h in own))
    cfg.allow_partial_checkpoint = allow_partial
    built = [h for h in own if isinstance(h, Hook)]
    if built:
        keep = built[0]
        keep.allow_partial = allow_partial
    else:
        keep = dict(type='CheckpointFitHook', allow_partial=allow_partial)
    hooks = [h for h in hooks if not _is_fit_hook(h)]
    hooks.append(keep)
    cfg.custom_hooks = hooks


def _is_hook(hook, cls) -> bool:
    """Whether a ``custom_hooks`` entry (a config dict or a built hook) is a
    ``cls``."""
    if isinstance(hook, Hook):
        return isinstance(hook, cls)
    return hasattr(
        hook, 'get') and hook.get('type') in (cls.__name__,
                                              f'mmseg.{cls.__name__}', cls)


def _is_fit_hook(hook) -> bool:
    return _is_hook(hook, CheckpointFitHook)


def lists_hook(cfg, cls) -> bool:
    """Whether ``cfg.custom_hooks`` lists a hook of class ``cls``."""
    return any(_is_hook(h, cls) for h in cfg.get('custom_hooks') or [])


def _asks_partial(hook) -> bool:
    """Whether a ``CheckpointFitHook`` entry allows a partial load."""
    if isinstance(hook, Hook):
        return hook.allow_partial
    return bool(hook.get('allow_partial', False))
