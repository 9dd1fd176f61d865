"""weights_only loading of mmengine checkpoints (mmseg_vvt.engine.checkpoint).

Real mmengine runners save and resume checkpoints here; the refusals are
checked on checkpoints that pickle objects outside the allow-list.
"""
import contextlib
import itertools
import os
import os.path as osp
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
from torch.utils.data import Dataset

import mmseg_vvt  # noqa: F401  (installs the allow-list)
from mmseg_vvt.engine import (UnsafeCheckpointError, allowed_global_names,
                              load_from_local, safe_torch_load)


class ToyDataset(Dataset):
    metainfo = dict(classes=('a', 'b'), palette=[[0, 0, 0], [255, 0, 0]])

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(4, generator=g), y=torch.tensor(i % 2))


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x, y, mode='loss'):
        out = self.fc(x)
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(out, y))
        return out


_RUN_IDS = itertools.count()


def _runner(work_dir, max_iters, resume=False, load_from=None):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            batch_size=4,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=2),
            dict(type='PolyLR', power=0.9, by_epoch=False, begin=2, end=6)
        ],
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
        # unique: MessageHub/MMLogger instances are global, keyed by name
        experiment_name=f'toy_{next(_RUN_IDS)}_{os.getpid()}')


class Custom:
    """Not allow-listed: a checkpoint carrying it must be refused."""

    def __init__(self):
        self.value = 1


class RunsCode:
    """Unpickling this would create a directory (arbitrary code)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


class SneakyGetattr:
    """Pickles as getattr(HistoryBuffer, name): only the statistics methods
    HistoryBuffer itself stores may be looked up."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return (getattr, (HistoryBuffer, self.name))


@contextlib.contextmanager
def _without_allowlist():
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        yield
    finally:
        torch.serialization.add_safe_globals(saved)


def test_allowlist_is_what_mmengine_checkpoints_contain(tmp_path):
    runner = _runner(tmp_path, max_iters=2)
    runner.train()
    ckpt = osp.join(tmp_path, 'iter_2.pth')
    # the globals a real runner checkpoint holds beyond torch's defaults
    with _without_allowlist():
        found = set(
            torch.serialization.get_unsafe_globals_in_checkpoint(ckpt))
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in found
    assert found <= set(allowed_global_names()), found - set(
        allowed_global_names())
    # and the allow-list is installed in torch (import of mmseg_vvt)
    safe = torch.serialization.get_safe_globals()
    assert HistoryBuffer in safe


def test_runner_checkpoint_needs_the_allowlist(tmp_path):
    """Without the allow-list, torch>=2.6 refuses mmengine's checkpoints
    (the bug this module fixes); with it they load with weights_only."""
    runner = _runner(tmp_path, max_iters=2)
    runner.train()
    ckpt = osp.join(tmp_path, 'iter_2.pth')
    with _without_allowlist():
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(ckpt, weights_only=True)
    loaded = torch.load(ckpt, weights_only=True)
    buffers = loaded['message_hub']['log_scalars']
    assert isinstance(buffers['train/loss'], HistoryBuffer)
    assert loaded['meta']['iter'] == 2
    # HistoryBuffer's statistics survive the round trip
    assert np.isfinite(buffers['train/loss'].mean())


def test_resume_continues_with_optimizer_state(tmp_path):
    first = _runner(tmp_path, max_iters=2)
    first.train()
    saved_opt = first.optim_wrapper.state_dict()
    saved_loss = first.message_hub.get_scalar('train/loss').data[0].copy()

    resumed = _runner(tmp_path, max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    assert osp.isfile(osp.join(tmp_path, 'iter_4.pth'))
    # the checkpoint the resumed run started from was iter_2: its optimizer
    # step count and the logged loss history carried over
    ckpt = safe_torch_load(osp.join(tmp_path, 'iter_4.pth'))
    state = ckpt['optimizer']['state']
    assert int(state[0]['step']) == 4
    assert int(saved_opt['state'][0]['step']) == 2
    history = ckpt['message_hub']['log_scalars']['train/loss'].data[0]
    np.testing.assert_allclose(history[:2], saved_loss[:2])
    assert len(history) == 4


def test_custom_object_is_refused_with_file_and_global(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(2)), extra=Custom()), path)
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(path)
    msg = str(info.value)
    assert path in msg
    assert f'{__name__}.Custom' in msg
    # the refusal must not advise switching the safety off
    assert not re.search(r'weights_only\s*=\s*False', msg)
    # the runner's resume path uses the same loader
    runner = _runner(tmp_path / 'work', max_iters=2, load_from=path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        runner.load_checkpoint(path)


def test_code_execution_is_refused(tmp_path):
    target = tmp_path / 'created_by_unpickling'
    path = str(tmp_path / 'rce.pth')
    torch.save({'x': RunsCode(str(target))}, path)
    with pytest.raises(UnsafeCheckpointError, match='rce.pth'):
        load_from_local(path)
    assert not target.exists()


def test_getattr_is_limited_to_history_buffer_methods(tmp_path):
    ok = str(tmp_path / 'ok.pth')
    torch.save({'m': SneakyGetattr('mean')}, ok)
    assert safe_torch_load(ok)['m'] is HistoryBuffer.mean

    bad = str(tmp_path / 'bad.pth')
    torch.save({'m': SneakyGetattr('register_statistics')}, bad)
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(bad)
    assert 'bad.pth' in str(info.value)
    assert 'register_statistics' in str(info.value)


def test_missing_file_is_named(tmp_path):
    path = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        CheckpointLoader.load_checkpoint(path)


def test_plain_state_dict_still_loads(tmp_path):
    path = str(tmp_path / 'plain.pth')
    torch.save({'state_dict': {'w': torch.arange(3.)}, 'meta': {'a': 1}},
               path)
    loaded = CheckpointLoader.load_checkpoint(path)
    assert torch.equal(loaded['state_dict']['w'], torch.arange(3.))
