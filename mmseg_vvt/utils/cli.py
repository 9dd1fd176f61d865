"""Checks of a command line's inputs, shared by the scripts in ``tools/``.

Each turns a user's mistake into one :class:`BadInputError` that names the
argument and what was expected, before any model is built, instead of a
traceback from mmengine or torch halfway through a run. The tools print the
message as ``error: ...`` and exit with a nonzero status.
"""
import os
import os.path as osp
from pathlib import Path
from typing import Optional, Sequence, Union

from mmengine.config import DictAction

__all__ = [
    'BadInputError', 'load_config', 'check_vvt_arch', 'check_out_file',
    'check_out_dir', 'check_device', 'positive_int', 'nonnegative_int',
    'positive_float', 'CfgOptionsAction'
]

PathLike = Union[str, os.PathLike]


class BadInputError(ValueError):
    """An argument (a path, a config, a device, a number) the tool cannot
    use; the message names it and says what was expected."""


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


def load_config(path: PathLike,
                cfg_options: Optional[dict] = None,
                require: Sequence[str] = ('model', )):
    """Read an mmengine config file and merge ``--cfg-options`` into it.

    Refused with a :class:`BadInputError` naming the file: a path that is
    not a file, a file mmengine cannot read (not .py/.json/.yaml, a syntax
    error, an exception raised while it runs, a missing ``_base_``), a
    config without the ``require``d top-level keys, options that cannot be
    merged, and a VVT backbone whose ``arch`` is not a preset or a
    well-formed dict (checked without building the model).
    """
    from mmengine.config import Config

    path = str(path)
    if osp.isdir(path):
        raise BadInputError(f'config {path} is a folder; expected an mmseg '
                            'config file (.py)')
    if not osp.isfile(path):
        raise BadInputError(f'config file {path} does not exist')
    try:
        cfg = Config.fromfile(path)
    except Exception as err:  # a config is code: any exception is its own
        raise BadInputError(f'config {path} cannot be read as an mmengine '
                            f'config: {_describe(err)}') from err
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as err:
            raise BadInputError(
                f'--cfg-options {cfg_options} cannot be merged into config '
                f'{path}: {_describe(err)}') from err
    missing = [key for key in require if key not in cfg]
    if missing:
        # without a model it is no model config; with one, the tool needs
        # more of it (a training or test recipe)
        kind = ('an mmseg model config (e.g. configs/vvt/*.py)' if 'model'
                in missing else f'a config that sets {" and ".join(require)}')
        raise BadInputError(f'config {path} has no {" / ".join(missing)} '
                            f'entry; expected {kind}')
    if 'model' in cfg:
        _check_vvt_arch(cfg.model, path)
    return cfg


def _check_vvt_arch(model_cfg, path: str) -> None:
    # the one backbone this package owns: its arch is checked up front, so
    # `--cfg-options model.backbone.arch=huge` is one line, not a traceback
    backbone = model_cfg.get('backbone') if hasattr(model_cfg, 'get') else None
    if not hasattr(backbone,
                   'get') or backbone.get('type') not in ('VVT', 'mmseg.VVT'):
        return
    check_vvt_arch(
        backbone.get('arch', 'small'), f'config {path}: model.backbone.arch')


def check_vvt_arch(arch, name: str = '--arch'):
    """A VVT ``arch`` (a preset name or a dict of per-stage lists) that the
    backbone accepts, checked without building it."""
    from mmseg_vvt.models.backbones.vvt import VVT
    try:
        VVT._parse_arch(arch)
    except (KeyError, TypeError, ValueError) as err:
        # KeyError's str() quotes its message: take the argument itself
        msg = err.args[0] if err.args else err
        raise BadInputError(f'{name}: {msg}') from err
    return arch


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable_parent(path: Path, flag: str) -> None:
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise BadInputError(f'{flag} {path}: {base} is a file, not a folder')
    if not os.access(base, os.W_OK | os.X_OK):
        raise BadInputError(f'{flag} {path}: no permission to write in '
                            f'{base}')


def check_out_file(path: PathLike,
                   flag: str = '--out',
                   overwrite: bool = False,
                   overwrite_flag: Optional[str] = '--overwrite') -> Path:
    """An output file path that can be written: not a folder, its parent a
    folder (or creatable) with write permission, and not an existing file
    unless ``overwrite`` (``overwrite_flag`` is named in the refusal; None:
    the tool never replaces files)."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f'{flag} {path} is a folder; expected a file '
                            'path')
    if path.exists() and not overwrite:
        hint = (f'; pass {overwrite_flag} to replace it'
                if overwrite_flag else '; give a new path')
        raise BadInputError(f'{flag} {path} exists{hint}')
    _check_writable_parent(path, flag)
    return path


def check_out_dir(path: PathLike, flag: str = '--out-dir') -> Path:
    """An output folder that exists or can be created, with write
    permission; an existing file there is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInputError(f'{flag} {path} is a file; expected a folder')
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise BadInputError(f'{flag} {path}: no permission to write in '
                                'it')
        return path
    _check_writable_parent(path, flag)
    return path


def check_device(device: str, flag: str = '--device') -> str:
    """``'cpu'``, ``'cuda'`` or ``'cuda:N'`` that this torch can use."""
    import torch
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise BadInputError(f"{flag} {device!r} is not a device; expected "
                            f"'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type not in ('cpu', 'cuda'):
        raise BadInputError(f"{flag} {device!r}: expected 'cpu', 'cuda' or "
                            f"'cuda:N' (this tool runs nowhere else)")
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise BadInputError(f'{flag} {device}: torch {torch.__version__} '
                                'sees no CUDA device here; use --device cpu')
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise BadInputError(f'{flag} {device}: this machine has {count} '
                                f'CUDA device(s), cuda:0 to cuda:{count - 1}')
    return device


def _int_at_least(text: str, low: int, what: str) -> int:
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}')
    if value < low:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value}')
    return value


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer >= 1 (sizes, counts, repeats)."""
    return _int_at_least(text, 1, 'an integer >= 1')


def nonnegative_int(text: str) -> int:
    """argparse ``type=``: an integer >= 0 (warm-up counts)."""
    return _int_at_least(text, 0, 'an integer >= 0')


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number > 0 (seconds, budgets)."""
    import argparse
    import math
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, got {text!r}')
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f'expected a number > 0, got {text}')
    return value


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` (``--cfg-options key=value ...``) with a
    malformed item refused by the parser, naming it, where mmengine raises
    ``ValueError: not enough values to unpack``."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values or ():
            if '=' not in item or not item.split('=', 1)[0]:
                parser.error(f'argument {option_string}: expected KEY=VALUE '
                             f'items, got {item!r}')
        try:
            super().__call__(parser, namespace, values, option_string)
        except (ValueError, AssertionError) as err:
            parser.error(f'argument {option_string}: cannot parse '
                         f'{list(values)}: {_describe(err)}')
