"""Every kernel computes the readable formulation's function (the Triton
kernels in Triton's interpreter: tests/conftest.py)."""
import functools

import pytest
import torch
from op_helpers import CastShapes, LargestOutput

from mmseg_vvt.models import kernels
from mmseg_vvt.models.backbones.vvt import Mlp
from mmseg_vvt.models.kernels import implementation
from mmseg_vvt.models.layers import VicinityAttention


def _attention(heads, sr_ratio, seed=0):
    torch.manual_seed(seed)
    attn = VicinityAttention(24, heads, sr_ratio=sr_ratio).double().eval()
    # non-zero biases, so the kernels' bias handling is exercised
    for p in attn.parameters():
        p.data.normal_(0, 0.3)
    return attn


CASES = [(1, 1, (7, 9)), (3, 1, (6, 5)), (2, 2, (8, 10)), (2, 3, (7, 7))]
# the attention's inference and training kernels, by dispatch path
ATTENTION_PATHS = ['cpu', 'whole', 'whole_triton', 'autograd']


def _attention_kernel(path):
    if path == 'whole_triton':
        return functools.partial(kernels.whole.attention, fused=True)
    return getattr(kernels, path).attention


@pytest.mark.parametrize('heads,sr_ratio,hw', CASES)
@pytest.mark.parametrize('path', ATTENTION_PATHS)
def test_attention_kernels_equal_the_readable_formulation(
        path, heads, sr_ratio, hw, monkeypatch):
    # float64 and the published clamp bounds: agreement to rounding
    monkeypatch.setattr(kernels.cpu, 'CHUNK_TOKENS', 5)  # ragged chunks
    attn = _attention(heads, sr_ratio)
    x = torch.randn(2, hw[0] * hw[1], 24, dtype=torch.float64)
    with torch.no_grad():
        with implementation('reference'):
            want = attn(x, hw)
        src, kv_hw = attn.keys_values_source(x, hw)
        kernel = _attention_kernel(path)
        got = kernel(x, src, hw, kv_hw, attn.kernel_weights())
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize('scale', [1e6, 1e-7])
@pytest.mark.parametrize('path', ATTENTION_PATHS)
def test_kernels_clamp_where_the_readable_formulation_does(path, scale):
    # large out_proj outputs are cut at 1e4; tiny ones are lifted to 1e-4
    # before the gate (1 + g in (1, 2)) scales them: the published numerics
    # pin the outputs, identically in every kernel
    attn = _attention(2, 1)
    attn.out_proj.weight.data *= scale
    attn.out_proj.bias.data *= scale
    x = torch.randn(2, 42, 24, dtype=torch.float64)
    with torch.no_grad():
        with implementation('reference'):
            want = attn(x, (6, 7))
        kernel = _attention_kernel(path)
        got = kernel(x, x, (6, 7), (6, 7), attn.kernel_weights())
    if scale > 1:
        assert (want.abs() == kernels.CLAMP_MAX).float().mean() > 0.5
    else:
        assert want.abs().min() >= kernels.CLAMP_MIN
        assert want.abs().max() <= 2 * kernels.CLAMP_MIN
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize('path', ATTENTION_PATHS)
def test_kernels_clamp_kv_but_not_the_key_sums(path):
    # large keys, small queries: KV and the key sums pass 1e4, the
    # normaliser (queries against the key sums) stays between 1 and 1e4.
    # The published net clamps KV only; a clamped key sum would shrink the
    # normaliser and grow the output
    attn = _attention(2, 1)
    attn.k_proj.weight.data *= 3000
    attn.k_proj.bias.data = attn.k_proj.bias.data.abs() * 3000
    attn.q_proj.weight.data *= 3e-3
    attn.q_proj.bias.data = attn.q_proj.bias.data.abs() * 3e-3
    x = torch.randn(2, 42, 24, dtype=torch.float64)
    with torch.no_grad():
        k = torch.relu(attn.k_proj(x))
        q = torch.relu(attn.q_proj(x))
        assert k.sum(1).max() > 1e4 * 4  # the sums, even at factor 1/4
        # per head, without the position factors (each in [0, 1], their
        # products summing to at most 2)
        heads = (2, 42, attn.num_heads, attn.head_dims)
        normaliser = (q.view(heads) *
                      k.view(heads).sum(1, keepdim=True)).sum(-1)
        assert 1 < normaliser.min() and normaliser.max() < 1e4 / 2
        with implementation('reference'):
            want = attn(x, (6, 7))
        kernel = _attention_kernel(path)
        got = kernel(x, x, (6, 7), (6, 7), attn.kernel_weights())
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize('band_tokens', [1, 7, 4096])
def test_mlp_kernels_equal_the_readable_formulation(band_tokens, monkeypatch):
    monkeypatch.setattr(kernels.cpu, 'BAND_TOKENS', band_tokens)
    torch.manual_seed(0)
    mlp = Mlp(16, 48).double().eval()
    x = torch.randn(2, 9 * 11, 16, dtype=torch.float64)
    with torch.no_grad():
        with implementation('reference'):
            want = mlp(x, (9, 11))
        got_cpu = kernels.cpu.mlp(x, (9, 11), mlp.kernel_weights())
        got_ag = kernels.autograd.mlp(x, (9, 11), mlp.kernel_weights())
    torch.testing.assert_close(got_cpu, want, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(got_ag, want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('band_rows', [1, 4, 9, 100])
def test_whole_tensor_mlp_bands_equal_the_readable_formulation(
        band_rows, batch, fused, monkeypatch):
    # bands of 1 row, uneven bands (9 rows in 4s), one band, no banding; at
    # batch 1 fc2 writes each band into the output (out=); fused: the conv
    # and GELU in the Triton kernel (implementation('triton'))
    torch.manual_seed(0)
    mlp = Mlp(16, 48).double().eval()
    x = torch.randn(batch, 9 * 11, 16, dtype=torch.float64)
    row_bytes = batch * 11 * 48 * 8
    monkeypatch.setattr(kernels.whole, 'MLP_BAND_BYTES', band_rows * row_bytes)
    with torch.no_grad():
        with implementation('reference'):
            want = mlp(x, (9, 11))
        got = kernels.whole.mlp(x, (9, 11), mlp.kernel_weights(), fused=fused)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('name', ['attention', 'mlp'])
def test_whole_tensor_kernels_cast_their_weights_together_under_autocast(
        name, dtype, device):
    # one cast for all of a module's weights (common.joined), the same
    # numbers bit for bit as autocast casting each weight on its own
    torch.manual_seed(0)
    module = (VicinityAttention(16, 2)
              if name == 'attention' else Mlp(16, 48)).eval()
    w = module.kernel_weights()
    kernel = getattr(kernels.whole, name)
    x = torch.randn(1, 8 * 8, 16).to(device)
    args = (x, x, (8, 8), (8, 8)) if name == 'attention' else (x, (8, 8))

    with torch.no_grad(), torch.autocast(device.type, dtype=dtype):
        with CastShapes() as casts:
            got = kernel(*args, w)
        each = type(w)(*[t.to(dtype) if torch.is_tensor(t) else t for t in w])
        want = kernel(*args, each)
    numel = sum(p.numel() for p in module.parameters())
    assert casts.shapes.count((numel, )) == 1, casts.shapes
    shapes = {tuple(p.shape) for p in module.parameters()}
    assert not shapes & set(casts.shapes), casts.shapes
    assert got.dtype == want.dtype
    if device.type == 'cpu':
        assert torch.equal(got, want)
    else:  # cuBLAS may pick other kernels for views at other offsets
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


def _attention_band_bytes(tokens, batch, heads, head_dims, itemsize):
    # the bytes of `tokens` tokens' 4d-wide position-modulated maps
    return tokens * batch * 4 * heads * head_dims * itemsize


@pytest.mark.parametrize('heads,sr_ratio,hw', CASES)
@pytest.mark.parametrize('band_tokens', [1, 4, 1000])
def test_whole_tensor_attention_bands_equal_the_readable_formulation(
        band_tokens, heads, sr_ratio, hw, monkeypatch):
    # bands of 1 token, ragged bands, one band; keys on a reduced grid too
    attn = _attention(heads, sr_ratio)
    monkeypatch.setattr(
        kernels.whole, 'ATTENTION_BAND_BYTES',
        _attention_band_bytes(band_tokens, 2, heads, attn.head_dims, 8))
    x = torch.randn(2, hw[0] * hw[1], 24, dtype=torch.float64)
    with torch.no_grad():
        with implementation('reference'):
            want = attn(x, hw)
        src, kv_hw = attn.keys_values_source(x, hw)
        got = kernels.whole.attention(x, src, hw, kv_hw, attn.kernel_weights())
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize('banded', [False, True])
def test_whole_tensor_attention_never_makes_the_4d_maps_whole_when_banded(
        banded, monkeypatch):
    # The position-modulated keys and queries are 4d wide: whole, they are
    # the attention's largest tensors (above q, k and v's one GEMM output,
    # 3d wide); in bands, that GEMM output is
    attn = _attention(2, 1)
    B, N, d = 2, 8 * 9, attn.head_dims
    if banded:
        monkeypatch.setattr(kernels.whole, 'ATTENTION_BAND_BYTES',
                            _attention_band_bytes(5, B, 2, d, 8))
    x = torch.randn(B, N, 24, dtype=torch.float64)
    with torch.no_grad(), LargestOutput() as largest:
        kernels.whole.attention(x, x, (8, 9), (8, 9), attn.kernel_weights())
    qkv_bytes = B * N * 3 * 2 * d * 8
    if banded:
        assert largest.nbytes == qkv_bytes
    else:
        assert largest.nbytes == B * N * 4 * 2 * d * 8 > qkv_bytes


def _autocast_tokens(cuda_like):
    """8x8 tokens of width 16 as bf16 autocast meets them: fp32 (CUDA's
    LayerNorm output) or bf16 (CPU's)."""
    x = torch.randn(1, 8 * 8, 16)
    return x if cuda_like else x.bfloat16()


def _assert_like_readable(got, want):
    """The readable module's dtype, and its values to bf16 rounding."""
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize('cuda_like', [False, True])
@pytest.mark.parametrize('name', ['attention', 'mlp'])
def test_whole_tensor_bands_under_autocast(name, cuda_like, monkeypatch):
    # fp32 tokens (CUDA's LayerNorm) or bf16 tokens (CPU's) under bf16
    # autocast: the dtype and values of the readable module, banded or not
    torch.manual_seed(0)
    module = (VicinityAttention(16, 2)
              if name == 'attention' else Mlp(16, 48)).eval()
    x = _autocast_tokens(cuda_like)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        with implementation('reference'):
            want = module(x, (8, 8))
        assert kernels.select(x, module) == 'whole'
        whole = module(x, (8, 8))
        monkeypatch.setattr(kernels.whole, 'MLP_BAND_BYTES', 1)
        monkeypatch.setattr(kernels.whole, 'ATTENTION_BAND_BYTES', 1)
        banded = module(x, (8, 8))
    for got in (whole, banded):
        _assert_like_readable(got, want)


@pytest.mark.parametrize('cuda_like', [False, True])
@pytest.mark.parametrize('sr_ratio', [1, 2])
def test_triton_inference_under_autocast(sr_ratio, cuda_like):
    # as above: the readable module's dtype and values, the core and the
    # gated clamp in the Triton kernels
    torch.manual_seed(0)
    attn = VicinityAttention(16, 2, sr_ratio=sr_ratio).eval()
    x = _autocast_tokens(cuda_like)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        with implementation('reference'):
            want = attn(x, (8, 8))
        with implementation('triton'):
            assert kernels.select(x, attn) == 'whole_triton'
            got = attn(x, (8, 8))
    _assert_like_readable(got, want)
