"""Tests import the measurement helpers in tools/analysis_tools as the
tools do (``import analysis_tools``). tools/ goes last on ``sys.path`` so
that its scripts (``test.py``, ``train.py``...) never shadow a module of
the same name."""
import os
import os.path as osp
import sys

import pytest

TOOLS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools')
if TOOLS not in sys.path:
    sys.path.append(TOOLS)

# Where the tests that take the ``device`` fixture run (marked ``on_device``):
# ``MMSEG_VVT_TEST_DEVICE=cuda pytest -m on_device`` runs them on a GPU, the
# Triton kernels compiled rather than interpreted (benchmarks/run_gpu.sh)
TEST_DEVICE = os.environ.get('MMSEG_VVT_TEST_DEVICE', 'cpu')
if TEST_DEVICE not in ('cpu', 'cuda'):
    raise ValueError('MMSEG_VVT_TEST_DEVICE must be cpu or cuda, got '
                     f'{TEST_DEVICE!r}')

# Triton kernels run on CPU tensors only in Triton's interpreter, which is
# chosen when a kernel is defined: set before anything imports them
if TEST_DEVICE == 'cpu':
    os.environ.setdefault('TRITON_INTERPRET', '1')

# Tools that train on CPU change glibc's malloc policy for their process
# (mmseg_vvt/engine/allocator.py). Tests measure resident memory in this
# process, so it keeps glibc's defaults; the policy's own tests run
# subprocesses with the variable set to 'keep'.
os.environ['MMSEG_VVT_CPU_ALLOCATOR'] = 'default'


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'on_device: takes the device fixture '
        '(MMSEG_VVT_TEST_DEVICE=cuda runs it on a GPU)')


def pytest_collection_modifyitems(config, items):
    for item in items:
        if 'device' in getattr(item, 'fixturenames', ()):
            item.add_marker(pytest.mark.on_device)


@pytest.fixture
def device():
    """The device of the tests that take it: MMSEG_VVT_TEST_DEVICE."""
    import torch  # after TRITON_INTERPRET is set
    if TEST_DEVICE == 'cuda' and not torch.cuda.is_available():
        pytest.fail('MMSEG_VVT_TEST_DEVICE=cuda, but torch '
                    f'{torch.__version__} sees no CUDA device')
    return torch.device(TEST_DEVICE)


@pytest.fixture(autouse=True)
def _logger_streams_open():
    """mmengine's loggers keep the stream that was ``sys.stdout`` when they
    were made; made under an earlier test's capture, that stream is closed
    by now, and each record would print a 'Logging error' traceback into
    this test's stderr. Point such handlers at the present stdout."""
    import logging

    from mmengine.logging import MMLogger
    for logger in list(MMLogger._instance_dict.values()):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(
                    handler.stream, 'closed', False):
                # (setStream would flush the closed stream first)
                handler.stream = sys.stdout
    yield
