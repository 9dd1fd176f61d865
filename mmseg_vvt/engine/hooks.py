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
    and counts), unless ``allow_partial`` (then it logs the same summary).

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
        self.fits = check_checkpoint_fits(
            runner.model, checkpoint, allow_partial=self.allow_partial)


def add_checkpoint_fit_hook(cfg, allow_partial: bool = False) -> None:
    """Append :class:`CheckpointFitHook` to ``cfg.custom_hooks`` (once).

    A partial load is allowed when ``allow_partial`` or the config says
    ``allow_partial_checkpoint = True``; either is logged when the
    checkpoint does not fit.
    """
    allow_partial = bool(
        allow_partial or cfg.get('allow_partial_checkpoint', False))
    cfg.allow_partial_checkpoint = allow_partial
    hooks = [
        h for h in (cfg.get('custom_hooks') or [])
        if h.get('type') not in ('CheckpointFitHook', CheckpointFitHook)
    ]
    hooks.append(dict(type='CheckpointFitHook', allow_partial=allow_partial))
    cfg.custom_hooks = hooks
