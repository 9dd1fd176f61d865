"""Resume after ``kill -9``: a training process killed right after a
checkpoint appears (or in the middle of a save) continues from the newest
complete checkpoint with ``--resume`` and finishes.

The fast tests train mmengine's runner on a toy model in a subprocess, with
the project's atomic checkpoint backend, CheckpointFitHook and
``latest_checkpoint`` (what tools/train.py uses); the slow one runs
tools/train.py on a tiny VVT.
"""
import glob
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest

from mmseg_vvt.engine import latest_checkpoint, safe_torch_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PYTHON = sys.executable

TOY_TRAIN = '''
"""Toy training run: WORK_DIR new|resume MAX_ITERS."""
import os
import signal
import sys
import time

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmseg_vvt.engine import CheckpointFitHook, latest_checkpoint


class Data(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(4, generator=g), y=torch.tensor(i % 2))


class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x, y, mode='loss'):
        return dict(loss=nn.functional.cross_entropy(self.fc(x), y))


class Slow(Hook):
    """Leaves the test time to kill the run between two iterations."""

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        time.sleep(float(os.environ.get('ITER_SLEEP', '0')))


work_dir, mode, max_iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
die_at = os.environ.get('KILL_DURING_SAVE')
if die_at:
    # SIGKILL once iter_N.pth is written to its temporary file, before it
    # is renamed into place: a kill in the middle of the save
    real_replace = os.replace

    def replace_or_die(src, dst):
        if os.path.basename(dst) == f'iter_{die_at}.pth':
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    os.replace = replace_or_die
runner = Runner(
    model=Toy(),
    work_dir=work_dir,
    train_dataloader=dict(
        dataset=Data(), batch_size=4, num_workers=0,
        sampler=dict(type='InfiniteSampler', shuffle=False),
        collate_fn=dict(type='default_collate')),
    optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
    train_cfg=dict(by_epoch=False, max_iters=max_iters),
    default_hooks=dict(
        checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                        backend_args=dict(backend='atomic_local')),
        logger=dict(type='LoggerHook', interval=1)),
    custom_hooks=[Slow(), CheckpointFitHook()],
    randomness=dict(seed=0),
    resume=mode == 'resume',
    load_from=latest_checkpoint(work_dir) if mode == 'resume' else None)
runner.train()
'''


def _env(**extra):
    env = dict(os.environ)
    env.update({
        'PYTHONPATH': REPO + os.pathsep + env.get('PYTHONPATH', ''),
        'OMP_NUM_THREADS': '1',
        'CUDA_VISIBLE_DEVICES': '',
    })
    env.update(extra)
    return env


def _checkpoints(work_dir):
    """{iteration: path} of the files named like checkpoints."""
    found = {}
    for path in glob.glob(osp.join(work_dir, 'iter_*.pth')):
        found[int(re.search(r'iter_(\d+)\.pth$', path).group(1))] = path
    return found


def kill_right_after_checkpoint(cmd, work_dir, env, log_path, timeout=300):
    """Start ``cmd``, SIGKILL it as soon as a file named like a checkpoint
    appears in ``work_dir``; return the highest iteration saved by then."""
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        try:
            while not _checkpoints(work_dir):
                assert proc.poll() is None, (
                    'training ended before a checkpoint appeared:\n' +
                    open(log_path).read()[-3000:])
                assert time.monotonic() < deadline, 'no checkpoint in time'
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    saved = _checkpoints(work_dir)
    # every file named like a checkpoint is complete (atomic saves)
    for path in saved.values():
        safe_torch_load(path)
    return max(saved)


def _run(cmd, env, timeout=300):
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def _assert_finished(work_dir, max_iters):
    final = safe_torch_load(osp.join(work_dir, f'iter_{max_iters}.pth'))
    assert final['meta']['iter'] == max_iters
    # AdamW's step count carried over from the checkpoint resumed from
    assert int(final['optimizer']['state'][0]['step']) == max_iters
    assert not glob.glob(osp.join(work_dir, '.*.partial'))


@pytest.fixture
def toy_script(tmp_path):
    path = tmp_path / 'toy_train.py'
    path.write_text(TOY_TRAIN)
    return str(path)


def test_sigkill_right_after_a_checkpoint_then_resume(toy_script, tmp_path):
    work_dir = str(tmp_path / 'work')
    last = kill_right_after_checkpoint(
        [PYTHON, toy_script, work_dir, 'new', '10'], work_dir,
        _env(ITER_SLEEP='0.3'), tmp_path / 'first.log')
    assert last < 10
    # the newest checkpoint is found even if last_checkpoint was not
    # written yet when the process died
    assert latest_checkpoint(work_dir) == osp.join(work_dir,
                                                   f'iter_{last}.pth')
    out = _run([PYTHON, toy_script, work_dir, 'resume', '10'], _env())
    assert f'resumed epoch: 0, iter: {last}' in out
    _assert_finished(work_dir, 10)


def test_sigkill_during_a_save_then_resume(toy_script, tmp_path):
    work_dir = str(tmp_path / 'work')
    proc = subprocess.run([PYTHON, toy_script, work_dir, 'new', '6'],
                          cwd=REPO,
                          env=_env(KILL_DURING_SAVE='4'),
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
    # the interrupted save left its temporary file, not an iter_4.pth
    assert sorted(_checkpoints(work_dir)) == [1, 2, 3]
    (partial, ) = glob.glob(osp.join(work_dir, '.iter_4.pth.*.partial'))
    assert osp.getsize(partial) > 0
    assert latest_checkpoint(work_dir) == osp.join(work_dir, 'iter_3.pth')
    out = _run([PYTHON, toy_script, work_dir, 'resume', '6'], _env())
    assert 'resumed epoch: 0, iter: 3' in out
    # saving iter_4.pth again removed the stale temporary file
    _assert_finished(work_dir, 6)


@pytest.mark.slow
def test_tools_train_sigkill_right_after_a_checkpoint_then_resume(tmp_path):
    """tools/train.py on a tiny VVT FPN (the repository's VVT-T recipe,
    shrunk), killed with SIGKILL right after its first checkpoint appears,
    then ``--resume``."""
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    try:
        from test_train_test import _write_split, write_config
    finally:
        sys.path.pop(0)
    root = str(tmp_path / 'ade' / 'ADEChallengeData2016')
    _write_split(root, 'training', 2, seed=0)
    _write_split(root, 'validation', 2, seed=1)
    cfg = write_config(tmp_path / 'tiny_fpn.py', root, iters=8)
    work_dir = str(tmp_path / 'work')
    train = osp.join(REPO, 'tools', 'train.py')
    last = kill_right_after_checkpoint(
        [PYTHON, train, cfg, '--work-dir', work_dir], work_dir, _env(),
        tmp_path / 'first.log')
    assert last < 8
    out = _run([PYTHON, train, cfg, '--work-dir', work_dir, '--resume'],
               _env())
    assert f'resumed epoch: 0, iter: {last}' in out
    _assert_finished(work_dir, 8)
