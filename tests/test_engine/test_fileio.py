"""Atomic checkpoint saves (mmseg_vvt.engine.fileio) and the configs that
use them; the checkpoint ``--resume`` continues from."""
import glob
import os
import os.path as osp
import stat

import pytest
import torch
from ckpt_helpers import write_truncated
from mmengine.config import Config
from mmengine.fileio import get_file_backend

import mmseg_vvt.engine.fileio as fileio
from mmseg_vvt.engine import (AtomicLocalBackend, atomic_write,
                              latest_checkpoint)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
USER_CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep))


def test_write_replaces_whole_files(tmp_path):
    path = str(tmp_path / 'sub' / 'iter_2.pth')
    atomic_write(b'first', path)
    atomic_write(b'second version', path)
    with open(path, 'rb') as f:
        assert f.read() == b'second version'
    assert os.listdir(tmp_path / 'sub') == ['iter_2.pth']
    # the permissions any other new file gets (not mkstemp's 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'iter_2.pth')
    atomic_write(b'complete checkpoint', path)

    def disk_full(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(fileio.os, 'fsync', disk_full)
    with pytest.raises(OSError, match='No space left'):
        atomic_write(b'half', path)
    with open(path, 'rb') as f:
        assert f.read() == b'complete checkpoint'
    assert os.listdir(tmp_path) == ['iter_2.pth']


def test_stale_partial_of_a_killed_save_is_removed(tmp_path):
    stale = tmp_path / '.iter_4.pth.1234-abcdef01.partial'
    stale.write_bytes(b'half a checkpoint')
    other = tmp_path / '.iter_6.pth.1234-abcdef01.partial'
    other.write_bytes(b'another')
    atomic_write(b'whole', str(tmp_path / 'iter_4.pth'))
    assert not stale.exists()
    assert other.exists()  # a different checkpoint's: not this write's


def test_backend_is_registered_and_writes_text_atomically(tmp_path):
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put_text('iter_8.pth', str(tmp_path / 'last_checkpoint'))
    backend.put(b'x', str(tmp_path / 'iter_8.pth'))
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_8.pth'
    assert sorted(os.listdir(tmp_path)) == ['iter_8.pth', 'last_checkpoint']


@pytest.mark.parametrize(
    'path', USER_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_configs_save_checkpoints_atomically(path):
    cfg = Config.fromfile(path)
    hook = cfg.default_hooks.checkpoint
    assert hook.type == 'CheckpointHook'
    assert hook.get('backend_args') == dict(backend='atomic_local')


def _save(path):
    torch.save({'w': torch.zeros(4)}, path)
    return str(path)


def test_latest_checkpoint(tmp_path):
    work = str(tmp_path)
    assert latest_checkpoint(work) is None
    two = _save(tmp_path / 'iter_2.pth')
    # killed before last_checkpoint was written: the file is still found
    assert latest_checkpoint(work) == two
    (tmp_path / 'last_checkpoint').write_text(two)
    assert latest_checkpoint(work) == two
    four = _save(tmp_path / 'iter_4.pth')
    assert latest_checkpoint(work) == four
    # a non-atomic save killed half-way is skipped
    write_truncated(four, tmp_path / 'iter_6.pth')
    assert latest_checkpoint(work) == four
    # iter_10 sorts after iter_6 by number, not by name
    ten = _save(tmp_path / 'iter_10.pth')
    assert latest_checkpoint(work) == ten


def test_latest_checkpoint_keeps_to_the_recorded_kind(tmp_path):
    # an epoch-based run in a folder holding another schedule's iter_N
    epoch = _save(tmp_path / 'epoch_2.pth')
    _save(tmp_path / 'iter_900.pth')
    (tmp_path / 'last_checkpoint').write_text(epoch)
    assert latest_checkpoint(str(tmp_path)) == epoch
    three = _save(tmp_path / 'epoch_3.pth')
    assert latest_checkpoint(str(tmp_path)) == three
