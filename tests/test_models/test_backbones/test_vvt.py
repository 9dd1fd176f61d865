"""Tests of the VVT backbone against docs/architecture.md."""
import math
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from mmseg_vvt.engine import CheckpointMismatchError, CheckpointNotFoundError
from mmseg_vvt.models import kernels
from mmseg_vvt.models.backbones import VVT
from mmseg_vvt.models.backbones import vvt as vvt_module
from mmseg_vvt.models.kernels import implementation
from mmseg_vvt.testing import tiny_arch

# two blocks in stage 2 (block indexing, drop path) and up to 4 heads
TINY_ARCH = tiny_arch(depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 4])


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch,millions', [('tiny', 12.37), ('small', 24.98),
                                           ('medium', 47.39),
                                           ('large', 61.34)])
def test_published_parameter_counts(arch, millions):
    assert round(_n_params(VVT(arch=arch)) / 1e6, 2) == millions


def test_parameter_count_with_classifier_matches_release():
    # The release quotes 12.9M for vvt_tiny with its Linear(512, 1000) head.
    assert round((_n_params(VVT('tiny')) + 512 * 1000 + 1000) / 1e6, 1) == 12.9


def test_keys_and_shapes_follow_the_published_checkpoints():
    sd = VVT(arch='tiny').state_dict()
    assert sd['patch_embed1.proj.weight'].shape == (96, 3, 7, 7)
    assert sd['block1.0.attn.q_proj.weight'].shape == (48, 96)
    assert sd['block1.0.mlp.fc1.weight'].shape == (768, 96)
    assert sd['block1.0.attn.se_fc.0.weight'].shape == (96, 96)
    assert sd['block1.0.mlp.dwconv.dwconv.weight'].shape == (768, 1, 3, 3)
    assert 'norm4.weight' in sd and 'block4.1.attn.out_proj.bias' in sd
    assert not any(k.startswith('head') for k in sd)
    assert 'block1.0.attn.se_fc.0.bias' not in sd  # se_fc has no bias


def test_layernorm_eps_as_published():
    m = VVT(arch=TINY_ARCH)
    assert m.norm1.eps == 1e-6
    assert m.block2[0].norm1.eps == 1e-6 and m.block2[0].norm2.eps == 1e-6
    assert m.patch_embed1.norm.eps == 1e-5
    sr = VVT(arch=dict(TINY_ARCH, sr_ratios=[2, 1, 1, 1]))
    assert sr.block1[0].attn.norm.eps == 1e-5


@pytest.mark.parametrize('shape', [(1, 3, 97, 131), (3, 3, 64, 64),
                                   (2, 3, 33, 17), (1, 3, 5, 7)])
def test_any_input_size_and_batch(shape):
    model = VVT(arch=TINY_ARCH).eval()
    with torch.no_grad():
        outs = model(torch.randn(shape))
    assert isinstance(outs, tuple) and len(outs) == 4
    h, w = shape[2:]
    for i, (o, c) in enumerate(zip(outs, TINY_ARCH['embed_dims'])):
        # k7 s4 p3, then k3 s2 p1 convolutions.
        h = (h + 6 - 7) // 4 + 1 if i == 0 else (h + 2 - 3) // 2 + 1
        w = (w + 6 - 7) // 4 + 1 if i == 0 else (w + 2 - 3) // 2 + 1
        assert o.shape == (shape[0], c, h, w)
        assert torch.isfinite(o).all()


@pytest.mark.parametrize('grad', [False, True])
def test_stage_maps_are_contiguous_nchw(grad):
    # stages pass NHWC views between them; what necks get is plain NCHW
    # (some heads call .view on it)
    model = VVT(arch=TINY_ARCH).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.set_grad_enabled(grad):
        for o in model(x):
            assert o.is_contiguous() and o.requires_grad == grad
            o.view(o.shape[0], o.shape[1], -1)
            # the chunked copy puts every value where the plain one does
            assert torch.equal(
                o,
                kernels.cpu.contiguous_nchw(
                    o.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
                    step=5))


@pytest.mark.parametrize('impl', ['auto', 'reference'])
def test_runs_on_the_meta_device(impl):
    # shape-only runs (deferred init, memory planning) use the meta device,
    # where torch has no autocast: asking it whether autocast is on raises
    model = VVT(arch=TINY_ARCH, drop_path_rate=0.1)
    cpu_shapes = [o.shape for o in model.eval()(torch.randn(2, 3, 64, 48))]
    model = model.to('meta')
    x = torch.randn(2, 3, 64, 48, device='meta')
    with implementation(impl):
        model.train()
        outs = model(x)
        sum(o.sum() for o in outs).backward()
        model.eval()
        with torch.no_grad():
            eval_outs = model(x)
    for o, e in zip(outs, eval_outs):
        assert o.device.type == e.device.type == 'meta'
    train_shapes = [o.shape for o in outs]
    assert train_shapes == [o.shape for o in eval_outs] == cpu_shapes
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name


def test_out_indices_selects_stages():
    model = VVT(arch=TINY_ARCH, out_indices=(1, 3)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]
    outs = VVT(
        arch=TINY_ARCH, out_indices=(0, )).eval()(
            torch.randn(1, 3, 64, 64))
    assert len(outs) == 1 and outs[0].shape == (1, 16, 16, 16)


class _Reference:
    """Runs a model with the readable formulation everywhere."""

    def __init__(self, model):
        self.model = model

    def __call__(self, *args):
        with implementation('reference'):
            return self.model(*args)


def _pair(arch, seed=0, **kwargs):
    """A VVT and a caller of the same model's readable formulation."""
    torch.manual_seed(seed)
    fast = VVT(arch=arch, **kwargs)
    fast.init_weights()
    return fast, _Reference(fast)


ARCHS = [TINY_ARCH, 'tiny', dict(TINY_ARCH, sr_ratios=[4, 2, 2, 1])]


@pytest.mark.parametrize('arch', ARCHS)
def test_fast_path_equals_reference(arch, continuous_clamp):
    fast, ref = _pair(arch, drop_path_rate=0.)
    fast.eval()
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        for a, b in zip(fast(x), ref(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('arch', ARCHS)
def test_fast_path_equals_reference_float64_published_clamp(arch):
    assert kernels.common.CLAMP_MIN == 1e-4
    fast, ref = _pair(arch, drop_path_rate=0.)
    fast.eval().double()
    x = torch.randn(2, 3, 97, 131, dtype=torch.float64)
    with torch.no_grad():
        for a, b in zip(fast(x), ref(x)):
            torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-5)


def test_fast_path_gradients_equal_reference(continuous_clamp):
    fast, ref = _pair(TINY_ARCH, drop_path_rate=0.)
    x = torch.randn(2, 3, 45, 61)
    sum(o.square().mean() for o in fast(x)).backward()
    grads = {n: p.grad.clone() for n, p in fast.named_parameters()}
    fast.zero_grad()
    sum(o.square().mean() for o in ref(x)).backward()
    for name, p in fast.named_parameters():
        torch.testing.assert_close(
            grads[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)


def _quadratic_vicinity_attention(attn, x, hw, eps=1e-4):
    """The spec's attention as an explicit N x N similarity (no clamps):
    s_ij = (q_i . k_j)(cos(a_i - a_j) + cos(b_i - b_j)), the normaliser's
    epsilon ``eps`` (the published 1e-4)."""
    B, N, C = x.shape
    H, W = hw
    h, d = attn.num_heads, attn.head_dims
    q = F.relu(attn.q_proj(x)).view(B, N, h, d).transpose(1, 2)
    k = F.relu(attn.k_proj(x)).view(B, N, h, d).transpose(1, 2)
    v = attn.v_proj(x).view(B, N, h, d).transpose(1, 2)
    idx = torch.arange(N, dtype=x.dtype)
    a = math.pi / 2 * torch.div(idx, W, rounding_mode='floor') / H
    b = math.pi / 2 * (idx % W) / W
    bias = torch.cos(a[:, None] - a[None]) + torch.cos(b[:, None] - b[None])
    s = (q @ k.transpose(-2, -1)) * bias
    o = (s @ v) / (s.sum(-1, keepdim=True) + eps)
    o = attn.out_proj(o.transpose(1, 2).reshape(B, N, h * d))
    g = torch.sigmoid(attn.se_fc[2](F.relu(attn.se_fc[0](x.mean(1)))))
    return o + o * g[:, None]


def test_attention_is_the_manhattan_vicinity_weighted_linear_attention():
    # An independent formulation of the math (quadratic, explicit positional
    # decay); the clamps only touch magnitudes below 1e-4 here.
    torch.manual_seed(0)
    fast, _ = _pair(TINY_ARCH)
    attn = fast.block2[0].attn  # 2 heads
    x = torch.randn(2, 6 * 7, 32)
    with torch.no_grad():
        got = attn(x, (6, 7))
        want = _quadratic_vicinity_attention(attn, x, (6, 7))
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-3)
    # and it matters: the wrong grid orientation gives something else
    with torch.no_grad():
        assert (attn(x, (7, 6)) - want).abs().max() > 1e-3


@pytest.mark.parametrize(
    'impl, dtype, grad',
    [
        ('reference', torch.float64, False),
        ('auto', torch.float64, False),  # whole-tensor kernels
        ('auto', torch.float32, False),  # CPU kernels
        ('auto', torch.float64, True),  # training kernels
    ])
def test_normaliser_epsilon_is_the_published_one(impl, dtype, grad,
                                                 continuous_clamp):
    # Small queries make the normaliser q~ . sum_j k~_j about 1e-3, where its
    # 1e-4 changes the output by about 10% (elsewhere it is lost in the
    # tolerances); the clamp's lower bound is off, as nothing here is near
    # it but the test must not depend on that.
    torch.manual_seed(0)
    fast, _ = _pair(TINY_ARCH)
    attn = fast.block2[0].attn.to(dtype).eval()
    with torch.no_grad():
        attn.q_proj.weight.mul_(3e-4)
        attn.q_proj.bias.abs_().mul_(3e-4)
        attn.k_proj.bias.abs_()
    x = torch.randn(1, 6 * 7, 32, dtype=dtype, requires_grad=grad)
    with torch.set_grad_enabled(grad), implementation(impl):
        got = attn(x, (6, 7)).detach()
    with torch.no_grad():
        want = _quadratic_vicinity_attention(attn, x, (6, 7))
        other = _quadratic_vicinity_attention(attn, x, (6, 7), eps=1e-6)
    assert (want - other).abs().max() > 1e-2 * want.abs().max()  # it counts
    torch.testing.assert_close(
        got, want, rtol=1e-3, atol=1e-3 * want.abs().max().item())


def test_signed_clamp_numerics():
    from mmseg_vvt.models.layers import signed_clamp
    t = torch.tensor([0., 1e-6, -1e-6, 0.5, -2., 1e6, -1e6])
    want = torch.tensor([0., 1e-4, -1e-4, 0.5, -2., 1e4, -1e4])
    torch.testing.assert_close(signed_clamp(t.clone()), want)
    tg = t.clone().requires_grad_()
    out = signed_clamp(tg)
    torch.testing.assert_close(out.detach(), want)
    out.sum().backward()
    assert tg.grad.tolist() == [0., 0., 0., 1., 1., 0., 0.]


def test_drop_path_rises_linearly_over_all_blocks():
    model = VVT(arch='tiny', drop_path_rate=0.3)
    blocks = [b for s in range(1, 5) for b in getattr(model, f'block{s}')]
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)  # rate 0
    rates = [0.0] + [b.drop_path.drop_prob for b in blocks[1:]]
    torch.testing.assert_close(
        torch.tensor(rates), torch.linspace(0, 0.3, 8), atol=1e-6, rtol=0)


def test_random_initialisation_as_specified():
    torch.manual_seed(0)
    model = VVT(arch='tiny')
    model.init_weights()
    w = model.block3[0].mlp.fc1.weight
    assert abs(w.std().item() - 0.02) < 0.002
    assert model.block3[0].mlp.fc1.bias.abs().sum() == 0
    conv = model.patch_embed2.proj
    want = math.sqrt(2.0 / (3 * 3 * 160))
    assert abs(conv.weight.std().item() - want) / want < 0.05
    dw = model.block1[0].mlp.dwconv.dwconv  # groups = channels: fan_out 9
    assert abs(dw.weight.std().item() - math.sqrt(2 / 9)) < 0.05
    assert torch.all(model.norm2.weight == 1) and torch.all(
        model.norm2.bias == 0)


# -- pretrained checkpoints ------------------------------------------------
def _published_checkpoint(tmp_path, wrap, arch=TINY_ARCH, seed=1):
    """A checkpoint laid out as the authors publish theirs: backbone keys +
    a classifier head, plain or under ``model`` / ``state_dict``."""
    torch.manual_seed(seed)
    ref = VVT(arch=arch)
    ref.init_weights()
    sd = dict(ref.state_dict())
    sd['head.weight'] = torch.randn(
        1000, arch['embed_dims'][-1] if isinstance(arch, dict) else 512)
    sd['head.bias'] = torch.zeros(1000)
    obj = sd if wrap is None else {wrap: sd, 'epoch': 300}
    path = tmp_path / f'published_{wrap}.pth'
    torch.save(obj, path)
    return path, ref


@pytest.mark.parametrize('wrap', [None, 'model', 'state_dict'])
def test_pretrained_checkpoint_computes_the_authors_network(
        tmp_path, wrap, continuous_clamp):
    path, ref = _published_checkpoint(tmp_path, wrap)
    model = VVT(
        arch=TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with mock.patch.object(vvt_module, 'print_log') as log:
        model.init_weights()
    log.assert_not_called()  # nothing missing, nothing unexpected
    model.eval(), ref.eval()
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        for a, b in zip(model(x), _Reference(ref)(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_pretrained_shape_mismatch_names_key_and_shapes(tmp_path):
    path, _ = _published_checkpoint(tmp_path, 'model')
    other = dict(TINY_ARCH, mlp_ratios=[4, 2, 2, 2])
    model = VVT(
        arch=other, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError) as e:
        model.init_weights()
    msg = str(e.value)
    assert 'block1.0.mlp.fc1.weight' in msg
    assert '(32, 16)' in msg and '(64, 16)' in msg


def test_pretrained_missing_and_unexpected_keys_are_refused_unless_not_strict(
        tmp_path):
    torch.manual_seed(0)
    sd = dict(VVT(arch=TINY_ARCH).state_dict())
    removed = sd.pop('block2.1.attn.q_proj.weight')
    sd['extra.weight'] = torch.zeros(3)
    path = tmp_path / 'partial.pth'
    torch.save(sd, path)
    model = VVT(
        arch=TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError) as e:
        model.init_weights()
    msg = str(e.value)
    assert str(path) in msg and 'does not fit the VVT backbone' in msg
    n = len(model.state_dict())
    assert f"1 of the backbone's {n} keys missing " \
        '(block2.1.attn.q_proj.weight)' in msg
    assert '1 unexpected keys (extra.weight)' in msg and 'strict=False' in msg
    # nothing of it was loaded
    assert not torch.equal(model.block1[0].attn.q_proj.weight,
                           sd['block1.0.attn.q_proj.weight'])
    # asked for: what matches loads, the rest is logged
    model = VVT(
        arch=TINY_ARCH,
        init_cfg=dict(type='Pretrained', checkpoint=str(path), strict=False))
    with mock.patch.object(vvt_module, 'print_log') as log:
        model.init_weights()
    text = ' '.join(str(c.args[0]) for c in log.call_args_list)
    assert 'block2.1.attn.q_proj.weight' in text and 'missing' in text
    assert 'extra.weight' in text and 'unexpected' in text
    torch.testing.assert_close(model.block1[0].attn.q_proj.weight,
                               sd['block1.0.attn.q_proj.weight'])
    assert removed.shape == model.block2[1].attn.q_proj.weight.shape


def test_pretrained_checkpoint_of_another_depth_is_refused(tmp_path):
    """A VVT-T checkpoint for a deeper VVT of the same widths: every key it
    has fits, the extra blocks would stay random."""
    path, _ = _published_checkpoint(tmp_path, None)
    deeper = dict(TINY_ARCH, depths=[d + 1 for d in TINY_ARCH['depths']])
    model = VVT(
        arch=deeper, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match='keys missing'):
        model.init_weights()


def test_pretrained_checkpoint_of_a_deeper_vvt_is_refused(tmp_path):
    """The other way round: every key of the model is there, the extra
    blocks' weights would be dropped without a word."""
    deeper = dict(TINY_ARCH, depths=[d + 1 for d in TINY_ARCH['depths']])
    path, _ = _published_checkpoint(tmp_path, None, arch=deeper)
    model = VVT(
        arch=TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError) as e:
        model.init_weights()
    msg = str(e.value)
    assert 'keys missing' not in msg
    # four extra blocks of 20 weights each
    assert '80 unexpected keys (block1.1.norm1.weight' in msg
    assert 'strict=False' in msg


def test_missing_pretrained_file_says_what_to_do(tmp_path):
    path = str(tmp_path / 'vvt_small_backbone.pth')
    model = VVT(
        arch=TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointNotFoundError) as e:
        model.init_weights()
    msg = str(e.value)
    assert path in msg and 'does not exist' in msg
    assert 'tools/convert_vvt_checkpoint.py' in msg
    assert 'model.backbone.init_cfg=None' in msg
    # fine-tuning from a whole segmentor needs no ImageNet file either
    assert 'when load_from or --resume loads a whole segmentor' in msg
    assert isinstance(e.value, FileNotFoundError)  # what mmengine raises


def test_pretrained_with_prefix_selects_backbone(tmp_path):
    torch.manual_seed(0)
    src = VVT(arch=TINY_ARCH)
    sd = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    sd['decode_head.conv_seg.weight'] = torch.zeros(2, 2, 1, 1)
    path = tmp_path / 'segmentor.pth'
    torch.save({'state_dict': sd, 'meta': {}}, path)
    model = VVT(
        arch=TINY_ARCH,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    for k, v in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_checkpoint_of_something_else_is_refused(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7)}, path)
    model = VVT(
        arch=TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(
            CheckpointMismatchError,
            match='none of the model.*is it a VVT checkpoint'):
        model.init_weights()
    # a few key names in common (VVT's stage norms, a MiT's block norms) are
    # no prefix to suggest
    mit = {
        f'backbone.layers.{i}.1.{j}.norm{n}.weight': torch.zeros(8)
        for i in range(4)
        for j in range(2)
        for n in (1, 2)
    }
    torch.save({'state_dict': mit}, path)
    with pytest.raises(
            CheckpointMismatchError,
            match='none of the model.*is it a VVT checkpoint'):
        model.init_weights()


def test_segmentor_checkpoint_without_prefix_names_the_prefix(tmp_path):
    torch.manual_seed(0)
    src = VVT(arch=TINY_ARCH)
    sd = {'decode_head.conv_seg.weight': torch.zeros(2, 2, 1, 1)}
    sd.update({f'backbone.{k}': v for k, v in src.state_dict().items()})
    path = tmp_path / 'segmentor.pth'
    torch.save({'state_dict': sd, 'meta': {}}, path)
    model = VVT(
        arch=TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError) as e:
        model.init_weights()
    n = len(src.state_dict())
    assert f"its keys under 'backbone.' are this VVT's ({n} of {n})" \
        in str(e.value)
    assert "prefix='backbone.'" in str(e.value)
    # and a prefix no key has is named with the keys there are
    model = VVT(
        arch=TINY_ARCH,
        init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='bb'))
    with pytest.raises(
            CheckpointMismatchError,
            match="no key starts with prefix 'bb.'.*decode_head"):
        model.init_weights()


# -- configuration errors ---------------------------------------------------
def test_unknown_arch_lists_valid_names():
    with pytest.raises(KeyError) as e:
        VVT(arch='huge')
    for name in ('tiny', 'small', 'medium', 'large'):
        assert name in str(e.value)


def test_arch_dict_errors():
    with pytest.raises(ValueError, match='4 entries'):
        VVT(arch=dict(TINY_ARCH, depths=[1, 1, 1]))
    with pytest.raises(KeyError, match='missing'):
        VVT(arch={k: v for k, v in TINY_ARCH.items() if k != 'fr_ratios'})
    with pytest.raises(ValueError, match='divisible'):
        VVT(arch=dict(TINY_ARCH, num_heads=[3, 2, 2, 4]))
    with pytest.raises(ValueError, match='positive'):
        VVT(arch=dict(TINY_ARCH, depths=[1, 0, 1, 1]))
    with pytest.raises(KeyError, match='unknown keys'):
        VVT(arch=dict(TINY_ARCH, window=7))


def test_argument_errors():
    with pytest.raises(ValueError, match='out_indices'):
        VVT(arch=TINY_ARCH, out_indices=(0, 4))
    with pytest.raises(ValueError, match='frozen_stages'):
        VVT(arch=TINY_ARCH, frozen_stages=5)
    with pytest.raises(ValueError, match='frozen_stages'):
        VVT(arch=TINY_ARCH, frozen_stages=True)
    for rate in (1.5, 1, -0.1, '0.1', True):
        with pytest.raises(
                ValueError,
                match=r'drop_path_rate must be a number in \[0, 1\), got'):
            VVT(arch=TINY_ARCH, drop_path_rate=rate)


def test_input_errors():
    model = VVT(arch=TINY_ARCH)
    with pytest.raises(ValueError, match='4-D'):
        model(torch.randn(3, 32, 32))
    with pytest.raises(
            ValueError, match='3 input channels, got an input with 1'):
        model(torch.randn(1, 1, 32, 32))
    for shape in ((0, 3, 32, 32), (1, 3, 0, 32)):
        with pytest.raises(ValueError, match='VVT got an empty input'):
            model(torch.randn(shape))
    gray = VVT(arch=TINY_ARCH, in_channels=1)
    assert gray(torch.randn(1, 1, 32, 32))[0].shape == (1, 16, 8, 8)


# -- training behaviour ------------------------------------------------------
def test_frozen_stages():
    # frozen from the start (a model trained without a .train() call), and
    # after train()
    model = VVT(arch=TINY_ARCH, frozen_stages=2)
    for step in range(2):
        for name, p in model.named_parameters():
            frozen = name.split('.')[0] in ('patch_embed1', 'block1', 'norm1',
                                            'patch_embed2', 'block2', 'norm2')
            assert p.requires_grad != frozen, name
        assert not model.block2.training and model.block3.training
        model.eval()
        model.train()
    only_embed = VVT(arch=TINY_ARCH, frozen_stages=0)
    only_embed.train()
    assert not any(p.requires_grad
                   for p in only_embed.patch_embed1.parameters())
    assert all(p.requires_grad for p in only_embed.block1.parameters())


def test_norm_eval_keeps_batchnorm_in_eval():
    model = VVT(arch=TINY_ARCH, norm_eval=True)
    model.extra_bn = torch.nn.BatchNorm2d(4)  # as a subclass might add
    model.train()
    assert not model.extra_bn.training and model.block1.training


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(frozen_stages=1),
    dict(out_indices=(0, 1)),
])
def test_stochastic_depth_draws_as_drop_path_in_the_readable_network(kwargs):
    # the training path draws every block's factors at once; under the
    # same seed they are DropPath's, block after block (float64: equal to
    # rounding), with frozen stages and unused stages drawing nothing
    torch.manual_seed(0)
    model = VVT(arch=TINY_ARCH, drop_path_rate=0.5, **kwargs).double()
    model.init_weights()
    model.train()
    x = torch.randn(4, 3, 40, 40, dtype=torch.float64)
    runs = []
    for impl in ('auto', 'reference'):
        with implementation(impl):
            torch.manual_seed(1)
            outs = model(x)
            sum((o * o).sum() for o in outs).backward()
            after = torch.rand(1)  # the generator moved on alike
        runs.append((
            [o.detach() for o in outs] + [after] +
            [p.grad.clone()
             for p in model.parameters() if p.grad is not None]))
        model.zero_grad()
    assert len(runs[0]) == len(runs[1])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-8)


@pytest.mark.parametrize('drop_path_rate', [0., 0.5])
def test_with_cp_gives_the_same_gradients(drop_path_rate):
    # with stochastic depth, the recomputation must draw what the forward
    # drew (checkpoint restores the RNG state)
    torch.manual_seed(0)
    a = VVT(arch=TINY_ARCH, drop_path_rate=drop_path_rate, with_cp=True)
    b = VVT(arch=TINY_ARCH, drop_path_rate=drop_path_rate)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 3, 40, 40)
    torch.manual_seed(1)
    sum(o.sum() for o in a(x)).backward()
    torch.manual_seed(1)
    sum(o.sum() for o in b(x)).backward()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('forward_impl,backward_impl', [('reference', 'auto'),
                                                        ('auto', 'reference')])
def test_with_cp_recomputes_with_the_forwards_implementation(
        forward_impl, backward_impl):
    # backward outside the forward's implementation() block recomputed with
    # another one: "A different number of tensors was saved"
    torch.manual_seed(0)
    a = VVT(arch=TINY_ARCH, drop_path_rate=0.3, with_cp=True).double()
    b = VVT(arch=TINY_ARCH, drop_path_rate=0.3).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 40, 40, dtype=torch.float64)
    for model in (a, b):
        torch.manual_seed(1)  # the same stochastic depth draws
        with implementation(forward_impl):
            outs = model(x)
        with implementation(backward_impl):
            sum(o.square().sum() for o in outs).backward()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-10, rtol=1e-8)


def test_registered_and_built_from_config():
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfg = Config(
        dict(
            custom_imports=dict(
                imports=['mmseg_vvt'], allow_failed_imports=False),
            backbone=dict(type='VVT', arch='tiny', out_indices=(3, ))))
    # as under a runner of an mmseg config (default_scope='mmseg'); other
    # tests of the session may have left another scope current
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.backbone)
    assert isinstance(model, VVT)
    assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 512, 2, 2)


def test_bf16_autocast_on_cpu_at_512():
    # CPU autocast takes the whole-tensor kernels (the CPU kernels are fp32
    # only), whose token sums run in fp32
    torch.manual_seed(0)
    model = VVT(arch='small').eval()
    x = torch.randn(1, 3, 512, 512)
    with torch.no_grad():
        want = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            got = model(x)
    for g, w in zip(got, want):
        assert g.dtype == torch.bfloat16 and g.shape == w.shape
        assert torch.isfinite(g).all()
        # bf16 keeps ~3 significant digits; errors stay at that level
        assert (g.float() - w).abs().max() < 0.05 * w.abs().max()
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
        sum(o.float().square().mean() for o in outs).backward()
    assert all(torch.isfinite(o).all() for o in outs)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_eval_with_gradients_applies_no_stochastic_depth():
    # kills vvt.py drop_probs() without its `self.training` test: an eval
    # forward that needs gradients (grad-enabled, e.g. saliency) takes the
    # training kernels, and must still keep every branch
    torch.manual_seed(0)
    model = VVT(TINY_ARCH, drop_path_rate=0.5).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    for _ in range(2):
        out = model(x)
        for a, b in zip(out, ref):
            torch.testing.assert_close(a.detach(), b, atol=1e-5, rtol=1e-5)


def test_mlp_dropout_applies_to_its_output():
    # kills vvt.py Mlp.forward dropping the dropout after fc2 (the spec:
    # fc2 -> Dropout); fc2's bias makes an undropped output non-zero
    torch.manual_seed(0)
    mlp = vvt_module.Mlp(16, 64, drop=0.5).train()
    with torch.no_grad():
        mlp.fc2.bias.fill_(1.0)
    y = mlp(torch.randn(2, 256, 16), (16, 16))
    assert 0.4 < (y == 0).float().mean().item() < 0.6


def test_non_integer_depths_or_widths_are_refused():
    # kills vvt.py's arch check without its integral test (1.5 blocks)
    for key in ('depths', 'embed_dims'):
        arch = tiny_arch()
        arch[key] = [arch[key][0] + 0.5] + list(arch[key][1:])
        with pytest.raises(
                ValueError, match=rf'arch {key}\[0\] must be a positive int'):
            VVT(arch)


def test_prefix_hint_when_most_keys_are_under_a_prefix():
    # kills vvt.py _prefix_hint only advising when every key matched: a
    # segmentor checkpoint missing a few backbone keys still names its prefix
    model = VVT(TINY_ARCH)
    sd = {
        f'backbone.{k}': v
        for k, v in model.state_dict().items() if not k.startswith('norm4.')
    }
    with pytest.raises(CheckpointMismatchError, match="prefix='backbone.'"):
        vvt_module.load_backbone_state_dict(model, sd)


def test_state_dict_unwrapping_only_strips_what_is_there():
    # kills vvt.py stripping 'module.' when only some keys have it, and
    # unwrapping a 'model' entry that is not a dict
    t = torch.zeros(1)
    mixed = vvt_module.extract_backbone_state_dict({'module.a': t, 'b.c': t})
    assert set(mixed) == {'module.a', 'b.c'}
    named = vvt_module.extract_backbone_state_dict({
        'model':
        'vvt_tiny',
        'patch_embed1.proj.weight':
        t
    })
    assert set(named) == {'model', 'patch_embed1.proj.weight'}


def test_reduced_key_grid_keeps_rows_and_columns():
    # kills vicinity_attention.py swapping the reduced grid's height and
    # width: on a non-square grid with sr_ratio > 1 the keys' position
    # factors would be those of another grid
    from mmseg_vvt.models.layers import VicinityAttention
    attn = VicinityAttention(8, 2, sr_ratio=2)
    src, kv_hw = attn.keys_values_source(torch.randn(1, 32, 8), (4, 8))
    assert kv_hw == (2, 4) and src.shape == (1, 8, 8)


def test_width_must_divide_into_heads_of_the_reduced_width():
    # kills vicinity_attention.py checking only embed_dims % num_heads:
    # 12 channels, 4 heads and fr_ratio 2 give heads of 1.5 channels
    from mmseg_vvt.models.layers import VicinityAttention
    with pytest.raises(ValueError, match=r'num_heads x fr_ratio \(4 x 2 = 8'):
        VicinityAttention(12, 4, fr_ratio=2)
