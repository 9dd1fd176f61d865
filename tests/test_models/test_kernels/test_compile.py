"""torch.compile of VVT: eval and a training step, no graph breaks; and
torch.export (what ``torch.onnx.export`` builds on) of the eval model.

The default suite compiles with the ``aot_eager`` backend: dynamo's graph
capture and AOTAutograd's fake-tensor tracing of forward and backward
(where in-place ``out=`` chains and storage tricks used to fail) without
inductor's C++ code generation, which takes minutes on a 2-core CPU. The
slow suite compiles with inductor.
"""
import pytest
import torch
from torch.export import Dim

from mmseg_vvt.models.backbones import VVT
from mmseg_vvt.models.kernels import implementation
from mmseg_vvt.testing import tiny_arch


def _model(**kwargs):
    torch.manual_seed(0)
    model = VVT(arch=tiny_arch(), drop_path_rate=0., **kwargs)
    model.init_weights()
    return model


def test_training_path_compiles_without_graph_breaks():
    model = _model().train()
    x = torch.randn(2, 3, 64, 64)
    torch._dynamo.reset()
    report = torch._dynamo.explain(model)(x)
    assert report.graph_break_count == 0, report.break_reasons
    assert report.graph_count == 1


def _check_compiled_equals_eager(backend):
    torch._dynamo.reset()
    model = _model()
    compiled = torch.compile(model, backend=backend)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        for a, b in zip(compiled(x), model(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    model.train()
    sum(o.square().mean() for o in compiled(x)).backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    sum(o.square().mean() for o in model(x)).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad, atol=1e-5, rtol=1e-3, msg=n)


def test_compiled_eval_and_training_step_equal_eager():
    _check_compiled_equals_eager('aot_eager')


@pytest.mark.slow
def test_inductor_compiled_eval_and_training_step_equal_eager():
    _check_compiled_equals_eager('inductor')


@pytest.mark.slow
def test_demo_arch_compiles_in_eval_and_training():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = VVT(arch='tiny', drop_path_rate=0.)
    model.init_weights()
    compiled = torch.compile(model)
    x = torch.randn(2, 3, 128, 128)
    model.eval()
    with torch.no_grad():
        for a, b in zip(compiled(x), model(x)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    model.train()
    loss = sum(o.square().mean() for o in compiled(x))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize('name', ['auto', 'triton'])
def test_export_graph_is_the_readable_formulation_for_any_size(name):
    """An exported graph must not bake in a kernel's bands or chunks (they
    depend on the input size) nor hold Triton ops: export traces the
    readable formulation under every implementation, and the graph,
    exported with dynamic batch and size, computes exactly what that
    formulation computes at another batch and size."""
    model = _model().eval()
    # batch 2: export specialises a dimension of size 1
    x = torch.randn(2, 3, 64, 96)
    with implementation(name):
        program = torch.export.export(
            model, (x, ),
            dynamic_shapes=({
                0: Dim.AUTO,
                2: Dim.AUTO,
                3: Dim.AUTO
            }, ))
    ops = {
        str(n.target)
        for n in program.graph.nodes if n.op == 'call_function'
    }
    assert not [op for op in ops if 'mmseg_vvt' in op], ops
    other = torch.randn(3, 3, 100, 90)
    with torch.no_grad(), implementation('reference'):
        expected = model(other)
    got = program.module()(other)
    assert len(got) == len(expected) == 4
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=0, rtol=0)
