"""Device adaptation of recipes for CPU runs (mmseg_vvt.engine.runtime)."""
import pytest
import torch
from mmengine.config import Config

import mmseg_vvt  # noqa: F401
from mmseg_vvt.engine import runtime
from mmseg_vvt.engine.runtime import (AmpNotAvailableError,
                                      adapt_cfg_to_device, close_distributed,
                                      enable_amp, init_cpu_distributed,
                                      replace_sync_bn)


@pytest.fixture
def no_gpu(monkeypatch):
    """Behave as on a machine without an accelerator (also on GPU hosts)."""
    monkeypatch.setattr(runtime, 'get_device', lambda: 'cpu')


def _cfg():
    norm = dict(type='SyncBN', requires_grad=True)
    return Config(
        dict(
            model=dict(
                type='EncoderDecoder',
                backbone=dict(type='VVT', norm_cfg=dict(type='LN')),
                decode_head=dict(type='FPNHead', norm_cfg=norm),
                auxiliary_head=[
                    dict(type='FCNHead', norm_cfg=dict(type='MMSyncBN')),
                    dict(type='FCNHead', norm_cfg=dict(type='BN')),
                ]),
            optim_wrapper=dict(
                type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)),
            env_cfg=dict(dist_cfg=dict(backend='nccl'))))


def test_replace_sync_bn_reports_paths():
    cfg = _cfg()
    changed = replace_sync_bn(cfg.model)
    assert changed == [
        'model.decode_head.norm_cfg', 'model.auxiliary_head[0].norm_cfg'
    ]
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert cfg.model.decode_head.norm_cfg.requires_grad is True
    assert cfg.model.auxiliary_head[0].norm_cfg.type == 'BN'
    assert cfg.model.backbone.norm_cfg.type == 'LN'
    assert replace_sync_bn(cfg.model) == []


def test_adapt_single_process_cpu(no_gpu):
    cfg = adapt_cfg_to_device(_cfg(), 'none')
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    # single process: no distributed settings are touched
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg


def test_distributed_cpu_needs_torchrun_env(no_gpu, monkeypatch):
    for var in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match='torchrun'):
        init_cpu_distributed('pytorch')
    with pytest.raises(RuntimeError, match='--launcher pytorch'):
        init_cpu_distributed('slurm')


def test_distributed_cpu_single_rank_group(no_gpu, monkeypatch):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', '29731')
    cfg = _cfg()
    try:
        adapt_cfg_to_device(cfg, 'pytorch')
        assert torch.distributed.is_initialized()
        assert torch.distributed.get_backend() == 'gloo'
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model.decode_head.norm_cfg.type == 'BN'


def test_close_distributed_destroys_the_group(no_gpu, monkeypatch):
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(port))
    # nothing to close in a single-process run
    assert close_distributed() is False
    try:
        init_cpu_distributed('pytorch')
        assert torch.distributed.is_initialized()
        assert close_distributed() is True
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_amp_on_cpu_is_refused_clearly(no_gpu):
    cfg = _cfg()
    with pytest.raises(AmpNotAvailableError, match='CUDA'):
        enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'OptimWrapper'


def test_amp_on_gpu_switches_wrapper(monkeypatch):
    monkeypatch.setattr(runtime, 'get_device', lambda: 'cuda')
    cfg = enable_amp(_cfg())
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    other = _cfg()
    other.optim_wrapper.type = 'ColossalAIOptimWrapper'
    with pytest.raises(AmpNotAvailableError, match='ColossalAIOptimWrapper'):
        enable_amp(other)


def test_replace_sync_bn_inside_tuples():
    # kills runtime.py `isinstance(node, (list, tuple))` -> `list`
    from mmseg_vvt.engine.runtime import replace_sync_bn
    node = dict(heads=(dict(norm_cfg=dict(type='SyncBN')), ))
    assert replace_sync_bn(node, 'model') == ['model.heads[0].norm_cfg']
    assert node['heads'][0]['norm_cfg']['type'] == 'BN'


def test_adapt_replaces_sync_bn_in_the_tta_model(monkeypatch):
    # kills runtime.py dropping the tta_model pass
    from mmseg_vvt.engine import runtime
    monkeypatch.setattr(runtime, 'get_device', lambda: 'cpu')
    cfg = Config(
        dict(
            model=dict(type='EncoderDecoder'),
            tta_model=dict(
                type='SegTTAModel',
                module=dict(norm_cfg=dict(type='SyncBN')))))
    runtime.adapt_cfg_to_device(cfg, 'none')
    assert cfg.tta_model.module.norm_cfg.type == 'BN'


@pytest.mark.parametrize('gone',
                         ['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'])
def test_each_torchrun_variable_is_required(monkeypatch, gone):
    # kills runtime.py dropping one name from the checked variables
    from mmseg_vvt.engine.runtime import (LauncherNotAvailableError,
                                          init_cpu_distributed)
    env = dict(
        RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT='1')
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv(gone)
    assert not torch.distributed.is_initialized()
    with pytest.raises(LauncherNotAvailableError, match=gone):
        init_cpu_distributed('pytorch', timeout_s=5)


def test_distributed_cpu_sets_gloo_when_no_backend_is_given(monkeypatch):
    # kills runtime.py `dist_cfg.get('backend', 'nccl')` -> `'gloo'`
    # default (mmengine's default backend is nccl)
    from mmseg_vvt.engine import runtime
    monkeypatch.setattr(runtime, 'get_device', lambda: 'cpu')
    monkeypatch.setattr(runtime, 'init_cpu_distributed', lambda *a: None)
    cfg = Config(
        dict(model=dict(type='EncoderDecoder'), env_cfg=dict(dist_cfg=dict())))
    runtime.adapt_cfg_to_device(cfg, 'pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'


@pytest.mark.parametrize('env_cfg', [None, dict(cudnn_benchmark=False)])
def test_distributed_cpu_sets_gloo_without_a_dist_cfg(monkeypatch, env_cfg):
    # REAL BUG (fails on main): Config/ConfigDict.setdefault stores a
    # converted copy and returns the dict passed in, so
    # `cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})` in
    # adapt_cfg_to_device writes backend='gloo' into a detached dict when
    # the config has no env_cfg.dist_cfg: the log says 'replaced by gloo'
    # but the config keeps no backend
    from mmseg_vvt.engine import runtime
    monkeypatch.setattr(runtime, 'get_device', lambda: 'cpu')
    monkeypatch.setattr(runtime, 'init_cpu_distributed', lambda *a: None)
    cfg = Config(dict(model=dict(type='EncoderDecoder')))
    if env_cfg is not None:
        cfg.env_cfg = env_cfg
    runtime.adapt_cfg_to_device(cfg, 'pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'


def _only_env(monkeypatch, **env):
    from mmseg_vvt.engine.runtime import LAUNCHER_ENV
    for names in LAUNCHER_ENV.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


TORCHRUN_ENV = dict(
    RANK='0',
    WORLD_SIZE='1',
    MASTER_ADDR='127.0.0.1',
    MASTER_PORT='29500',
    LOCAL_RANK='0')


@pytest.mark.parametrize('launcher,env,missing', [
    ('pytorch', {}, "['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', "
     "'LOCAL_RANK']"),
    ('pytorch', {
        k: v
        for k, v in TORCHRUN_ENV.items() if k != 'LOCAL_RANK'
    }, "['LOCAL_RANK']"),
    ('slurm', dict(SLURM_PROCID='0'), "['SLURM_NTASKS', 'SLURM_NODELIST']"),
    ('mpi',
     dict(
         OMPI_COMM_WORLD_LOCAL_RANK='0',
         OMPI_COMM_WORLD_SIZE='1',
         OMPI_COMM_WORLD_RANK='0'), "['MASTER_ADDR']"),
])
def test_launcher_outside_its_starter_on_gpu_names_what_is_missing(
        monkeypatch, launcher, env, missing):
    # was: mmengine's init_dist raising a bare KeyError('RANK') in the
    # runner on GPU machines
    from mmseg_vvt.engine.runtime import LauncherNotAvailableError
    monkeypatch.setattr(runtime, 'get_device', lambda: 'cuda')
    _only_env(monkeypatch, **env)
    starter = dict(pytorch='torchrun', slurm='srun', mpi='mpirun')[launcher]
    with pytest.raises(LauncherNotAvailableError) as err:
        adapt_cfg_to_device(_cfg(), launcher)
    assert f'--launcher {launcher} expects the environment variables ' \
           f'{missing}; start the script with {starter}' in str(err.value)


def test_launcher_inside_its_starter_on_gpu_leaves_the_cfg(monkeypatch):
    monkeypatch.setattr(runtime, 'get_device', lambda: 'cuda')
    _only_env(monkeypatch, **TORCHRUN_ENV)
    cfg = adapt_cfg_to_device(_cfg(), 'pytorch')
    # mmengine's runner sets up the group and the wrapper on GPUs
    assert not torch.distributed.is_initialized()
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert 'model_wrapper_cfg' not in cfg
    assert adapt_cfg_to_device(_cfg(), 'none').model == _cfg().model


def test_cpu_torchrun_needs_no_local_rank(no_gpu, monkeypatch):
    # on CPU the gloo group picks no device, so LOCAL_RANK is not asked for
    from mmseg_vvt.engine.runtime import check_launcher_environment
    _only_env(monkeypatch, **{
        k: v
        for k, v in TORCHRUN_ENV.items() if k != 'LOCAL_RANK'
    })
    check_launcher_environment('pytorch', 'cpu')
    with pytest.raises(RuntimeError, match='LOCAL_RANK'):
        check_launcher_environment('pytorch', 'cuda')


def test_unknown_launcher_is_refused():
    from mmseg_vvt.engine.runtime import (LauncherNotAvailableError,
                                          check_launcher_environment)
    with pytest.raises(
            LauncherNotAvailableError,
            match=r"'torchrun' is not a launcher: expected one of "
            r"\['none', 'pytorch', 'slurm', 'mpi'\]"):
        check_launcher_environment('torchrun', 'cuda')
