"""Keep glibc from handing large freed blocks back to the kernel (CPU runs).

glibc's ``malloc`` serves a block above its mmap threshold (at most 32 MiB
by default) with fresh pages from the kernel and unmaps them on ``free``, so
every such tensor pays its page faults again. VVT's first-stage hidden maps
(8x-wide MLP) are 50 MB at 512x512 per image, made several times per block
and step: on CPU those faults cost its training step a large share of its
time (measured in docs/benchmark.md). Serving them from the heap and keeping
freed memory for reuse is what jemalloc or tcmalloc do, and what PyTorch's
CPU launcher (``torch.backends.xeon.run_cpu``) arranges by preloading them.

:func:`keep_freed_cpu_memory` sets that policy in the running process through
``mallopt`` (it applies to later allocations, and processes forked later
inherit it, e.g. dataloader workers: each keeps its own peak). The cost: the
process keeps its peak memory instead of returning freed memory to the
system, as a GPU's caching allocator does.
"""
import ctypes
import os
from typing import Mapping, Optional, Tuple

__all__ = ['ENV_VAR', 'allocator_choice', 'keep_freed_cpu_memory']

#: ``default`` leaves the allocator as it is; ``keep`` (or unset) applies it
ENV_VAR = 'MMSEG_VVT_CPU_ALLOCATOR'
CHOICES = ('keep', 'default')
# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks below this come from the heap (mallopt takes an int)
MMAP_THRESHOLD = 1 << 30
#: the most older glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit)
OLD_GLIBC_MMAP_THRESHOLD = 32 << 20
#: free memory at the heap's top kept up to this
TRIM_THRESHOLD = (1 << 31) - 1
# the user chose the allocator already: leave it
_GLIBC_VARS = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_',
               'MALLOC_TOP_PAD_', 'MALLOC_MMAP_MAX_')
_PRELOADED = ('jemalloc', 'tcmalloc', 'mimalloc')

_applied: Optional[Tuple[bool, str]] = None


def _glibc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL(None)  # TypeError on Windows
        libc.gnu_get_libc_version  # absent in musl and others
        libc.mallopt
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def allocator_choice(environ: Optional[Mapping[str, str]] = None) -> str:
    """``$MMSEG_VVT_CPU_ALLOCATOR``: ``'keep'`` (also when unset) or
    ``'default'``; another value raises a ValueError naming it."""
    env = os.environ if environ is None else environ
    choice = env.get(ENV_VAR) or 'keep'
    if choice not in CHOICES:
        raise ValueError(f'{ENV_VAR} must be one of {CHOICES}, got '
                         f'{choice!r}')
    return choice


def keep_freed_cpu_memory(
        environ: Optional[Mapping[str, str]] = None) -> Tuple[bool, str]:
    """Ask glibc to serve blocks under 1 GiB from the heap and keep freed
    memory for reuse, unless the environment already chose an allocator
    (``MALLOC_*_`` variables, ``glibc.malloc`` tunables, jemalloc / tcmalloc
    / mimalloc in ``LD_PRELOAD``) or ``$MMSEG_VVT_CPU_ALLOCATOR`` is
    ``default``. Once per process.

    Returns:
        (whether the policy is now in effect, a sentence for the log).

    Raises:
        ValueError: ``$MMSEG_VVT_CPU_ALLOCATOR`` is not ``keep`` or
            ``default``.
    """
    global _applied
    env = os.environ if environ is None else environ
    choice = allocator_choice(env)
    if _applied is not None and _applied[0]:
        return _applied
    if choice == 'default':
        return False, f'{ENV_VAR}=default: glibc malloc left as it is'
    chosen = [v for v in _GLIBC_VARS if v in env]
    if 'glibc.malloc' in env.get('GLIBC_TUNABLES', ''):
        chosen.append('GLIBC_TUNABLES')
    preloaded = [a for a in _PRELOADED if a in env.get('LD_PRELOAD', '')]
    if chosen or preloaded:
        return False, ('the allocator is left as the environment sets it ('
                       f'{", ".join(chosen + preloaded)})')
    libc = _glibc()
    if libc is None:
        return False, 'not glibc: the allocator is left as it is'
    # older glibc refuses thresholds above HEAP_MAX_SIZE / 2 (32 MiB)
    for threshold, size in ((MMAP_THRESHOLD, '1 GiB'),
                            (OLD_GLIBC_MMAP_THRESHOLD, '32 MiB')):
        if libc.mallopt(_M_MMAP_THRESHOLD, threshold) == 1:
            break
    else:
        return False, 'glibc refused the mallopt settings: left as it was'
    if libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return False, ('glibc took the mmap threshold but refused the trim '
                       'threshold: freed memory may still go back')
    _applied = (True, 'glibc malloc keeps freed memory for reuse (blocks '
                f'under {size} from the heap, not fresh pages each time; '
                f'{ENV_VAR}=default turns this off)')
    return _applied
