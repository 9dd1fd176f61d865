"""tests/conftest.py's ``device`` fixture: MMSEG_VVT_TEST_DEVICE picks where
the tests that take it run, and a wrong value or a missing GPU is said."""
import importlib.util
import inspect
import os
import subprocess
import sys

import pytest
import torch
from tool_modules import REPO

SELECTED = 'tests/test_models/test_kernels/test_autograd.py'


def _pytest(value, *args):
    env = dict(os.environ, MMSEG_VVT_TEST_DEVICE=value)
    env.pop('TRITON_INTERPRET', None)  # as a fresh shell has it
    return subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:randomly', *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)


def test_a_wrong_device_is_named():
    proc = _pytest('tpu', '--collect-only', SELECTED)
    assert proc.returncode != 0
    assert "MMSEG_VVT_TEST_DEVICE must be cpu or cuda, got 'tpu'" in (
        proc.stdout + proc.stderr)


@pytest.mark.skipif(
    torch.cuda.is_available(),
    reason='needs a machine '
    'without CUDA: there the tests would run on the GPU')
def test_cuda_without_a_gpu_fails_the_device_tests_clearly():
    proc = _pytest('cuda', '-m', 'on_device', '-k', 'mlp_gradients', SELECTED)
    assert proc.returncode != 0
    assert 'MMSEG_VVT_TEST_DEVICE=cuda, but torch' in proc.stdout
    assert 'sees no CUDA device' in proc.stdout


def _collected(*args):
    proc = _pytest('cpu', '--collect-only', *args, SELECTED)
    assert proc.returncode == 0, proc.stdout[-2000:]
    return {line for line in proc.stdout.splitlines() if '::' in line}


def test_on_device_selects_the_tests_that_take_the_fixture():
    selected, every = _collected('-m', 'on_device'), _collected()
    spec = importlib.util.spec_from_file_location('selected',
                                                  os.path.join(REPO, SELECTED))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def takes_device(test_id):
        name = test_id.split('::')[1].split('[')[0]
        return 'device' in inspect.signature(getattr(module, name)).parameters

    assert selected == {i for i in every if takes_device(i)}
    assert selected and selected != every
    assert not any('gradcheck' in i for i in selected)
