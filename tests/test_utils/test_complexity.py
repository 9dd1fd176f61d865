"""FLOP counting: exact product-op handles, VVT's attention products counted,
linear growth with pixels, segmentor configs."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer

from mmseg_vvt.testing import TINY_ARCH, write_tiny_config
from mmseg_vvt.utils.complexity import (MATMUL_OPS, backbone_complexity,
                                        count_flops, einsum_macs,
                                        segmentor_complexity)

# ---------------------------------------------------------------- einsum


def test_einsum_macs_two_operands_is_product_of_all_index_sizes():
    assert einsum_macs('bhnd,bhne->bhde',
                       [(2, 3, 5, 7), (2, 3, 5, 11)]) == 2 * 3 * 5 * 7 * 11


def test_einsum_macs_ellipsis_broadcast_and_implicit_output():
    # '...' expands from the right; a missing batch dim broadcasts
    assert einsum_macs('...nd,...ne->...de',
                       [(2, 3, 5, 7), (3, 5, 11)]) == 2 * 3 * 5 * 7 * 11
    # no '->': numpy's implicit output (indices seen once, sorted)
    assert einsum_macs('ij,jk', [(10, 20), (20, 30)]) == 10 * 20 * 30


def test_einsum_macs_three_operands_follows_cheapest_order():
    # (A B) C costs 10*20*30 + 10*30*2 = 6600; A (B C) costs 20*30*2 +
    # 10*20*2 = 1600; the optimal path takes the latter
    assert einsum_macs('ij,jk,kl->il', [(10, 20), (20, 30), (30, 2)]) == 1600


def test_einsum_macs_single_operand_has_no_products():
    assert einsum_macs('bii->b', [(2, 3, 3)]) == 0


def test_einsum_macs_rejects_mismatched_subscripts():
    with pytest.raises(ValueError, match='subscripts'):
        einsum_macs('ij,jk->ik', [(2, 3), (3, 4, 5)])


# ------------------------------------------------------- product handles


class _Products(nn.Module):

    def forward(self, q, kv):
        a = q @ kv  # batched matmul
        b = q[0, 0] @ kv  # the batch comes from the second operand
        c = torch.baddbmm(
            torch.zeros(6, 5, 4), q.reshape(6, 5, 7), kv.reshape(6, 7, 4))
        d = torch.einsum('bhnd,bhde->bhne', q, kv)
        e = F.scaled_dot_product_attention(q, q, q)
        return a.sum() + b.sum() + c.sum() + d.sum() + e.sum()


def test_product_ops_are_counted_exactly():
    q, kv = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 7, 4)
    res = count_flops(_Products(), (q, kv))
    macs = 2 * 3 * 5 * 7 * 4
    assert res['by_operator'] == dict(
        matmul=2 * macs,  # mmengine's stock handle gives 1.2 * macs here
        baddbmm=macs,
        einsum=macs,
        scaled_dot_product_attention=2 * 3 * 5 * 5 * (7 + 7))
    assert res['flops'] == sum(res['by_operator'].values())
    # element-wise ops are listed, not silently dropped
    assert res['unsupported_ops']['aten::add'] == 4


def test_stock_mmengine_matmul_handle_undercounts_broadcast_batch():
    """Why the handles exist: mmengine's own count of ``b`` above."""
    q, kv = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 7, 4)

    class Broadcast(nn.Module):

        def forward(self, q, kv):
            return q[0, 0] @ kv

    stock = FlopAnalyzer(Broadcast(), (q, kv))
    stock.unsupported_ops_warnings(False)
    assert stock.total() == 5 * 7 * 4  # batch of 6 lost
    assert count_flops(Broadcast(), (q, kv))['flops'] == 6 * 5 * 7 * 4


def test_count_matmuls_false_drops_exactly_the_product_ops():
    q, kv = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 7, 4)
    res = count_flops(_Products(), (q, kv), count_matmuls=False)
    assert res['flops'] == 0
    assert res['by_operator'] == {}
    # linear layers are not product ops in that sense: still counted
    lin = count_flops(nn.Linear(7, 3), torch.randn(4, 7), count_matmuls=False)
    assert lin['flops'] == 4 * 7 * 3
    assert all(op.startswith('aten::') for op in MATMUL_OPS)


# ------------------------------------------------------------------ VVT


def _vvt_tiny():
    from mmseg_vvt.models.backbones.vvt import VVT
    torch.manual_seed(0)
    return VVT(arch=TINY_ARCH, drop_path_rate=0.)


def _attention_product_macs(size):
    """Lower bound from the spec: per head, ``KV = sum_j k~_j v_j^T`` and
    ``q~^T KV`` are ``N x 4d x d`` products each (``d = C / h / fr``)."""
    h = w = size
    h, w = (h + 2 * 3 - 7) // 4 + 1, (w + 2 * 3 - 7) // 4 + 1
    total = 0
    for s in range(4):
        if s:
            h, w = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
        c, heads = TINY_ARCH['embed_dims'][s], TINY_ARCH['num_heads'][s]
        d = c // heads // TINY_ARCH['fr_ratios'][s]
        total += TINY_ARCH['depths'][s] * heads * 2 * (h * w) * 4 * d * d
    return total


@pytest.mark.parametrize('impl', ['auto', 'reference'])
def test_vvt_attention_products_are_counted(impl):
    from mmseg_vvt.models.backbones.vvt import VVT
    from mmseg_vvt.models.kernels import implementation
    torch.manual_seed(0)
    model = VVT(arch=TINY_ARCH, drop_path_rate=0.)
    with implementation(impl):
        with_mm = backbone_complexity(model, (64, 64))
        without = backbone_complexity(model, (64, 64), count_matmuls=False)
    products = with_mm['flops'] - without['flops']
    lower = _attention_product_macs(64)
    # the two N x 4d x d products per head at least; the normaliser
    # q~ . sum_j k~_j adds N x 4d per head, i.e. a quarter of d more at most
    assert lower <= products <= lower * 1.5, (products, lower,
                                              with_mm['by_operator'])
    assert with_mm['params'] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('size', [64, 256])
def test_vvt_and_reference_count_the_same_flops(size):
    """The counter traces the model, and tracing takes the readable
    formulation at every size: no special case inside the model, and the
    count does not depend on which kernels inference would pick."""
    from mmseg_vvt.models.backbones.vvt import VVT
    from mmseg_vvt.models.kernels import implementation
    torch.manual_seed(0)
    model = VVT(arch=TINY_ARCH)
    fast = backbone_complexity(model, (size, size))
    with implementation('reference'):
        ref = backbone_complexity(model, (size, size))
    assert fast['flops'] == ref['flops']


def test_vvt_flops_grow_linearly_with_pixels():
    model = _vvt_tiny()
    f64 = backbone_complexity(model, (64, 64))['flops']
    f128 = backbone_complexity(model, (128, 128))['flops']
    f64x128 = backbone_complexity(model, (64, 128))['flops']
    # 4x the pixels -> 4x the FLOPs, up to the per-image channel gate
    assert 3.8 < f128 / f64 <= 4.0, f128 / f64
    assert 1.9 < f64x128 / f64 <= 2.0, f64x128 / f64
    # the attention products alone are linear too (no N x N matrix)
    a64 = f64 - backbone_complexity(
        model, (64, 64), count_matmuls=False)['flops']
    a128 = f128 - backbone_complexity(
        model, (128, 128), count_matmuls=False)['flops']
    assert a128 / a64 == pytest.approx(4.0, rel=0.05)


def test_backbone_complexity_rejects_bad_shape():
    with pytest.raises(ValueError, match='shape'):
        backbone_complexity(nn.Conv2d(3, 4, 3), (64, -1))


# ------------------------------------------------------------ segmentor


@pytest.fixture
def tiny_cfg_file(tmp_path):
    # Semantic FPN + auxiliary head, SyncBN as the multi-GPU recipes
    return write_tiny_config(
        tmp_path / 'fpn_vvt-tiny-test_64x64.py',
        auxiliary_head=True,
        norm_type='SyncBN')


def test_segmentor_complexity_counts_inference_graph(tiny_cfg_file):
    from mmseg_vvt.utils.complexity import build_segmentor
    res = segmentor_complexity(tiny_cfg_file, shape=(64, 64))
    assert set(res) >= {'params', 'flops', 'table'}
    assert isinstance(res['params'], int) and isinstance(res['flops'], int)
    model = build_segmentor(tiny_cfg_file)
    aux = sum(p.numel() for p in model.auxiliary_head.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert res['params_with_aux'] == total
    assert res['params'] == total - aux
    backbone = backbone_complexity(model.backbone, (64, 64))['flops']
    assert res['flops'] > backbone > 0
    assert 'backbone' in res['table'] and 'decode_head' in res['table']
    assert 'auxiliary_head' not in res['table']
    # FLOPs of the whole segmentor are linear in pixels too (conv head)
    res2 = segmentor_complexity(tiny_cfg_file, shape=(64, 128))
    assert math.isclose(res2['flops'] / res['flops'], 2.0, rel_tol=0.05)


def test_segmentor_complexity_accepts_config_object_and_errors(
        tiny_cfg_file, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(tiny_cfg_file)
    res = segmentor_complexity(cfg, shape=64)
    assert res['shape'] == (64, 64)
    with pytest.raises(FileNotFoundError, match='no_such.py'):
        segmentor_complexity(str(tmp_path / 'no_such.py'))
    with pytest.raises(TypeError, match='cfg_or_path'):
        segmentor_complexity(42)


def test_inplace_gemm_forms_are_counted():
    """A linear layer fused with a residual add (``out.addmm_(x, w)``), as
    VVT's inference path does, counts like the Linear it replaces."""

    class Fused(nn.Module):

        def forward(self, x, w, res, b1, b2):
            out = res.clone()
            out.addmm_(x, w)
            acc = torch.zeros(3, 4)
            acc.addbmm_(b1, b2)
            return out.sum() + acc.sum()

    x, w, res = torch.randn(5, 7), torch.randn(7, 4), torch.randn(5, 4)
    b1, b2 = torch.randn(6, 3, 7), torch.randn(6, 7, 4)
    res_on = count_flops(Fused(), (x, w, res, b1, b2))
    assert res_on['by_operator'] == {
        'addmm_': 5 * 7 * 4,
        'addbmm_': 6 * 3 * 7 * 4
    }
    # addmm_ is a linear layer's GEMM: counted with or without matmuls
    res_off = count_flops(Fused(), (x, w, res, b1, b2), count_matmuls=False)
    assert res_off['by_operator'] == {'addmm_': 5 * 7 * 4}


class _SDPA(nn.Module):

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


def test_sdpa_counts_value_width_separately():
    # kills complexity.py: sdpa assuming dv == dq
    q = torch.randn(2, 3, 5, 7)
    k, v = torch.randn(2, 3, 6, 7), torch.randn(2, 3, 6, 4)
    res = count_flops(_SDPA(), (q, k, v))
    # q k^T: 2*3 x 5x6 x 7; attn v: 2*3 x 5x6 x 4
    assert res['flops'] == 2 * 3 * 5 * 6 * 7 + 2 * 3 * 5 * 6 * 4 == 1980


class _Addmv(nn.Module):

    def forward(self, acc, m, x):
        return torch.addmv(acc, m, x)


def test_addmv_counts_its_matrix_vector_product():
    # kills complexity.py: addmv handle reading the wrong operand indices
    res = count_flops(_Addmv(),
                      (torch.zeros(5), torch.randn(5, 7), torch.randn(7)))
    assert res['by_operator'] == {'addmv': 5 * 7}


def test_einsum_macs_size_one_dimension_broadcasts():
    # kills complexity.py: einsum index size taken from a size-1 operand
    assert einsum_macs('bij,bjk->bik', [(5, 3, 4), (1, 4, 6)]) == 360
    assert einsum_macs('bij,bjk->bik', [(1, 3, 4), (5, 4, 6)]) == 360


def test_einsum_macs_implicit_output_with_three_operands():
    # kills complexity.py: implicit output keeping every index (no sum)
    # the implicit output is 'il': B C first (20*30*2) then A (10*20*2)
    assert einsum_macs('ij,jk,kl', [(10, 20), (20, 30), (30, 2)]) == 1600


def test_einsum_macs_intermediate_keeps_indices_later_operands_need():
    # kills complexity.py: intermediates keeping only the output's indices
    # e,e -> e (5); de,de -> de, not d, as e is still needed (25);
    # e,de -> d (25)
    assert einsum_macs('e,de,de,e->d', [[5], [5, 5], [5, 5], [5]]) == 55


def test_backbone_complexity_restores_training_flag():
    # kills complexity.py: backbone_complexity not restoring train/eval
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5))
    backbone_complexity(m.eval(), (64, 64))
    assert not m.training and not m[1].training
    backbone_complexity(m.train(), (64, 64))
    assert m.training and m[1].training


def test_segmentor_complexity_uses_backbone_in_channels(tmp_path):
    # kills complexity.py: segmentor input hard-coded to 3 channels
    cfg = write_tiny_config(tmp_path / 'one_channel.py')
    res = segmentor_complexity(
        cfg,
        shape=(64, 64),
        cfg_options={
            'model.backbone.in_channels': 1,
            'model.data_preprocessor.mean': [127.5],
            'model.data_preprocessor.std': [64.0],
            'model.data_preprocessor.bgr_to_rgb': False
        })
    assert res['flops'] > 0


def test_one_element_shape_means_a_square():
    # kills complexity.py: _check_shape rejecting a one-element shape
    res = backbone_complexity(nn.Conv2d(3, 4, 3), (64, ))
    assert res['shape'] == (64, 64)
    assert res['flops'] == 62 * 62 * 4 * 3 * 3 * 3


class _JitStub:
    """What the handles read of a ``torch._C.Value``: a complete tensor's
    sizes, or a constant's value."""

    def __init__(self, sizes=None, value=None):
        self._sizes, self._value = sizes, value

    def isCompleteTensor(self):
        return self._sizes is not None

    def type(self):
        return self

    def sizes(self):
        return list(self._sizes)

    def toIValue(self):
        return self._value


def test_native_mha_handle_counts_cross_attention():
    # kills complexity.py: native MHA handle using Nq for the k/v length
    from mmseg_vvt.utils.complexity import flop_handles
    handle = flop_handles()['aten::_native_multi_head_attention']
    q, kv = _JitStub((1, 5, 8)), _JitStub((1, 9, 8))
    macs = handle([q, kv, kv, _JitStub(value=8)], [_JitStub((1, 5, 8))])
    e = 8
    # in-projections of 5 queries + 9 keys + 9 values, out-projection of
    # the 5 outputs, then q k^T and attn v: 5 x 9 x 8 each
    assert macs == (5 + 9 + 9) * e * e + 5 * e * e + 2 * 5 * 9 * e == 2512
