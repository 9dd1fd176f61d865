"""A local file backend whose writes are atomic (checkpoints, last_checkpoint).

mmengine's ``LocalBackend.put`` opens the target with ``'wb'`` and writes:
a job killed during a save leaves an empty or truncated ``iter_N.pth``
under the checkpoint's own name. :class:`AtomicLocalBackend` writes to a
hidden temporary file in the same directory, flushes it to disk and
renames it into place (``os.replace`` is atomic on POSIX and Windows), so a
file named like a checkpoint is always complete.

The project's configs select it for mmengine's ``CheckpointHook``::

    default_hooks = dict(checkpoint=dict(
        type='CheckpointHook', backend_args=dict(backend='atomic_local')))

The hook passes ``backend_args`` to ``runner.save_checkpoint`` and uses the
same backend to write ``last_checkpoint``. :func:`latest_checkpoint` is what
``tools/train.py --resume`` continues from: also a checkpoint saved just
before a kill that ``last_checkpoint`` does not name yet.
"""
import glob
import logging
import os
import os.path as osp
import re
import uuid
import zipfile
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import print_log

__all__ = [
    'AtomicLocalBackend', 'atomic_write', 'latest_checkpoint', 'PARTIAL_SUFFIX'
]

#: suffix of the temporary file a write in progress goes to
PARTIAL_SUFFIX = '.partial'


def _partial_prefix(filepath: str) -> str:
    return osp.join(osp.dirname(filepath), f'.{osp.basename(filepath)}.')


def atomic_write(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so that the file either keeps its old
    content or holds all of ``data``, never a part of it."""
    filepath = os.fspath(filepath)
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    prefix = _partial_prefix(osp.abspath(filepath))
    # not tempfile.mkstemp: its files are 0600, and the checkpoint should
    # get the permissions (umask) any other file written here gets
    tmp = f'{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    # temporary files of earlier writes of this name that were killed
    # (SIGKILL runs no clean-up); this write replaces what they were for
    for stale in glob.glob(glob.escape(prefix) + '*' + PARTIAL_SUFFIX):
        try:
            os.remove(stale)
        except FileNotFoundError:  # removed by a concurrent writer
            pass


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """:class:`mmengine.fileio.LocalBackend` with atomic ``put`` and
    ``put_text`` (temporary file + rename)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), filepath)


_CKPT_NAME = re.compile(r'(iter|epoch)_(\d+)\.pth')


def _complete(path: str) -> bool:
    """Whether ``path`` is a whole zip archive (what ``torch.save`` writes;
    a truncated one lacks the central directory at its end)."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError):
        return False


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` continues from.

    mmengine's ``find_latest_checkpoint`` reads ``last_checkpoint``, which
    ``CheckpointHook`` writes just *after* the checkpoint: a job killed in
    between resumes from the checkpoint before (or from scratch). Here the
    newest complete ``iter_N.pth`` / ``epoch_N.pth`` in the directory of the
    last recorded checkpoint (or ``work_dir``) wins when it is newer; an
    incomplete one (killed during a non-atomic save) is skipped, logged.

    Returns:
        The path, or None when there is no checkpoint.
    """
    recorded = None
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record) as f:
            recorded = f.read().strip() or None
    directory = osp.dirname(recorded) if recorded else work_dir
    kind = None
    if recorded:
        match = _CKPT_NAME.fullmatch(osp.basename(recorded))
        kind = match.group(1) if match else None
    found = []
    for name in os.listdir(directory) if osp.isdir(directory) else []:
        match = _CKPT_NAME.fullmatch(name)
        if match and match.group(1) == (kind or match.group(1)):
            found.append((match.group(1) == 'iter', int(match.group(2)),
                          osp.join(directory, name)))
    for _, number, path in sorted(found, reverse=True):
        if recorded is not None and osp.abspath(path) == osp.abspath(recorded):
            return recorded
        if _complete(path):
            if recorded is not None:
                print_log(
                    f'--resume: {path} is newer than {recorded}, which '
                    'last_checkpoint names (the job stopped before it '
                    f'recorded {osp.basename(path)}); resuming from it.',
                    logger='current',
                    level=logging.WARNING)
            return path
        print_log(
            f'--resume: skipping {path} ({osp.getsize(path)} bytes): it is '
            'not a complete checkpoint (a save that was interrupted).',
            logger='current',
            level=logging.WARNING)
    return recorded
