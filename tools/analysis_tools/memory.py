"""Peak memory of one call, from a fresh mark: resident memory on CPU,
allocated GPU memory on CUDA.

CPU (Linux): ``ru_maxrss`` cannot be reset and Linux carries a parent's
value into its children, so it measures "the biggest the process ever was",
not the peak of one forward pass. Writing ``5`` to ``/proc/self/clear_refs``
resets the kernel's high-water mark ``VmHWM`` to the current ``VmRSS``;
reading ``VmHWM`` after the work gives the peak since that mark.

CUDA: ``torch.cuda.reset_peak_memory_stats`` then
``torch.cuda.max_memory_allocated`` (what torch's caching allocator handed
out, the figure that decides whether a batch fits).
"""
import re
from typing import Callable, Dict, Tuple, TypeVar

__all__ = ['read_rss', 'reset_peak_rss', 'measure_peak_rss', 'measure_peak']

T = TypeVar('T')
_STATUS = '/proc/self/status'
_CLEAR_REFS = '/proc/self/clear_refs'


def read_rss() -> Dict[str, int]:
    """``dict(rss=bytes, hwm=bytes)`` from ``/proc/self/status`` (current
    resident set and its high-water mark since the last reset)."""
    try:
        with open(_STATUS) as f:
            status = f.read()
    except OSError as e:
        raise RuntimeError(f'cannot read {_STATUS} ({e}): peak memory '
                           f'measurement needs Linux procfs') from e
    values = {}
    for key, name in (('VmRSS', 'rss'), ('VmHWM', 'hwm')):
        m = re.search(rf'^{key}:\s+(\d+)\s+kB', status, re.MULTILINE)
        if m is None:
            raise RuntimeError(f'{_STATUS} has no {key} line')
        values[name] = int(m.group(1)) * 1024
    return values


def reset_peak_rss() -> int:
    """Reset ``VmHWM`` to the current RSS; return that RSS in bytes."""
    try:
        with open(_CLEAR_REFS, 'w') as f:
            f.write('5')
    except OSError as e:
        raise RuntimeError(
            f'cannot write {_CLEAR_REFS} ({e}): resetting the peak-RSS mark '
            f'needs Linux >= 4.0 procfs') from e
    now = read_rss()
    return now['rss']


def measure_peak_rss(fn: Callable[[], T]) -> Tuple[T, Dict[str, int]]:
    """Run ``fn()`` and return ``(its result, dict(baseline=bytes,
    peak=bytes, extra=bytes))``: RSS at the fresh mark just before, the
    high-water mark during the call, and their difference."""
    baseline = reset_peak_rss()
    result = fn()
    # the kernel updates its high-water mark lazily; the call's peak is at
    # least what was resident when it started
    peak = max(read_rss()['hwm'], baseline)
    return result, dict(baseline=baseline, peak=peak, extra=peak - baseline)


def measure_peak(fn: Callable[[], T],
                 device: str = 'cpu') -> Tuple[T, Dict[str, int]]:
    """:func:`measure_peak_rss` on CPU; on CUDA the same dict from the
    allocator's counters (baseline: allocated just before; peak: the most
    allocated during the call, the device synchronised after it)."""
    import torch

    from .timing import device_type
    if device_type(device) == 'cpu':
        return measure_peak_rss(fn)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return result, dict(baseline=baseline, peak=peak, extra=peak - baseline)
