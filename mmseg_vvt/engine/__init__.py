"""Runtime support: safe checkpoint loading (installed on import), the hook
that refuses checkpoints that do not fit the model, atomic checkpoint
saves."""
from .checkpoint import (CheckpointError, CheckpointMismatchError,
                         CheckpointNotFoundError, CorruptCheckpointError,
                         UnsafeCheckpointError, allowed_global_names,
                         check_checkpoint_fits, checkpoint_source,
                         install_checkpoint_allowlist, load_from_http,
                         load_from_local, load_model_checkpoint,
                         register_safe_scheme, safe_torch_load)
from .fileio import AtomicLocalBackend, atomic_write, latest_checkpoint
from .hooks import (CheckpointFitHook, VVTConfigCheckHook,
                    add_checkpoint_fit_hook, lists_hook)

install_checkpoint_allowlist()

__all__ = [
    'CheckpointError', 'CheckpointMismatchError', 'CheckpointNotFoundError',
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'allowed_global_names',
    'check_checkpoint_fits', 'checkpoint_source',
    'install_checkpoint_allowlist', 'load_from_http', 'load_from_local',
    'load_model_checkpoint', 'register_safe_scheme', 'safe_torch_load',
    'AtomicLocalBackend', 'atomic_write', 'latest_checkpoint',
    'CheckpointFitHook', 'add_checkpoint_fit_hook', 'VVTConfigCheckHook',
    'lists_hook'
]
