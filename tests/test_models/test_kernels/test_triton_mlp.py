"""The MLP's depthwise conv + GELU in one Triton kernel, run in Triton's
interpreter on CPU (tests/conftest.py sets ``TRITON_INTERPRET=1``): the
readable ``gelu(conv2d(...))`` on whole maps and on bands of rows. The
tests that take ``device`` also run compiled on a GPU
(``MMSEG_VVT_TEST_DEVICE=cuda pytest -m on_device``)."""
import pytest
import torch
import torch.nn.functional as F
from triton_compile import run_compile_script

from mmseg_vvt.models.kernels import triton_ops
from mmseg_vvt.models.kernels.triton_mlp import (BLOCK_C, BLOCK_W, dwconv_gelu,
                                                 dwconv_gelu_backward)


def _readable(t, weight, bias):
    """``gelu(depthwise_conv3x3(t))`` of NHWC ``t``, NHWC out."""
    c = F.conv2d(
        t.permute(0, 3, 1, 2), weight, bias, padding=1, groups=t.shape[-1])
    return F.gelu(c).permute(0, 2, 3, 1)


def _map(B, H, W, C, dtype=torch.float64, device='cpu'):
    g = torch.Generator().manual_seed(0)
    t = torch.randn(B, H, W, C, generator=g, dtype=dtype)
    w = torch.randn(C, 1, 3, 3, generator=g, dtype=dtype) * 0.5
    b = torch.randn(C, generator=g, dtype=dtype)
    return t.to(device), w.to(device), b.to(device)


# widths and channels off the kernel's blocks, and over one block
@pytest.mark.parametrize('W,C', [(5, 3), (BLOCK_W + 3, BLOCK_C + 5)])
def test_whole_map_equals_the_readable_formulation(W, C):
    t, w, b = _map(2, 6, W, C)
    got = dwconv_gelu(t, w, b, 0, 6)
    assert got.shape == (2, 6, W, C) and got.dtype == t.dtype
    torch.testing.assert_close(got, _readable(t, w, b), atol=1e-12, rtol=0)


# (r0, r1) of a 9-row map: the top band, a middle one, the bottom one, a
# single row; the band's t holds one context row each side the map has
@pytest.mark.parametrize('r0,r1', [(0, 4), (3, 6), (6, 9), (8, 9), (4, 5)])
def test_bands_of_rows_equal_the_whole_maps_rows(r0, r1):
    t, w, b = _map(2, 9, 7, 5)
    want = _readable(t, w, b)[:, r0:r1]
    lo, hi = max(r0 - 1, 0), min(r1 + 1, 9)
    got = dwconv_gelu(t[:, lo:hi], w, b, r0 - lo, r1 - r0)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize('W,C', [(5, 3), (BLOCK_W + 3, BLOCK_C + 5)])
def test_backward_turns_the_gradient_at_gelu_into_the_one_at_the_conv(W, C):
    # in place, as torch's gelu_backward of the conv's output gives it
    t, w, b = _map(2, 6, W, C)
    g = torch.randn(2, 6, W, C, dtype=torch.float64)
    c = F.conv2d(
        t.permute(0, 3, 1, 2), w, b, padding=1, groups=C).permute(0, 2, 3, 1)
    want = torch.ops.aten.gelu_backward(g, c)
    got = g.clone()
    dwconv_gelu_backward(t, w, b, got)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_backward_refuses_a_gradient_of_another_shape():
    t, w, b = _map(1, 4, 5, 3)
    with pytest.raises(
            ValueError,
            match=r'grad must be contiguous and '
            r'shaped like t \(1, 4, 5, 3\), got \(1, 4, 5\)'):
        dwconv_gelu_backward(t, w, b, torch.zeros(1, 4, 5))


def test_rows_outside_the_map_are_refused():
    t, w, b = _map(1, 4, 5, 3)
    with pytest.raises(
            ValueError, match=r'rows \[2, 5\) are not all in the '
            '4 rows of t'):
        dwconv_gelu(t, w, b, 2, 3)


def test_cpu_tensors_outside_the_interpreter_are_refused(monkeypatch):
    from triton import knobs
    t, w, b = _map(1, 4, 5, 3)
    monkeypatch.setattr(knobs.runtime, 'interpret', False)
    with pytest.raises(
            RuntimeError,
            match='the Triton depthwise conv '
            r'\+ GELU got CPU tensors.*TRITON_INTERPRET=1'):
        triton_ops.check_device('the Triton depthwise conv + GELU', t)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_half_and_single_precision_round_once(dtype, device):
    # taps accumulated in float32, written in the tokens' dtype: the
    # readable formulation in float64, rounded to dtype, to one rounding
    t, w, b = _map(1, 5, 9, 70, dtype=dtype, device=device)
    got = dwconv_gelu(t, w, b, 0, 5)
    assert got.dtype == dtype
    want = _readable(t.double(), w.double(), b.double())
    tol = dict(
        atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(
            atol=1e-2, rtol=8e-3)
    torch.testing.assert_close(got.double(), want, **tol)


def test_the_ops_pass_opcheck():
    # schema (the backward writes its last argument), fake (torch.compile's
    # shapes) and the kernel agree
    t, w, b = _map(1, 5, 4, 3)
    torch.library.opcheck(torch.ops.mmseg_vvt.dwconv3x3_gelu.default,
                          (t[:, 1:], w, b, 1, 3))
    torch.library.opcheck(torch.ops.mmseg_vvt.dwconv3x3_gelu_backward.default,
                          (t, w, b, torch.randn_like(t)))


# The kernel compiled for a CUDA GPU (tests/triton_compile.py) as the
# module launches it, forward and backward
COMPILE_SCRIPT = r"""
import json, sys
import triton.language as tl
from triton_compile import sm90_resources
from mmseg_vvt.models.kernels import triton_mlp as M
out = []
for dtype, backward in json.loads(sys.argv[1]):
    kernel = M._dwconv_gelu_kernel
    const = dict(CT=tl.float32, BACKWARD=backward, BLOCK_W=M.BLOCK_W,
                 BLOCK_C=M.BLOCK_C)
    sig = {p.name: 'constexpr' if p.is_constexpr else
           '*' + dtype if p.name in ('t', 'w', 'bias', 'out') else 'i32'
           for p in kernel.params}
    out.append([dtype, backward, *sm90_resources(kernel, sig, const)])
print(json.dumps(out))
"""


def test_the_kernel_compiles_for_a_cuda_gpu_without_spills():
    cases = [['fp16', False], ['bf16', True], ['fp32', False], ['fp32', True]]
    compiled = run_compile_script(COMPILE_SCRIPT, cases)
    assert [c[:2] for c in compiled] == cases
    for dtype, backward, shared, stack in compiled:
        # within the 48 KiB of shared memory every CUDA GPU gives a block;
        # no register spills (stack frame in local memory)
        assert shared <= 48 * 1024, (dtype, backward, shared)
        assert stack == 0, (dtype, backward, stack)
