"""Tests import the measurement helpers in tools/analysis_tools as the
tools do (``import analysis_tools``). tools/ goes last on ``sys.path`` so
that its scripts (``test.py``, ``train.py``...) never shadow a module of
the same name."""
import os
import os.path as osp
import sys

TOOLS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools')
if TOOLS not in sys.path:
    sys.path.append(TOOLS)

# Triton kernels run on CPU tensors only in Triton's interpreter, which is
# chosen when a kernel is defined: set before anything imports them
os.environ.setdefault('TRITON_INTERPRET', '1')
