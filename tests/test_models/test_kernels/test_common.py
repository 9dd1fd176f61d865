"""What the kernels share: weights cast together (common.joined)."""
import pytest
import torch

from mmseg_vvt.models.kernels import common


def _weights():
    torch.manual_seed(0)
    return [
        torch.randn(s, requires_grad=True)
        for s in [(3, 4), (2, 4), (5, 4), (3, ), (6, 1, 3, 3)]
    ]


def test_joined_under_autocast_is_each_group_concatenated_then_cast():
    ws = _weights()
    groups = [[ws[0]], [ws[1], ws[2]], [ws[3]], [ws[4]]]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = common.joined(groups, 'cpu')
    want = [torch.cat(g).to(torch.bfloat16) for g in groups]
    assert [t.shape for t in got] == [(3, 4), (7, 4), (3, ), (6, 1, 3, 3)]
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    # one buffer, one cast
    assert len({t.untyped_storage().data_ptr() for t in got}) == 1

    grads = [torch.randn(t.shape, dtype=torch.bfloat16) for t in got]
    torch.autograd.backward(got, grads)
    want_grads = [grads[0], *grads[1].split([2, 5]), grads[2], grads[3]]
    for w, g in zip(ws, want_grads):
        assert w.grad.dtype == torch.float32
        assert torch.equal(w.grad, g.float())


def test_joined_without_autocast_or_in_float64_casts_nothing():
    ws = _weights()
    got = common.joined([[ws[0]], [ws[1], ws[2]]], 'cpu')
    assert got[0] is ws[0]
    assert torch.equal(got[1], torch.cat([ws[1], ws[2]]))
    # autocast leaves float64 alone, and so does joined
    w64 = [w.detach().double() for w in ws[:2]]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = common.joined([[w64[0]], [w64[1]]], 'cpu')
    assert got[0] is w64[0] and got[1] is w64[1]
    # autocast on another device type
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert common.joined([[ws[0]]], 'cuda')[0] is ws[0]


def test_joined_rejects_groups_whose_trailing_dims_differ():
    ws = _weights()
    with pytest.raises(ValueError, match=r'\[\(3, 4\), \(3,\)\]'):
        common.joined([[ws[0], ws[3]]], 'cpu')
