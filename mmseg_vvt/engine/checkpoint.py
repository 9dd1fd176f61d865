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
  unrestricted ``getattr`` would let a pickle reach arbitrary code;
* ``argparse.Namespace``: the authors' ImageNet training script saves its
  ``args`` in the published checkpoints. Unpickling a Namespace only sets
  attributes on an empty Namespace (it has no ``__setstate__`` or
  ``__reduce__`` of its own); its values go through the same allow-list.

A checkpoint that carries any other object is refused with
:class:`UnsafeCheckpointError`, whose message names the file and the
offending global(s); an empty, truncated or non-torch file with
:class:`CorruptCheckpointError` naming the file, its size and what is wrong.

Every scheme of mmengine's :class:`CheckpointLoader` (local paths, http(s)
URLs, ``torchvision://``, ``open-mmlab://``, ``mmcls://``, ``pavi://``,
``s3://`` / ``petrel://``) is re-registered with a loader that fetches the
bytes the way mmengine does and unpickles them here. The lookup itself is
guarded: a loader registered by anyone else (a new scheme, or one of these
replaced with ``force=True``) is refused before it runs, since it would
unpickle outside the allow-list; :func:`register_safe_scheme` adds a scheme
whose loader does use :func:`safe_torch_load`. So runner ``load_checkpoint``
/ ``resume``, ``init_cfg=dict(type='Pretrained')`` and mmseg's
``init_model`` all unpickle through this module.

Everything is installed when :mod:`mmseg_vvt` is imported.
"""
import argparse
import io
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import checkpoint as mme_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

# the errors and misfit wording live in a leaf module the model code shares
from ..errors import (CheckpointError, CheckpointMismatchError,
                      CheckpointNotFoundError, CorruptCheckpointError,
                      UnsafeCheckpointError, misfit_summary)

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'CorruptCheckpointError',
    'CheckpointMismatchError', 'CheckpointNotFoundError',
    'install_checkpoint_allowlist', 'allowed_global_names', 'safe_torch_load',
    'load_from_local', 'load_from_http', 'register_safe_scheme',
    'checkpoint_source', 'check_checkpoint_fits', 'load_model_checkpoint'
]

#: The statistics methods HistoryBuffer stores in its pickled state
#: (``HistoryBuffer._set_default_statistics``).
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')

#: numpy scalar types whose dtype objects may appear in a checkpoint.
_NUMPY_SCALAR_TYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64,
                       np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
                       np.float32, np.float64)


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
        argparse.Namespace,
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


# -- unpickling -------------------------------------------------------------
_GLOBAL_RE = re.compile(r'GLOBAL (\S+)')
#: paragraphs of torch's message that are advice, not the reason
_ADVICE_RE = re.compile(
    r'weights_only|Weights only load failed|Check the documentation|'
    r'trusted source|arbitrary code execution', re.I)


def _offending_globals(path: Optional[str], err: BaseException) -> List[str]:
    """Best effort list of the globals that made ``err`` happen."""
    found = set(_GLOBAL_RE.findall(str(err)))
    if path is not None and osp.isfile(path):
        try:
            found.update(
                torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # legacy (non-zip) format or unreadable
            pass
    return sorted(found)


def _reason(err: BaseException) -> str:
    """torch's own explanation without its advice to drop weights_only.

    torch (2.6 .. 2.13) wraps the reason in paragraphs saying that
    re-running with the weights_only safety turned off "will likely
    succeed"; a refusal of this project must never suggest that, so only
    the paragraphs that state what was found are kept.
    """
    text = str(err)
    # torch < 2.10: "... WeightsUnpickler error: <reason>"
    match = re.search(r'WeightsUnpickler error:\s*(.*?)(?:\n\n|$)', text, re.S)
    if match:
        text = match.group(1)
    kept = [
        p for p in re.split(r'\n\s*\n', text)
        if p.strip() and not _ADVICE_RE.search(p)
    ]
    text = ' '.join(' '.join(kept).split()).rstrip('.')
    return text or 'an object outside the allow-list'


def _refusal(source: str,
             err: BaseException,
             path: Optional[str] = None) -> UnsafeCheckpointError:
    offending = _offending_globals(path, err)
    what = (', '.join(f'`{g}`' for g in offending) +
            (', which is' if len(offending) == 1 else ', which are')
            if offending else 'an object that is')
    return UnsafeCheckpointError(
        f'Refusing to load checkpoint {source!r}: it contains {what} '
        "not in mmseg_vvt's weights_only allow-list of what "
        'mmengine/mmseg checkpoints contain (tensors, containers, numbers, '
        'strings, mmengine HistoryBuffer, numpy arrays, argparse.Namespace). '
        f'torch says: {_reason(err)}. Only load checkpoints from sources you '
        'trust; if you trust this one, allow-list that class with '
        '`torch.serialization.add_safe_globals([...])` before loading, or '
        're-save it holding only tensors.')


def _describe_damage(data: Union[str, io.BytesIO],
                     err: BaseException) -> Optional[str]:
    """What is wrong with a file torch could not read, or None when the
    file looks intact (then ``err`` has another cause)."""
    if isinstance(data, io.BytesIO):
        size = len(data.getbuffer())
        head = data.getvalue()[:4]
    else:
        size = os.path.getsize(data)
        with open(data, 'rb') as f:
            head = f.read(4)
    if size == 0:
        return 'is empty (0 bytes): an interrupted save or download?'
    if head.startswith(b'PK'):  # the zip format torch.save writes
        try:
            with zipfile.ZipFile(data) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError):
            return (f'is truncated ({size} bytes): the zip archive '
                    'torch.save writes ends before its central directory; '
                    'an interrupted save or download?')
        if bad is not None:
            return (f'is corrupt ({size} bytes): the CRC of its member '
                    f'{bad!r} does not match')
        return None
    if not head.startswith(b'\x80'):  # a pickle starts with PROTO
        return (f'is not a PyTorch checkpoint ({size} bytes, starting '
                f'with {head!r}; expected a torch.save zip archive)')
    return (f'can not be read ({size} bytes; legacy torch format): '
            f'{type(err).__name__}: {err}')


def safe_torch_load(filename: Union[str, io.BytesIO],
                    map_location: Optional[Any] = None,
                    source: Optional[str] = None) -> Any:
    """``torch.load(filename, weights_only=True)`` with the allow-list
    installed.

    Args:
        filename: a local path or an in-memory buffer.
        map_location: as for :func:`torch.load`.
        source: how to name the checkpoint in errors (default: the path);
            e.g. the URL a downloaded file came from.

    Raises:
        UnsafeCheckpointError: an object outside the allow-list.
        CorruptCheckpointError: an empty, truncated or non-torch file.
    """
    install_checkpoint_allowlist()
    path = filename if isinstance(filename, str) else None
    if source is None:
        source = path if path is not None else 'checkpoint buffer'
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if isinstance(err, CheckpointError):
            raise
        damage = _weights_only_refusal_or_damage(filename, err)
        if damage is None:
            raise _refusal(source, err, path) from None
        raise CorruptCheckpointError(
            f'checkpoint {source!r} {damage}') from None
    except (EOFError, RuntimeError, IndexError, KeyError, ValueError,
            zipfile.BadZipFile) as err:
        damage = _describe_damage(filename, err)
        if damage is None:
            raise
        raise CorruptCheckpointError(
            f'checkpoint {source!r} {damage}') from None


def _weights_only_refusal_or_damage(filename, err) -> Optional[str]:
    """None when ``err`` is the allow-list refusing a global; otherwise the
    damage that made the unpickler fail (garbage where a pickle was
    expected)."""
    text = str(err)
    if 'GLOBAL' in text or 'getattr(' in text or 'not allowed' in text:
        return None
    damage = _describe_damage(filename, err)
    return damage


def _loaded(checkpoint: Any, source: str) -> Any:
    """Remember which file ``checkpoint`` came from (for messages)."""
    global _last_loaded
    _last_loaded = (id(checkpoint), source)
    return checkpoint


_last_loaded: Tuple[int, str] = (0, '')


def checkpoint_source(checkpoint: Any, default: str = 'checkpoint') -> str:
    """The path / URL the checkpoint object was last loaded from."""
    ckpt_id, source = _last_loaded
    return source if ckpt_id == id(checkpoint) else default


# -- the loaders of every CheckpointLoader scheme ----------------------------
_SAFE_LOADER_ATTR = '_mmseg_vvt_weights_only'


def _safe(loader: Callable) -> Callable:
    setattr(loader, _SAFE_LOADER_ATTR, True)
    return loader


@_safe
def load_from_local(filename: str, map_location: Optional[Any] = None):
    """mmengine loader for local paths (replaces mmengine's own)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(f'{filename} can not be found.')
    return _loaded(safe_torch_load(filename, map_location), filename)


def _download(url: str, model_dir: Optional[str], progress: bool) -> str:
    """The local copy of ``url`` in torch hub's cache (downloaded if not
    there yet), as ``torch.hub.load_state_dict_from_url`` keeps it."""
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'checkpoint URL {url!r} names no file')
    cached = osp.join(model_dir, name)
    if not osp.exists(cached):
        print_log(f'Downloading {url} to {cached}', logger='current')
        # writes to a temporary file and moves it into place when complete
        try:
            torch.hub.download_url_to_file(url, cached, progress=progress)
        except OSError as err:  # urllib's URLError / HTTPError included
            raise CheckpointError(
                f'could not download checkpoint {url!r}: {err}') from None
    return cached


@_safe
def load_from_http(filename: str,
                   map_location: Optional[Any] = None,
                   model_dir: Optional[str] = None,
                   progress: bool = os.isatty(0)):
    """http(s) URLs: downloaded like mmengine does (rank 0 first in a
    distributed run), then unpickled through the allow-list.

    mmengine would hand the URL to ``torch.hub.load_state_dict_from_url``,
    whose ``weights_only`` defaults to False: the pickle's code would run.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        cached = _download(filename, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached = _download(filename, model_dir, progress)
    source = f'{filename} (downloaded to {cached})'
    return _loaded(
        safe_torch_load(cached, map_location, source=source), filename)


@_safe
def load_from_torchvision(filename: str, map_location: Optional[Any] = None):
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``)."""
    model_urls = mme_checkpoint.get_torchvision_models()
    if filename.startswith('modelzoo://'):
        print_log(
            'The URL scheme of "modelzoo://" is deprecated, please '
            'use "torchvision://" instead',
            logger='current',
            level=logging.WARNING)
        model_name = filename[len('modelzoo://'):]
    else:
        model_name = filename[len('torchvision://'):]
    return _loaded(
        load_from_http(model_urls[model_name], map_location=map_location),
        filename)


@_safe
def load_from_openmmlab(filename: str, map_location: Optional[Any] = None):
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: mmengine's model table
    gives a URL or a file under ``MMENGINE_HOME``."""
    model_urls = mme_checkpoint.get_external_models()
    prefix_str = 'open-mmlab://'
    if not filename.startswith(prefix_str):
        prefix_str = 'openmmlab://'
    model_name = filename[len(prefix_str):]
    deprecated_urls = mme_checkpoint.get_deprecated_model_names()
    if model_name in deprecated_urls:
        print_log(
            f'{prefix_str}{model_name} is deprecated in favor '
            f'of {prefix_str}{deprecated_urls[model_name]}',
            logger='current',
            level=logging.WARNING)
        model_name = deprecated_urls[model_name]
    model_url = model_urls[model_name]
    if model_url.startswith(('http://', 'https://')):
        checkpoint = load_from_http(model_url, map_location=map_location)
    else:
        checkpoint = load_from_local(
            osp.join(mme_checkpoint._get_mmengine_home(), model_url),
            map_location=map_location)
    return _loaded(checkpoint, filename)


@_safe
def load_from_mmcls(filename: str, map_location: Optional[Any] = None):
    """``mmcls://NAME``: mmengine's mmcls table gives the URL; the backbone
    weights are selected as mmengine does."""
    model_urls = mme_checkpoint.get_mmcls_models()
    model_name = filename[len('mmcls://'):]
    checkpoint = load_from_http(
        model_urls[model_name], map_location=map_location)
    return _loaded(
        mme_checkpoint._process_mmcls_checkpoint(checkpoint), filename)


@_safe
def load_from_pavi(filename: str, map_location: Optional[Any] = None):
    """``pavi://PATH``: downloaded with pavi's modelcloud, as mmengine does,
    then unpickled through the allow-list."""
    from tempfile import TemporaryDirectory
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(
            'Please install pavi to load checkpoint from modelcloud.')
    model = modelcloud.get(filename[len('pavi://'):])
    with TemporaryDirectory() as tmp_dir:
        downloaded_file = osp.join(tmp_dir, model.name)
        model.download(downloaded_file)
        return _loaded(
            safe_torch_load(downloaded_file, map_location, source=filename),
            filename)


@_safe
def load_from_ceph(filename: str,
                   map_location: Optional[Any] = None,
                   backend: str = 'petrel'):
    """``s3://`` / ``petrel://`` (optionally ``NAME:s3://``): the bytes come
    from mmengine's file backend, as in mmengine."""
    file_backend = get_file_backend(
        filename, backend_args={'backend': backend})
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return _loaded(
            safe_torch_load(buffer, map_location, source=filename), filename)


#: mmengine 0.10.7's schemes and the loader that replaces each
_SCHEMES: Dict[Tuple[str, ...], Callable] = {
    ('', ): load_from_local,
    ('http://', 'https://'): load_from_http,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    ('mmcls://', ): load_from_mmcls,
    ('pavi://', ): load_from_pavi,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
}


def register_safe_scheme(prefixes: Union[str, Tuple[str, ...], List[str]],
                         loader: Callable,
                         force: bool = False) -> Callable:
    """Register a :class:`CheckpointLoader` scheme whose ``loader`` unpickles
    with :func:`safe_torch_load` (the only kind the guarded lookup runs)."""
    CheckpointLoader.register_scheme(
        prefixes=prefixes, loader=_safe(loader), force=force)
    return loader


_mmengine_get_checkpoint_loader = \
    CheckpointLoader._get_checkpoint_loader.__func__


def _guarded_get_checkpoint_loader(cls, path: str) -> Callable:
    """mmengine's scheme lookup, refusing loaders that bypass the list."""
    loader = _mmengine_get_checkpoint_loader(cls, path)
    if loader is not None and not getattr(loader, _SAFE_LOADER_ATTR, False):
        scheme = next((p for p in cls._schemes
                       if cls._schemes[p] is loader and re.match(p, path)),
                      '?')
        name = getattr(loader, '__qualname__', repr(loader))
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {path!r}: its scheme {scheme!r} '
            f'is served by `{getattr(loader, "__module__", "?")}.{name}`, a '
            "loader that does not unpickle through mmseg_vvt's weights_only "
            'allow-list (it could run code in the file). Download the file '
            'and pass its local path, or register a loader that uses '
            'mmseg_vvt.engine.safe_torch_load with '
            'mmseg_vvt.engine.register_safe_scheme.')
    return loader


_installed = False


def install_checkpoint_allowlist() -> None:
    """Allow-list the globals of mmengine checkpoints, replace the loader of
    every mmengine :class:`CheckpointLoader` scheme and guard the lookup.
    Idempotent."""
    global _installed
    if _installed:
        return
    torch.serialization.add_safe_globals(_allowlist())
    for prefixes, loader in _SCHEMES.items():
        CheckpointLoader.register_scheme(
            prefixes=prefixes, loader=loader, force=True)
    CheckpointLoader._get_checkpoint_loader = classmethod(
        _guarded_get_checkpoint_loader)
    _installed = True


# -- does the checkpoint fit the model? ---------------------------------------
def _bare_model(model: torch.nn.Module) -> torch.nn.Module:
    # mmengine loads into the wrapped module (DDP, TTA) the same way
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


# the keys of mmseg decode heads' last 1x1 conv, whose shape follows the
# number of classes
CLASSIFIER_KEYS = ('conv_seg.weight', 'conv_seg.bias')
# the key revision mmengine's loader applies by default (DDP's prefix)
STRIP_DDP_PREFIX = ((r'^module\.', ''), )


def check_checkpoint_fits(model: torch.nn.Module,
                          checkpoint: Any,
                          source: Optional[str] = None,
                          allow_partial: bool = False,
                          revise_keys=STRIP_DDP_PREFIX,
                          resuming: bool = False) -> bool:
    """Compare a checkpoint's weights with ``model``'s before loading.

    Keys are compared after ``revise_keys`` (as mmengine's loader does);
    ``num_batches_tracked`` buffers a checkpoint lacks are not counted
    (mmengine does not report them either). ``resuming``: the runner goes
    on to load the checkpoint's optimizer state, which fits only the model
    it was saved with, so a misfit is refused even with ``allow_partial``
    (the optimizer's first step would fail on the first shape that
    differs).

    Returns:
        True when every key and shape matches.

    Raises:
        CheckpointMismatchError: keys missing / unexpected or shapes that
            differ, naming the first few of each and the counts, unless
            ``allow_partial`` (then the same summary is logged as a
            warning and False is returned).
    """
    if source is None:
        source = checkpoint_source(checkpoint)
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'checkpoint {source!r} holds a {type(checkpoint).__name__}, '
            'not a dict of weights')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        raise CheckpointMismatchError(
            f'checkpoint {source!r}: its state_dict is a '
            f'{type(state_dict).__name__}, not a dict of weights')
    keys = {}
    for key, value in state_dict.items():
        for pattern, repl in revise_keys:
            key = re.sub(pattern, repl, key)
        keys[key] = value
    own = _bare_model(model).state_dict()
    # the keys a checkpoint must have (the total the message gives, so that
    # an empty checkpoint reads 'N of N keys missing')
    required = [k for k in own if not k.endswith('num_batches_tracked')]
    missing = [k for k in required if k not in keys]
    unexpected = [k for k in keys if k not in own]
    mismatched = [
        f'{k} {tuple(keys[k].shape)} vs {tuple(own[k].shape)}' for k in own
        if k in keys and hasattr(keys[k], 'shape')
        and tuple(keys[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return True
    summary = (f'checkpoint {source!r} does not fit the model: ' +
               misfit_summary(missing, unexpected, len(required), mismatched))
    if resuming:
        raise CheckpointMismatchError(
            f'{summary}. Resuming continues a run with its optimizer state, '
            'which fits only the model the checkpoint was saved with, so a '
            'partial load cannot resume. To start a run of this config from '
            'its weights (fine-tuning), give it as load_from without '
            '--resume, with allow_partial_checkpoint=True.', summary)
    if not allow_partial:
        # every key there, only the classifiers' shapes differ
        classes_differ = not (missing or unexpected) and all(
            k.split(' ')[0].endswith(CLASSIFIER_KEYS) for k in mismatched)
        question = ('Only the heads\' classifiers (conv_seg) differ: a '
                    'model of another number of classes? To fine-tune from '
                    'it' if classes_differ else
                    'Is it a checkpoint of this config? To load the matching '
                    'weights anyway')
        raise CheckpointMismatchError(
            f'{summary}. {question}, ask for a partial load: '
            'allow_partial_checkpoint=True in the config (with mmseg\'s own '
            'tools: --cfg-options allow_partial_checkpoint=True), '
            "--allow-partial-checkpoint with this project's tools, "
            'allow_partial=True in its Python API.', summary)
    print_log(
        f'Partial load asked for (allow_partial_checkpoint): {summary}. '
        'Missing and mis-shaped weights keep their initial values, '
        'unexpected ones are ignored.',
        logger='current',
        level=logging.WARNING)
    return False


def load_model_checkpoint(model: torch.nn.Module,
                          filename: str,
                          map_location: Any = 'cpu',
                          allow_partial: bool = False,
                          revise_keys=STRIP_DDP_PREFIX) -> dict:
    """Load ``filename`` (any :class:`CheckpointLoader` scheme) into
    ``model`` through the allow-list, refusing a checkpoint that does not fit
    unless ``allow_partial``: what ``mmengine.runner.load_checkpoint`` does,
    with the check of :func:`check_checkpoint_fits` first.

    Args:
        model (nn.Module): The model (or a wrapper of it) to load into.
        filename (str): A path, URL or ``open-mmlab://``-style name.
        map_location: As for :func:`torch.load`. Default: ``'cpu'``.
        allow_partial (bool): Load what fits and log the rest instead of
            raising :class:`CheckpointMismatchError`. Default: False.
        revise_keys (sequence[tuple[str, str]]): ``(pattern, replacement)``
            regexes applied to the checkpoint's keys first, as mmengine's
            ``load_checkpoint`` takes them. Default: strip DDP's
            ``module.`` prefix.

    Returns:
        The loaded checkpoint (its ``meta`` has e.g. ``dataset_meta``).
    """
    checkpoint = mme_checkpoint._load_checkpoint(
        filename, map_location=map_location, logger='current')
    check_checkpoint_fits(
        model,
        checkpoint,
        source=filename,
        allow_partial=allow_partial,
        revise_keys=revise_keys)
    # silent: the check above has named any misfit, and mmengine's own
    # report of a partial load would say it again
    return mme_checkpoint._load_checkpoint_to_model(
        _bare_model(model),
        checkpoint,
        strict=False,
        logger='silent',
        revise_keys=list(revise_keys))
