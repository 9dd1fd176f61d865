"""The one dispatch point: which implementation runs where."""
from unittest import mock

import pytest
import torch

from mmseg_vvt.models import kernels
from mmseg_vvt.models.kernels import implementation, select
from mmseg_vvt.models.layers import VicinityAttention


@pytest.fixture
def attn():
    return VicinityAttention(16, 2).eval()


def test_cpu_inference_in_fp32_takes_the_cpu_kernels(attn):
    x = torch.randn(1, 12, 16)
    with torch.no_grad():
        assert select(x, attn) == 'cpu'


def test_training_takes_the_autograd_kernels(attn):
    x = torch.randn(1, 12, 16)
    assert select(x, attn) == 'autograd'  # parameters need gradients
    attn.requires_grad_(False)
    assert select(x, attn) == 'cpu'  # nothing needs a gradient
    assert select(x.requires_grad_(), attn) == 'autograd'
    with torch.no_grad():
        assert select(x, attn.train()) == 'autograd'  # dropout, drop path


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_cpu_autocast_and_other_dtypes_take_the_whole_tensor_kernels(
        attn, dtype):
    x = torch.randn(1, 12, 16)
    with torch.no_grad():
        with torch.autocast('cpu', dtype=dtype):
            assert select(x, attn) == 'whole'
        assert select(x.double(), attn) == 'whole'
        assert select(x.to(dtype), attn) == 'whole'


def test_whole_implementation_takes_the_whole_tensor_kernels_for_inference(
        attn):
    # CUDA's inference kernels on CPU too (to measure them there); training
    # and the readable formulation's triggers are unchanged
    x = torch.randn(1, 12, 16)
    with implementation('whole'):
        assert select(x, attn) == 'autograd'
        with torch.no_grad():
            assert select(x, attn) == 'whole'
            with mock.patch.object(
                    torch.compiler, 'is_compiling', return_value=True):
                assert select(x, attn) == 'reference'
    with torch.no_grad():
        assert select(x, attn) == 'cpu'


def test_cuda_tensors_never_take_the_cpu_kernels(attn):
    # the loops over bands and chunks are thousands of launches on a GPU
    x = mock.Mock(
        spec=torch.Tensor,
        device=torch.device('cuda'),
        dtype=torch.float32,
        requires_grad=False)
    with torch.no_grad():
        assert select(x, attn) == 'whole'


def test_reference_tracing_and_compiling_take_the_readable_code(attn):
    x = torch.randn(1, 12, 16)
    with torch.no_grad():
        with implementation('reference'):
            assert select(x, attn) == 'reference'
            assert kernels.current_implementation() == 'reference'
        assert kernels.current_implementation() == 'auto'
        with mock.patch.object(torch.jit, 'is_tracing', return_value=True):
            assert select(x, attn) == 'reference'
        with mock.patch.object(
                torch.compiler, 'is_compiling', return_value=True):
            assert select(x, attn) == 'reference'


def test_implementation_names_are_checked():
    with pytest.raises(ValueError, match="'fast'"):
        with implementation('fast'):
            pass


def test_reference_mode_is_restored_after_an_error():
    with pytest.raises(RuntimeError):
        with implementation('reference'):
            raise RuntimeError('boom')
    assert kernels.current_implementation() == 'auto'


def test_kernels_import_nothing_from_the_modules_that_call_them():
    import ast
    import pathlib
    root = pathlib.Path(kernels.__file__).parent
    for path in root.glob('*.py'):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = (node.module or '')
                assert node.level <= 1, (path.name, names)
                assert 'layers' not in names and 'backbones' not in names, (
                    path.name, names)


def test_triton_training_with_dropout_takes_the_readable_mlp(monkeypatch):
    # kills dispatch.py letting implementation('triton') train an MLP with
    # dropout in its kernel, which has none: dropout would be lost
    from mmseg_vvt.models.backbones.vvt import Mlp
    from mmseg_vvt.models.kernels import dispatch
    monkeypatch.setattr(dispatch, 'select', lambda *a: 'triton')
    mlp = Mlp(16, 32, drop=0.5).train()
    x = torch.randn(1, 12, 16)
    assert dispatch.mlp(mlp, x, (3, 4), dropout=0.5) is None
