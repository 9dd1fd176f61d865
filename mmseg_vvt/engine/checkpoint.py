"""Safe (``weights_only``) loading of mmengine / mmseg checkpoints.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: it only
rebuilds tensors, containers, numbers and strings plus the globals that were
explicitly allow-listed. mmengine 0.10.7 saves runner checkpoints that also
hold its ``MessageHub`` state (``HistoryBuffer`` objects with numpy arrays),
so resuming and ``tools/test.py`` fail with ``Unsupported global:
mmengine.logging.history_buffer.HistoryBuffer``.

This module keeps ``weights_only=True`` and allow-lists exactly what those
checkpoints contain (found by saving real runner checkpoints and listing
their globals with ``torch.serialization.get_unsafe_globals_in_checkpoint``):

* ``mmengine.logging.history_buffer.HistoryBuffer`` (message-hub scalars);
* numpy array / scalar reconstruction: ``numpy.core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype``, ``numpy.core.multiarray.scalar`` and
  the numeric dtype classes (``numpy.dtypes.Float64DType`` ...) that
  ``BUILD`` instantiates; the same functions are also registered under the
  numpy 2 module names (``numpy._core.multiarray...``) so checkpoints saved
  with numpy 2 load too;
* ``builtins.getattr``, but *only* in the form HistoryBuffer pickles it,
  ``getattr(HistoryBuffer, 'min'|'max'|'current'|'mean')`` (its
  statistics methods). Any other ``getattr`` call is refused: an
  unrestricted ``getattr`` would let a pickle reach arbitrary code.

A checkpoint that carries any other object is refused with
:class:`UnsafeCheckpointError`, whose message names the file and the
offending global(s). mmengine's loader for local paths (and for http(s)
URLs) is replaced so that every runner ``load_checkpoint`` / ``resume`` /
``init_cfg=dict(type='Pretrained')`` goes through this check.

Everything is installed when :mod:`mmseg_vvt` is imported.
"""
import os.path as osp
import pickle
import re
from typing import Any, Callable, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import checkpoint as mme_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'UnsafeCheckpointError', 'install_checkpoint_allowlist',
    'allowed_global_names', 'safe_torch_load', 'load_from_local',
    'load_from_http'
]

#: The statistics methods HistoryBuffer stores in its pickled state
#: (``HistoryBuffer._set_default_statistics``).
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')

#: numpy scalar types whose dtype objects may appear in a checkpoint.
_NUMPY_SCALAR_TYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64,
                       np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
                       np.float32, np.float64)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds an object outside the ``weights_only`` allow-list.

    Subclasses :class:`pickle.UnpicklingError`, the error torch itself raises,
    so existing ``except`` clauses keep working.
    """


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``getattr`` restricted to what HistoryBuffer's pickled state needs."""
    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed: only '
        f'getattr(HistoryBuffer, one of {list(HISTORY_BUFFER_METHODS)}) '
        'appears in mmengine checkpoints')


def _numpy_multiarray():
    # numpy >= 2 renamed numpy.core to numpy._core (numpy.core still works
    # with a deprecation warning); use whichever holds the functions.
    try:
        from numpy._core import multiarray  # type: ignore
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore
    return multiarray


def _allowlist() -> List[Union[Callable, Tuple[Callable, str]]]:
    """Entries for ``torch.serialization.add_safe_globals``."""
    multiarray = _numpy_multiarray()
    entries: List[Union[Callable, Tuple[Callable, str]]] = [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        (_history_buffer_getattr, 'builtins.getattr'),
    ]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries.append((multiarray._reconstruct, f'{module}._reconstruct'))
        entries.append((multiarray.scalar, f'{module}.scalar'))
    for scalar_type in _NUMPY_SCALAR_TYPES:
        entries.append(type(np.dtype(scalar_type)))
    return entries


def allowed_global_names() -> List[str]:
    """Fully qualified names of the globals this module allow-lists."""
    names = []
    for entry in _allowlist():
        if isinstance(entry, tuple):
            names.append(entry[1])
        else:
            names.append(f'{entry.__module__}.{entry.__qualname__}')
    return sorted(names)


_installed = False


def install_checkpoint_allowlist() -> None:
    """Allow-list the globals of mmengine checkpoints and install the safe
    loaders in mmengine's :class:`CheckpointLoader`. Idempotent."""
    global _installed
    if _installed:
        return
    torch.serialization.add_safe_globals(_allowlist())
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=load_from_http, force=True)
    _installed = True


_GLOBAL_RE = re.compile(r'GLOBAL (\S+)')


def _offending_globals(source: Any, err: BaseException) -> List[str]:
    """Best effort list of the globals that made ``err`` happen."""
    found = set(_GLOBAL_RE.findall(str(err)))
    if isinstance(source, str) and osp.isfile(source):
        try:
            found.update(
                torch.serialization.get_unsafe_globals_in_checkpoint(source))
        except Exception:  # legacy (non-zip) format or unreadable
            pass
    return sorted(found)


def _reason(err: BaseException) -> str:
    """torch's own explanation without its advice to drop weights_only."""
    text = str(err)
    match = re.search(r'WeightsUnpickler error:\s*(.*?)(?:\n\n|$)', text,
                      re.S)
    if match:
        text = match.group(1)
    return ' '.join(text.split()).rstrip('.')


def _refusal(source: str, err: BaseException) -> UnsafeCheckpointError:
    offending = _offending_globals(source, err)
    what = (', '.join(f'`{g}`' for g in offending) +
            (', which is' if len(offending) == 1 else ', which are')
            if offending else 'an object that is')
    return UnsafeCheckpointError(
        f'Refusing to load checkpoint {source!r}: it contains {what} '
        "not in mmseg_vvt's weights_only allow-list of what "
        'mmengine/mmseg checkpoints contain (tensors, containers, numbers, '
        'strings, mmengine HistoryBuffer and numpy arrays). '
        f'torch says: {_reason(err)}. Only load checkpoints from sources you '
        'trust; if you trust this one, allow-list that class with '
        '`torch.serialization.add_safe_globals([...])` before loading, or '
        're-save it holding only tensors (for the authors\' ImageNet '
        'checkpoints: tools/convert_vvt_checkpoint.py IN OUT).')


def safe_torch_load(filename: str,
                    map_location: Optional[Any] = None) -> Any:
    """``torch.load(filename, weights_only=True)`` with the allow-list
    installed and a clear :class:`UnsafeCheckpointError` on refusal."""
    install_checkpoint_allowlist()
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if isinstance(err, UnsafeCheckpointError):
            raise
        raise _refusal(filename, err) from err


def load_from_local(filename: str, map_location: Optional[Any] = None):
    """mmengine loader for local paths (replaces mmengine's own)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


_mmengine_load_from_http = mme_checkpoint.load_from_http


def load_from_http(filename: str, map_location: Optional[Any] = None,
                   **kwargs):
    """mmengine's http(s) loader, with refusals naming the URL."""
    try:
        return _mmengine_load_from_http(
            filename, map_location=map_location, **kwargs)
    except pickle.UnpicklingError as err:
        if isinstance(err, UnsafeCheckpointError):
            raise
        raise _refusal(filename, err) from err
