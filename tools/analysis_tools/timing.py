"""The one timing helper of the measurement tools.

On CPU it is the wall clock (``time.perf_counter``) around one call:
``torch.utils.benchmark.Timer`` would run the statement for warm-up before
timing it, which the benchmark cannot have (its first pass is the memory
measurement; each repeat is one interleaved sample). On CUDA the host
returns before the kernels finish, so a call is timed with CUDA events
recorded on the current stream around it, then the stream is synchronised:
the time is the GPU's, not the launch's.
"""
import statistics
import time
from typing import Callable, Dict, List, Union

import torch

__all__ = ['device_type', 'time_call', 'time_calls']


def device_type(device: Union[str, torch.device]) -> str:
    """``'cpu'`` or ``'cuda'`` for a device spec; anything else is an
    error (the helpers below know how to time these two)."""
    kind = torch.device(device).type
    if kind not in ('cpu', 'cuda'):
        raise ValueError(f'device must be cpu or cuda, got {device!r}')
    if kind == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'device {device!r} asked for, but torch sees no '
                           f'CUDA GPU (torch {torch.__version__})')
    return kind


def time_call(fn: Callable[[], object],
              device: Union[str, torch.device] = 'cpu') -> float:
    """Seconds one ``fn()`` takes on ``device``."""
    if device_type(device) == 'cuda':
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_calls(fn: Callable[[], object],
               device: Union[str, torch.device] = 'cpu',
               repeats: int = 10,
               warmup: int = 3) -> Dict[str, Union[float, List[float]]]:
    """``warmup`` untimed calls, then ``repeats`` timed ones:
    ``dict(median_s, samples_s)``."""
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    if warmup < 0:
        raise ValueError(f'warmup must be >= 0, got {warmup}')
    for _ in range(warmup):
        fn()
    samples = [time_call(fn, device) for _ in range(repeats)]
    return dict(median_s=statistics.median(samples), samples_s=samples)
