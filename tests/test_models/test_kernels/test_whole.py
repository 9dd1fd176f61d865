"""The whole-tensor kernels' helpers (their results against the readable
formulation: test_equal_reference.py)."""
import pytest
import torch

from mmseg_vvt.models import kernels
from mmseg_vvt.models.backbones.vvt import VVTBlock
from mmseg_vvt.models.kernels import implementation, whole


@pytest.mark.parametrize('x_dtype,y_dtype', [(torch.float32, torch.float32),
                                             (torch.float32, torch.bfloat16),
                                             (torch.float32, torch.float16),
                                             (torch.bfloat16, torch.bfloat16)])
def test_add_into_writes_the_sum_into_x_when_it_keeps_xs_dtype(
        x_dtype, y_dtype):
    x = torch.randn(2, 5, 3).to(x_dtype)
    y = torch.randn(2, 5, 3).to(y_dtype)
    want = x + y
    got = whole.add_into(x, y)
    assert got.data_ptr() == x.data_ptr()
    assert got.dtype == want.dtype
    assert torch.equal(got, want)


@pytest.mark.parametrize('x_dtype,y_dtype', [(torch.bfloat16, torch.float32),
                                             (torch.float16, torch.bfloat16),
                                             (torch.float32, torch.float64)])
def test_add_into_leaves_x_alone_when_the_sum_is_wider(x_dtype, y_dtype):
    # x + y has a wider dtype than x: written into x it would be rounded
    x = torch.randn(2, 5, 3).to(x_dtype)
    y = torch.randn(2, 5, 3).to(y_dtype)
    x0 = x.clone()
    got = whole.add_into(x, y)
    assert got.dtype == torch.promote_types(x_dtype, y_dtype)
    assert torch.equal(got, x0 + y)
    assert torch.equal(x, x0)


@pytest.mark.parametrize('p_dtype', [torch.float64, torch.float32])
def test_gated_output_is_the_published_clamps_and_gate(p_dtype):
    # out_proj's output p in place through signed_clamp(p' + p' g); a gate
    # of a wider dtype than p widens the result, as the formulation's would
    from mmseg_vvt.models.kernels import common
    from mmseg_vvt.models.layers import VicinityAttention
    torch.manual_seed(0)
    w = VicinityAttention(8, 2).double().kernel_weights()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    p = torch.randn(
        2, 6, 8, dtype=torch.float64) * 10.0**torch.randint(-6, 6, (2, 6, 8))
    p[0, 0, :2] = 0.0  # exact zeros stay zero
    p = p.to(p_dtype)
    p_ = common.signed_clamp(p)  # in p's dtype, as out_proj's clamp runs
    want = common.signed_clamp(p_ + p_ * common.channel_gate(x, w))
    got = whole.gated_output(p.clone(), x, w)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=0, rtol=1e-12)
    assert torch.equal(got[0, 0, :2], torch.zeros(2, dtype=torch.float64))


def test_block_inference_ops():
    # on a GPU each op is a launch, and batch-1 inference is launch-bound;
    # the readable block, for scale
    from op_helpers import block_inference_ops
    whole = block_inference_ops('whole')
    plain = block_inference_ops('reference')
    # measured: 45 (48 before q and k's ReLUs ran as one in place, KV's
    # clamp in place without a cat, and the gate as an addcmul; at batch 2
    # the products' operands take layout copies, 51)
    assert whole <= 45, whole
    assert plain > 1.3 * whole, (whole, plain)


@pytest.mark.parametrize('fused', [False, True])
@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('amp', [False, True])
def test_mlp_bands_on_the_device(device, amp, batch, fused, monkeypatch):
    # on a GPU (MMSEG_VVT_TEST_DEVICE=cuda) too: bands of rows, at batch 1
    # written by fc2's GEMM into the output (out=), fp32 or under bf16
    # autocast with fp32 tokens (CUDA's LayerNorm output); fused: the conv
    # and GELU in the Triton kernel
    from mmseg_vvt.models.backbones.vvt import Mlp
    from mmseg_vvt.models.kernels import implementation
    torch.manual_seed(0)
    mlp = Mlp(16, 48).to(device).eval()
    x = torch.randn(batch, 9 * 11, 16, device=device)
    monkeypatch.setattr(whole, 'MLP_BAND_BYTES', 4 * batch * 11 * 48 * 4)
    amp_ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    with torch.no_grad(), amp_ctx:
        with implementation('reference'):
            want = mlp(x, (9, 11))
        got = whole.mlp(x, (9, 11), mlp.kernel_weights(), fused=fused)
    assert got.dtype == want.dtype == (torch.bfloat16 if amp else x.dtype)
    tol = dict(atol=1e-2, rtol=1e-2) if amp else dict(atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got, want, **tol)


@pytest.mark.parametrize('n', [0, 1, 7, 8, 9, 100, 262144])
@pytest.mark.parametrize('most', [1, 3, 8, 64, 131072, 10**6])
def test_even_bands_are_the_fewest_and_differ_by_one_row_at_most(n, most):
    bands = whole.even_bands(n, most)
    assert len(bands) == -(-n // most)  # no more bands than needed
    if n == 0:
        assert bands == []
        return
    # contiguous, covering range(n)
    assert [s for s, _ in bands] == [0] + [e for _, e in bands[:-1]]
    assert bands[-1][1] == n
    sizes = [e - s for s, e in bands]
    assert 1 <= min(sizes) and max(sizes) - min(sizes) <= 1
    assert max(sizes) <= most


def test_even_bands_split_the_remainder_instead_of_trailing_it():
    # the old split made 96 + 87 of 183: the peak was the 96 band
    assert whole.even_bands(183, 96) == [(0, 92), (92, 183)]
    assert whole.even_bands(9, 4) == [(0, 3), (3, 6), (6, 9)]
    assert whole.even_bands(5, 0) == [(i, i + 1) for i in range(5)]


@pytest.mark.parametrize('inplace', [False, True])
def test_whole_tensor_block_inference_adds_into_its_input_only_if_given_up(
        inplace):
    # The backbone gives each block its tokens (inplace=True): the whole-
    # tensor path adds both residuals into them, one token map fewer at the
    # peak; a caller that keeps its tensor (the default) gets it untouched.
    torch.manual_seed(0)
    block = VVTBlock(16, 2, 2, 2, 1).double().eval()
    x = torch.randn(2, 9 * 7, 16, dtype=torch.float64)
    x0 = x.clone()
    with torch.no_grad():
        assert kernels.select(x, block) == 'whole'
        with implementation('reference'):
            want = block(x0, (9, 7))
        got = block(x, (9, 7), inplace)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)
    assert (got.data_ptr() == x.data_ptr()) == inplace
    if not inplace:
        assert torch.equal(x, x0)


def test_band_sizes_count_the_batch(monkeypatch):
    # kills whole.py sizing bands of tokens / rows without the batch: the
    # result is the same, but the peak would grow with B
    t = torch.empty(1, 64, 8)
    one = 4 * 8 * 4  # bytes of one token's 4d-wide map in fp32, batch 1
    monkeypatch.setattr(whole, 'ATTENTION_BAND_BYTES', 16 * one)
    assert len(whole._token_bands(t, torch.float32)) == 4
    assert len(whole._token_bands(t.expand(2, -1, -1), torch.float32)) == 8
    from mmseg_vvt.models.backbones.vvt import Mlp
    mlp = Mlp(4, 8).eval()
    rows = []
    real = whole._mlp_rows
    monkeypatch.setattr(whole, '_mlp_rows',
                        lambda *a, **k: rows.append(a[3:5]) or real(*a, **k))
    # two rows of the 8-wide hidden map at batch 1, one at batch 2
    monkeypatch.setattr(whole, 'MLP_BAND_BYTES', 2 * 6 * 8 * 4)
    for batch, bands in ((1, 3), (2, 6)):
        rows.clear()
        with torch.no_grad():
            whole.mlp(
                torch.randn(batch, 6 * 6, 4), (6, 6), mlp.kernel_weights())
        assert len(rows) == bands, rows
