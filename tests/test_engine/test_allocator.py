"""mmseg_vvt.engine.allocator: CPU training keeps large freed blocks in
glibc's heap instead of unmapping them, unless the user chose otherwise."""
import os
import subprocess
import sys

import pytest

from mmseg_vvt.engine.allocator import (ENV_VAR, allocator_choice,
                                        keep_freed_cpu_memory)

REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# a 64 MiB tensor: above glibc's default mmap threshold (at most 32 MiB);
# mapped_bytes: what glibc holds in blocks mapped one by one (mallinfo2's
# hblkhd, glibc 2.33+), the blocks that go back to the kernel on free
PROBE = '''
import ctypes, json, torch
from mmseg_vvt.engine.allocator import keep_freed_cpu_memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
        'fsmblks', 'uordblks', 'fordblks', 'keepcost')]

def mapped_bytes():
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Mallinfo2
    return libc.mallinfo2().hblkhd

applied, why = keep_freed_cpu_memory()
before = mapped_bytes()
t = torch.empty(64 << 20, dtype=torch.uint8)
print(json.dumps(dict(applied=applied, why=why,
                      mapped=mapped_bytes() - before)))
'''


def _probe(**env):
    import json
    full = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_')}
    full.update(env, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, '-c', PROBE],
                          env=full,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_keep_serves_large_tensors_from_the_heap():
    kept = _probe(**{ENV_VAR: 'keep'})
    assert kept['applied'] is True
    assert 'keeps freed memory for reuse' in kept['why']
    assert kept['mapped'] == 0  # not a block of its own, unmapped on free
    default = _probe(**{ENV_VAR: 'default'})
    assert default['applied'] is False
    assert default['mapped'] >= 64 << 20  # glibc's default: mapped alone


def test_an_allocator_the_user_chose_is_left_alone():
    chosen = _probe(**{ENV_VAR: 'keep', 'MALLOC_MMAP_THRESHOLD_': '65536'})
    assert chosen['applied'] is False
    assert chosen['why'] == ('the allocator is left as the environment sets '
                             'it (MALLOC_MMAP_THRESHOLD_)')
    assert chosen['mapped'] >= 64 << 20


@pytest.mark.parametrize('env, named', [
    ({
        'LD_PRELOAD': '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'
    }, 'jemalloc'),
    ({
        'LD_PRELOAD': 'libtcmalloc_minimal.so.4'
    }, 'tcmalloc'),
    ({
        'GLIBC_TUNABLES': 'glibc.malloc.mmap_threshold=65536'
    }, 'GLIBC_TUNABLES'),
    ({
        'MALLOC_TRIM_THRESHOLD_': '0'
    }, 'MALLOC_TRIM_THRESHOLD_'),
])
def test_other_allocator_settings_are_named(env, named):
    # decided from the environment before mallopt is called
    applied, why = keep_freed_cpu_memory(dict(env, **{ENV_VAR: 'keep'}))
    assert not applied and why.endswith(f'({named})')


def test_default_opts_out_and_a_bad_value_is_named():
    assert allocator_choice({}) == 'keep' == allocator_choice({ENV_VAR: ''})
    assert allocator_choice({ENV_VAR: 'default'}) == 'default'
    assert keep_freed_cpu_memory({
        ENV_VAR: 'default'
    }) == (False, f'{ENV_VAR}=default: glibc malloc left as it is')
    with pytest.raises(ValueError) as info:
        keep_freed_cpu_memory({ENV_VAR: 'jemalloc'})
    assert str(info.value) == (f"{ENV_VAR} must be one of ('keep', "
                               "'default'), got 'jemalloc'")


class _FakeLibc:
    """mallopt that accepts mmap thresholds up to ``limit`` and records
    calls."""

    def __init__(self, limit):
        self.limit, self.calls = limit, []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return int(param != -3 or value <= self.limit)  # -3: M_MMAP_THRESHOLD


def test_older_glibc_gets_its_largest_threshold(monkeypatch):
    import mmseg_vvt.engine.allocator as allocator
    monkeypatch.setattr(allocator, '_applied', None)
    older = _FakeLibc(limit=32 << 20)
    monkeypatch.setattr(allocator, '_glibc', lambda: older)
    applied, why = keep_freed_cpu_memory({ENV_VAR: 'keep'})
    assert applied and 'blocks under 32 MiB from the heap' in why
    assert older.calls == [(-3, 1 << 30), (-3, 32 << 20), (-1, (1 << 31) - 1)]
    monkeypatch.setattr(allocator, '_applied', None)
    monkeypatch.setattr(allocator, '_glibc', lambda: _FakeLibc(limit=0))
    assert keep_freed_cpu_memory({
        ENV_VAR: 'keep'
    }) == (False, 'glibc refused the mallopt settings: left as it was')
    monkeypatch.setattr(allocator, '_glibc', lambda: None)
    assert keep_freed_cpu_memory(
        {ENV_VAR:
         'keep'}) == (False, 'not glibc: the allocator is left as it is')


def test_no_c_library_handle_is_not_glibc(monkeypatch):
    # ctypes.CDLL(None) raises TypeError on Windows
    import ctypes

    import mmseg_vvt.engine.allocator as allocator

    def no_handle(name):
        raise TypeError('expected str, bytes or os.PathLike object')

    monkeypatch.setattr(ctypes, 'CDLL', no_handle)
    assert allocator._glibc() is None


def test_a_refused_trim_threshold_is_not_reported_as_applied(monkeypatch):
    # kills allocator.py dropping the check of the M_TRIM_THRESHOLD mallopt
    import mmseg_vvt.engine.allocator as allocator

    class NoTrim:

        def mallopt(self, param, value):
            return int(param != -1)  # -1: M_TRIM_THRESHOLD

    monkeypatch.setattr(allocator, '_applied', None)
    monkeypatch.setattr(allocator, '_glibc', lambda: NoTrim())
    applied, why = allocator.keep_freed_cpu_memory({allocator.ENV_VAR: 'keep'})
    assert not applied and 'refused the trim threshold' in why
    assert allocator._applied is None
