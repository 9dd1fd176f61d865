"""Helpers shared by ``tools/train.py`` and ``tools/test.py``.

mmseg's multi-GPU recipes say ``SyncBN`` and use NCCL; on a machine without
an accelerator:

* single-process runs work as they are (mmengine's runner reverts SyncBN to
  BN when not distributed), but we also rewrite the config so the log says
  what happened;
* distributed runs (``--launcher pytorch``, e.g. ``tools/dist_train.sh`` on
  CPU) need the gloo backend, a process group that mmengine can not create
  itself (its ``init_dist`` calls ``torch.cuda.set_device``), a DDP wrapper
  without ``device_ids``, and BN instead of SyncBN (``SyncBatchNorm`` only
  runs on GPU tensors).

:func:`adapt_cfg_to_device` makes those changes, each with a log line.
"""
import logging
import os
from typing import Any, List, Optional

import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.device import get_device
from mmengine.logging import print_log

__all__ = [
    'AmpNotAvailableError', 'LauncherNotAvailableError', 'adapt_cfg_to_device',
    'check_launcher_environment', 'close_distributed', 'enable_amp',
    'replace_sync_bn', 'init_cpu_distributed'
]

#: norm layer types that only run on GPU tensors
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')


class AmpNotAvailableError(RuntimeError):
    """``--amp`` was asked for where mmengine can not do mixed precision."""


class LauncherNotAvailableError(RuntimeError):
    """A ``--launcher`` this process cannot start: outside the starter that
    sets its environment (torchrun, srun, mpirun), or slurm / mpi on a
    machine without GPUs; the tools print it in one line."""


def _log(msg: str, level: int = logging.INFO) -> None:
    # called before mmengine's logger knows the rank: log on rank 0 only
    if int(os.environ.get('RANK', '0')) == 0:
        print_log(msg, logger='current', level=level)


def replace_sync_bn(node: Any, path: str = 'model') -> List[str]:
    """Change every ``dict(type='SyncBN'|'MMSyncBN', ...)`` inside ``node``
    (a config dict / list, modified in place) into ``type='BN'``.

    Returns the config paths that were changed.
    """
    changed: List[str] = []
    if isinstance(node, dict):
        if node.get('type') in SYNC_BN_TYPES:
            node['type'] = 'BN'
            changed.append(path)
        for key, value in node.items():
            changed += replace_sync_bn(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            changed += replace_sync_bn(value, f'{path}[{i}]')
    return changed


# What each launcher's process group setup reads from the environment
# (mmengine.dist.init_dist; our gloo setup on CPU reads the first four of
# torchrun's): without them it fails with a bare KeyError.
LAUNCHER_ENV = {
    'pytorch':
    ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'LOCAL_RANK'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    'mpi': ('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_SIZE',
            'OMPI_COMM_WORLD_RANK', 'MASTER_ADDR'),
}
# who sets them, and how this repository's scripts call it
_STARTERS = {
    'pytorch': ('torchrun', 'tools/dist_train.sh / tools/dist_test.sh'),
    'slurm': ('srun', 'tools/slurm_train.sh / tools/slurm_test.sh'),
    'mpi': ('mpirun', 'Open MPI, with MASTER_ADDR exported'),
}


def check_launcher_environment(launcher: str, device: str) -> None:
    """Raise :class:`LauncherNotAvailableError` naming the environment
    variables ``--launcher`` needs that its starter did not set.

    ``device`` is ``get_device()``'s answer; on CPU ``pytorch`` needs no
    ``LOCAL_RANK`` (no device to pick).
    """
    if launcher == 'none':
        return
    if launcher not in LAUNCHER_ENV:
        raise LauncherNotAvailableError(
            f'--launcher {launcher!r} is not a launcher: expected one of '
            f"{['none', *LAUNCHER_ENV]}.")
    needed = LAUNCHER_ENV[launcher]
    if device == 'cpu' and launcher == 'pytorch':
        needed = needed[:4]
    missing = [k for k in needed if k not in os.environ]
    if missing:
        raise LauncherNotAvailableError(
            f'--launcher {launcher} expects the environment variables '
            f'{missing}; start the script with {_STARTERS[launcher][0]} '
            f'({_STARTERS[launcher][1]}).')


def init_cpu_distributed(launcher: str, timeout_s: Optional[int] = None):
    """Create the gloo process group for a CPU-only distributed run.

    mmengine's ``init_dist`` would call ``torch.cuda.set_device``, which
    fails without CUDA; the runner skips ``init_dist`` when a process group
    already exists.
    """
    if torch_dist.is_initialized():
        return
    if launcher != 'pytorch':
        raise LauncherNotAvailableError(
            f'--launcher {launcher} on a machine without GPUs is not '
            'supported: CPU-only distributed runs need --launcher pytorch '
            '(torchrun, e.g. tools/dist_train.sh CONFIG NPROC).')
    check_launcher_environment(launcher, 'cpu')
    kwargs = {}
    if timeout_s is not None:
        import datetime
        kwargs['timeout'] = datetime.timedelta(seconds=timeout_s)
    torch_dist.init_process_group(backend='gloo', **kwargs)


def close_distributed() -> bool:
    """Wait for every rank, then destroy the default process group.

    Call it after a run finished without error. A process that exits with a
    live gloo process group can be killed by SIGABRT (``terminate called
    without an active exception``) while the interpreter shuts down, because
    gloo's worker threads still hold work objects then (pytorch/pytorch
    #190489); torchrun reports the whole job as failed although the run
    itself had finished. The barrier keeps a rank that finishes first from
    tearing the group down while the others still use it (rank 0 writing the
    last checkpoint). Not for the error path: a barrier there would wait for
    ranks that are gone.

    Returns whether a process group was closed.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return False
    torch_dist.barrier()
    torch_dist.destroy_process_group()
    return True


def adapt_cfg_to_device(cfg: Config, launcher: str = 'none') -> Config:
    """Adapt a (GPU) recipe to the device this process runs on.

    On CUDA / NPU / MLU / MUSA machines nothing changes. On CPU: SyncBN
    becomes BN, and for distributed launches the gloo process group and a
    CPU DDP wrapper are set up. Modifies and returns ``cfg``.
    """
    device = get_device()
    if device != 'cpu':
        # mmengine's init_dist would fail with a bare KeyError
        check_launcher_environment(launcher, device)
        return cfg
    changed = replace_sync_bn(cfg.get('model', {}))
    if cfg.get('tta_model') is not None:
        changed += replace_sync_bn(cfg.tta_model, 'tta_model')
    if changed:
        _log('No GPU: SyncBN needs CUDA tensors, so the norm layers at '
             f'{", ".join(changed)} are built as BN instead.')
    if launcher == 'none':
        return cfg

    # set, then read back: a Config's setdefault returns the dict it was
    # given, not the copy it keeps
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = {}
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = {}
    dist_cfg = cfg.env_cfg.dist_cfg
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        _log(f'No GPU: distributed backend {dist_cfg.get("backend")!r} '
             'replaced by gloo.')
        dist_cfg['backend'] = 'gloo'
    init_cpu_distributed(launcher, dist_cfg.get('timeout'))
    if cfg.get('model_wrapper_cfg') is None:
        # the runner's default wrapper passes device_ids=[LOCAL_RANK], which
        # DistributedDataParallel rejects for CPU modules
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,  # overrides the runner's [LOCAL_RANK]
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        _log('No GPU: models are wrapped in MMDistributedDataParallel '
             'without device_ids (CPU processes).')
    return cfg


def enable_amp(cfg: Config) -> Config:
    """What mmseg's ``--amp`` does, with clear errors instead of asserts.

    mmengine's ``AmpOptimWrapper`` needs a CUDA, NPU, MLU or MUSA device;
    on CPU this raises :class:`AmpNotAvailableError`.
    """
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if get_device() == 'cpu':
        raise AmpNotAvailableError(
            '--amp: automatic mixed precision needs a CUDA (or NPU/MLU/MUSA) '
            'device, and this machine has none (torch.cuda.is_available() '
            "is False). mmengine's AmpOptimWrapper does not run on CPU; "
            'train without --amp.')
    if optim_wrapper == 'AmpOptimWrapper':
        _log('AMP training is already enabled in your config.',
             logging.WARNING)
        return cfg
    if optim_wrapper != 'OptimWrapper':
        raise AmpNotAvailableError(
            '--amp is only supported when optim_wrapper.type is '
            f"'OptimWrapper', but the config has {optim_wrapper!r}.")
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    return cfg
