"""Runtime support: safe checkpoint loading (installed on import)."""
from .checkpoint import (UnsafeCheckpointError, allowed_global_names,
                         install_checkpoint_allowlist, load_from_http,
                         load_from_local, safe_torch_load)

install_checkpoint_allowlist()

__all__ = [
    'UnsafeCheckpointError', 'allowed_global_names',
    'install_checkpoint_allowlist', 'load_from_http', 'load_from_local',
    'safe_torch_load'
]
