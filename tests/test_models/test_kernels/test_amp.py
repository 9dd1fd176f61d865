"""Mixed precision: autocast inference and training, on CPU.

CUDA autocast runs LayerNorm in fp32, so there fp32 tokens meet the
half-precision outputs of autocast's matmuls; CPU autocast runs LayerNorm
in its input's dtype. The tests below make both mixes happen on CPU. The
training tests that take ``device`` also run under CUDA's own autocast
(``MMSEG_VVT_TEST_DEVICE=cuda pytest -m on_device``).
"""
import pytest
import torch

from mmseg_vvt.models.backbones import VVT
from mmseg_vvt.models.kernels import implementation
from mmseg_vvt.models.layers import VicinityAttention
from mmseg_vvt.testing import tiny_arch

# the relative error the issue allows against fp32, per autocast dtype
TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 5e-2}


def _rel_err(got, want):
    return ((got.float() - want).norm() / want.norm()).item()


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('train', [False, True])
def test_attention_with_fp32_tokens_under_autocast(dtype, train):
    # fp32 tokens entering the attention under autocast (CUDA's mix)
    torch.manual_seed(0)
    attn = VicinityAttention(96, 1).train(train)
    x = torch.randn(1, 64 * 64, 96)
    with torch.set_grad_enabled(train):
        want = attn(x, (64, 64))
        with torch.autocast('cpu', dtype=dtype):
            got = attn(x, (64, 64))
    assert torch.isfinite(got).all()
    assert _rel_err(got, want) < TOLERANCE[dtype]


def _fp32_norms(model):
    """Make every LayerNorm return fp32, as CUDA autocast does."""

    def hook(module, args, out):
        return out.float()

    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.register_forward_hook(hook)


def _model(cuda_like_norms):
    torch.manual_seed(0)
    model = VVT(arch=tiny_arch(depths=[1, 1, 2, 1]))
    model.init_weights()
    if cuda_like_norms:
        _fp32_norms(model)
    return model


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('cuda_like_norms', [False, True])
def test_backbone_inference_under_autocast_at_512(dtype, cuda_like_norms):
    model = _model(cuda_like_norms).eval()
    x = torch.randn(1, 3, 512, 512)
    with torch.no_grad():
        want = model(x)
        with torch.autocast('cpu', dtype=dtype):
            got = model(x)
    for g, w in zip(got, want):
        assert g.shape == w.shape and torch.isfinite(g).all()
        assert _rel_err(g, w) < TOLERANCE[dtype]


def _training_step(model, x, dtype=None):
    model.zero_grad()
    on = dtype is not None
    with torch.autocast(x.device.type, dtype or torch.float32, enabled=on):
        outs = model(x)
        loss = sum(o.float().square().mean() for o in outs)
    loss.backward()
    return loss.detach(), {
        n: p.grad.clone()
        for n, p in model.named_parameters()
    }


def _check_training_under_autocast(dtype, size, device='cpu'):
    model = _model(cuda_like_norms=True).train().to(device)
    x = torch.randn(2, 3, size, size).to(device)
    want_loss, want = _training_step(model, x)
    loss, grads = _training_step(model, x, dtype)
    assert torch.isfinite(loss)
    assert abs(loss - want_loss) < TOLERANCE[dtype] * want_loss
    for name, g in grads.items():
        assert torch.isfinite(g).all(), name
    # the whole gradient, as an optimiser step sees it
    flat = torch.cat([g.flatten() for g in grads.values()])
    flat_want = torch.cat([g.flatten() for g in want.values()])
    assert _rel_err(flat, flat_want) < 5 * TOLERANCE[dtype]


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_backbone_training_under_autocast(dtype, device):
    _check_training_under_autocast(dtype, 128, device)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_backbone_training_under_autocast_at_512(dtype):
    _check_training_under_autocast(dtype, 512)


def test_token_sums_do_not_overflow_fp16():
    # 128 x 128 tokens of large activations: KV and the key sums pass fp16's
    # 65504 by far; computed in fp16 the normaliser becomes inf and every
    # output collapses to zero
    torch.manual_seed(0)
    attn = VicinityAttention(32, 1).eval()
    x = torch.randn(1, 128 * 128, 32) * 20
    with torch.no_grad():
        want = attn(x, (128, 128))
        with torch.autocast('cpu', dtype=torch.float16):
            got = attn(x, (128, 128))
    assert got.abs().max() > 0.1 * want.abs().max()
    assert _rel_err(got, want) < TOLERANCE[torch.float16]


@pytest.mark.parametrize('impl', ['auto', 'triton'])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_block_with_stochastic_depth_under_autocast(device, dtype, impl):
    # the training path folds DropPath into the residual add: fp32 tokens
    # plus a half-precision branch, gradients back in each input's dtype
    from mmseg_vvt.models.backbones.vvt import VVTBlock
    torch.manual_seed(0)
    block = VVTBlock(64, 2, 4, 2, 1, drop_path_rate=0.5).train().to(device)
    x = torch.randn(4, 8 * 8, 64).to(device)

    def step(autocast_dtype=None):
        torch.manual_seed(1)
        block.zero_grad()
        xg = x.clone().requires_grad_()
        with torch.autocast(
                device.type,
                dtype=autocast_dtype or torch.float32,
                enabled=autocast_dtype is not None):
            y = block(xg, (8, 8))
        y.float().square().mean().backward()
        return y.float(), xg.grad, block.attn.q_proj.weight.grad

    want = step()
    # 'triton': the Triton kernels (in their interpreter on CPU) read and
    # write the half-precision projections and gate as they come
    with implementation(impl):
        got = step(dtype)
    assert got[1].dtype == got[2].dtype == torch.float32
    for g, w in zip(got, want):
        assert torch.isfinite(g).all()
        assert _rel_err(g, w) < 5 * TOLERANCE[dtype]


class _WeightOps(torch.utils._python_dispatch.TorchDispatchMode):
    """The casts and cats dispatched, by the number of values they make."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten._to_copy.default,
                    torch.ops.aten.cat.default):
            self.ops.append((func.__name__.split('.')[0], out.numel()))
        return out


@pytest.mark.parametrize('mlp_drop', [0.0, 0.1])
def test_block_joins_its_weights_once_under_autocast(mlp_drop):
    # one cat and one cast for all of a block's weights each way (one per
    # module before), with the gradients of modules that join their own
    from mmseg_vvt.models.backbones.vvt import VVTBlock
    torch.manual_seed(0)
    block = VVTBlock(32, 2, 4, 2, 1, drop_rate=mlp_drop).train()
    x = torch.randn(2, 6 * 8, 32, requires_grad=True)
    attn_numel = sum(p.numel() for p in block.attn.parameters())
    mlp_numel = sum(p.numel() for p in block.mlp.parameters())
    joined_numel = attn_numel + (mlp_numel if mlp_drop == 0 else 0)

    def step(by_module):
        torch.manual_seed(1)
        block.zero_grad()
        with _WeightOps() as seen, torch.autocast('cpu', dtype=torch.bfloat16):
            if by_module:  # the modules join their own weights
                h = x + block.attn(block.norm1(x), (6, 8))
                y = h + block.mlp(block.norm2(h), (6, 8))
            else:
                y = block(x, (6, 8))
            y.float().square().mean().backward()
        grads = [p.grad.clone() for p in block.parameters()]
        return seen.ops, grads

    ops, grads = step(False)
    assert ops.count(('cat', joined_numel)) == 2, ops  # forward, backward
    assert ops.count(('_to_copy', joined_numel)) == 2, ops
    module_ops, module_grads = step(True)
    if mlp_drop == 0:  # the modules join theirs apart
        assert ('cat', joined_numel) not in module_ops
        assert ('cat', attn_numel) in module_ops, module_ops
    for name, g, w in zip(dict(block.named_parameters()), grads, module_grads):
        assert torch.equal(g, w), name


def test_readable_attention_sums_tokens_in_fp32_under_fp16_autocast():
    # kills vicinity_attention.py running the readable token sums in q's
    # dtype: in fp16 the sums over 4096 tokens of large keys overflow
    # (the readable code runs under implementation('reference'),
    # torch.compile and tracing)
    torch.manual_seed(0)
    attn = VicinityAttention(16, 1).eval()
    with torch.no_grad():
        attn.k_proj.bias.fill_(20.0)
        attn.q_proj.bias.fill_(1.0)
    x = torch.randn(1, 4096, 16)
    outs = []
    for name in ('reference', 'auto'):
        with torch.no_grad(), implementation(name), torch.autocast(
                'cpu', dtype=torch.float16):
            outs.append(attn(x, (64, 64)).float())
    assert torch.isfinite(outs[0]).all()
    torch.testing.assert_close(outs[0], outs[1], atol=1e-2, rtol=1e-2)
