"""Hook that refuses a checkpoint whose weights do not fit the model."""
from typing import Optional

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .checkpoint import check_checkpoint_fits

__all__ = ['CheckpointFitHook', 'add_checkpoint_fit_hook']


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
            runner.model, checkpoint, allow_partial=allow_partial)


def add_checkpoint_fit_hook(cfg, allow_partial: bool = False) -> None:
    """Put one :class:`CheckpointFitHook` in ``cfg.custom_hooks``.

    A partial load is allowed when ``allow_partial``, the config's
    ``allow_partial_checkpoint = True`` or a ``CheckpointFitHook`` the
    config lists already asks for it; either is logged when the checkpoint
    does not fit. The config's own entry (the VVT configs carry one) is
    replaced, so the hook runs once.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    own = [h for h in hooks if _is_fit_hook(h)]
    allow_partial = bool(
        allow_partial or cfg.get('allow_partial_checkpoint', False)
        or any(_asks_partial(h) for h in own))
    cfg.allow_partial_checkpoint = allow_partial
    hooks = [h for h in hooks if not _is_fit_hook(h)]
    hooks.append(dict(type='CheckpointFitHook', allow_partial=allow_partial))
    cfg.custom_hooks = hooks


def _is_fit_hook(hook) -> bool:
    """A ``custom_hooks`` entry (a config dict or a built hook) that is a
    :class:`CheckpointFitHook`."""
    if isinstance(hook, Hook):
        return isinstance(hook, CheckpointFitHook)
    return hook.get('type') in ('CheckpointFitHook', 'mmseg.CheckpointFitHook',
                                CheckpointFitHook)


def _asks_partial(hook) -> bool:
    if isinstance(hook, Hook):
        return hook.allow_partial
    return bool(hook.get('allow_partial', False))
