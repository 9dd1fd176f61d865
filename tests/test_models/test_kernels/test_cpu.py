"""The CPU inference kernels (:mod:`mmseg_vvt.models.kernels.cpu`) against
the readable formulation: bands of rows, chunks of tokens, the fused block
and the fused conv + GELU."""
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from mmseg_vvt.models import kernels
from mmseg_vvt.models.backbones import VVT
from mmseg_vvt.models.backbones.vvt import VVTBlock
from mmseg_vvt.models.kernels import implementation
from mmseg_vvt.testing import tiny_arch

TINY_ARCH = tiny_arch(depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 4])


@pytest.mark.parametrize('band_tokens,chunk_tokens', [(7, 5), (40, 64),
                                                      (1, 1)])
def test_banded_inference_paths_equal_reference(monkeypatch, band_tokens,
                                                chunk_tokens,
                                                continuous_clamp):
    # At high resolution CPU inference runs the MLP in bands of rows and the
    # attention in chunks of tokens; small bands exercise every edge case
    # (one-row bands, bands shorter than the conv context, ragged ends).
    monkeypatch.setattr(kernels.cpu, 'BAND_TOKENS', band_tokens)
    monkeypatch.setattr(kernels.cpu, 'CHUNK_TOKENS', chunk_tokens)
    torch.manual_seed(0)
    model = VVT(arch=dict(TINY_ARCH, sr_ratios=[2, 1, 1, 1])).eval()
    x = torch.randn(2, 3, 61, 47)
    with torch.no_grad():
        fast = model(x)
        with implementation('reference'):
            ref = model(x)
        for a, b in zip(fast, ref):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_default_thresholds_take_the_banded_path_and_match():
    # 256 x 256 input: 4096 stage-1 tokens, over the default band/chunk size.
    # Compared in float64: the published numerics' signed clamp jumps by
    # 2e-4 where a value crosses zero, so in float32 any change of summation
    # order moves a few near-zero elements by that much; in float64 such
    # flips vanish and the two formulations must agree to rounding. The
    # banded kernels run in float64 too when called directly.
    torch.manual_seed(0)
    fast = VVT(arch='tiny').eval()
    x = torch.randn(1, 3, 256, 256)
    assert 64 * 64 > kernels.cpu.BAND_TOKENS
    assert 64 * 64 > kernels.cpu.CHUNK_TOKENS
    with mock.patch.object(kernels.cpu, 'mlp_banded',
                           side_effect=kernels.cpu.mlp_banded) as banded, \
            torch.no_grad():
        fast(x)
    assert banded.called  # float32 CPU inference takes the banded path
    fast.double()
    xd = x.double()
    with torch.no_grad():
        block = fast.block1[0]
        t, hw = fast.patch_embed1(xd)
        with implementation('reference'):
            want = block(t, hw)
        got = kernels.cpu.block(t.clone(), hw, *block.kernel_weights())
    torch.testing.assert_close(got, want, atol=1e-7, rtol=1e-5)


def test_fused_block_inference_leaves_its_input_alone(monkeypatch,
                                                      continuous_clamp):
    # The fused inference path adds the MLP's residual in place: into the
    # attention's fresh output, never into the caller's tensor.
    monkeypatch.setattr(kernels.cpu, 'BAND_TOKENS', 8)
    monkeypatch.setattr(kernels.cpu, 'CHUNK_TOKENS', 8)
    torch.manual_seed(0)
    block = VVTBlock(16, 2, 2, 2, 1).eval()
    x = torch.randn(2, 9 * 7, 16)
    x0 = x.clone()
    with torch.no_grad():
        assert kernels.select(x, block) == 'cpu'
        assert kernels.cpu.fuses_block(x, block.attn.sr_ratio)
        fused = block(x, (9, 7))
        with implementation('reference'):
            plain = block(x, (9, 7))
    assert torch.equal(x, x0)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings('ignore:TF32 acceleration on top of oneDNN')
def test_dwconv_gelu_fused_kernel_matches_conv_then_gelu():
    # the MLP's depthwise conv + GELU, one oneDNN kernel on CPU inference
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(24, 24, 3, 1, 1, groups=24)
    x = torch.randn(2, 7, 9, 24).permute(0, 3, 1, 2)  # channels-last view
    for padding in ((1, 1), (0, 1)):
        with torch.no_grad():
            want = F.gelu(
                F.conv2d(
                    x, conv.weight, conv.bias, padding=padding, groups=24))
            got = kernels.cpu.dwconv_gelu(
                x, conv.weight, conv.bias, padding=padding)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    if torch.backends.mkldnn.is_available():
        with torch.no_grad():
            assert kernels.cpu.fused_conv_gelu_available(x)
    # where the fused op can not run, the plain ops do
    xg = x.detach().requires_grad_()
    assert not kernels.cpu.fused_conv_gelu_available(xg)  # autograd
    kernels.cpu.dwconv_gelu(xg, conv.weight, conv.bias).sum().backward()
    assert xg.grad is not None
    with torch.no_grad():
        assert not kernels.cpu.fused_conv_gelu_available(x.double())
        with torch.backends.mkldnn.flags(enabled=False):
            assert not kernels.cpu.fused_conv_gelu_available(x)
