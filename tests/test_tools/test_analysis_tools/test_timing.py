"""The one timing helper: wall clock on CPU, CUDA events on CUDA."""
import statistics
import time

import pytest
import torch
from analysis_tools import timing
from analysis_tools.timing import device_type, time_call, time_calls


def test_cpu_time_covers_the_call():
    # a lower bound only: sleeping 20 ms takes at least 20 ms
    assert time_call(lambda: time.sleep(0.02), 'cpu') >= 0.02


def test_time_calls_runs_warmup_then_repeats():
    calls = []
    r = time_calls(lambda: calls.append(1), 'cpu', repeats=4, warmup=2)
    assert len(calls) == 6 and len(r['samples_s']) == 4
    assert r['median_s'] == statistics.median(r['samples_s'])
    with pytest.raises(ValueError, match='repeats'):
        time_calls(lambda: None, repeats=0)


def test_unknown_or_missing_device_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="cpu or cuda, got 'meta'"):
        device_type('meta')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(RuntimeError, match='no CUDA GPU'):
        time_call(lambda: None, 'cuda')


def test_cuda_branch_times_between_events(monkeypatch):
    """The CUDA branch's bookkeeping, with events stood in for (no GPU
    here): start recorded before the call, end after, waited on, and the
    events' milliseconds returned as seconds."""
    log = []

    class FakeEvent:

        def __init__(self, enable_timing):
            assert enable_timing
            self.name = 'start' if not any(e.startswith('new')
                                           for e in log) else 'end'
            log.append(f'new {self.name}')

        def record(self):
            log.append(f'record {self.name}')

        def synchronize(self):
            log.append(f'sync {self.name}')

        def elapsed_time(self, other):
            return 250.0

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(timing.torch.cuda, 'Event', FakeEvent)
    seconds = time_call(lambda: log.append('call'), 'cuda')
    assert seconds == 0.25
    assert log == [
        'new start', 'new end', 'record start', 'call', 'record end',
        'sync end'
    ]
