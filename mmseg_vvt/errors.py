"""The errors of checkpoint loading, and the wording of a misfit, shared by
the runtime (:mod:`mmseg_vvt.engine.checkpoint`) and the model code (VVT's
pretrained loading), which import them from here: this module imports
nothing of the package, so neither side imports the other."""
import pickle
from typing import List, Optional

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'CorruptCheckpointError',
    'CheckpointNotFoundError', 'CheckpointMismatchError', 'first_keys',
    'misfit_summary'
]

#: how many keys a mismatch message names per kind
_FIRST = 3


class CheckpointError(ValueError):
    """A checkpoint that can not be used; the message is one line naming
    the file and what is wrong (tools print it without a traceback)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holds an object outside the ``weights_only`` allow-list,
    or comes through a loader that would unpickle it outside the list.

    Also a :class:`pickle.UnpicklingError`, the error torch itself raises,
    so existing ``except`` clauses keep working.
    """


class CorruptCheckpointError(CheckpointError):
    """An empty, truncated or non-PyTorch checkpoint file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A local checkpoint file that does not exist. Also a
    :class:`FileNotFoundError`, what mmengine's own loader raises."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose weights do not fit the model (missing, unexpected
    or mis-shaped keys) where no partial load was asked for.

    Args:
        message (str): The whole message, with what to do about it.
        summary (str, optional): What does not fit, without the advice
            (for a report after a partial load that was asked for).
            Default: ``message``.
    """

    def __init__(self, message: str, summary: Optional[str] = None):
        super().__init__(message)
        self.summary = message if summary is None else summary


def first_keys(keys: List[str]) -> str:
    """The first few of ``keys``, for a message."""
    shown = ', '.join(keys[:_FIRST])
    return shown + (', ...' if len(keys) > _FIRST else '')


def misfit_summary(missing: List[str],
                   unexpected: List[str],
                   total: int,
                   mismatched: List[str] = (),
                   whose: str = "the model's") -> str:
    """What does not fit, for a message: the counts of missing (of
    ``total``), unexpected and mis-shaped keys, and the first few of each."""
    parts = []
    if missing:
        parts.append(f'{len(missing)} of {whose} {total} keys missing '
                     f'({first_keys(missing)})')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected keys '
                     f'({first_keys(unexpected)})')
    if mismatched:
        parts.append(f'{len(mismatched)} shapes differ (checkpoint vs '
                     f'model: {first_keys(mismatched)})')
    return '; '.join(parts)
