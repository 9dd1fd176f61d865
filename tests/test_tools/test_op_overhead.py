"""tools/op_overhead.py: host time per call of the Triton attention's ops,
beside custom_op twins of the same schema."""
import pytest
import torch
from tool_modules import load_tool

op_overhead = load_tool('op_overhead')


def test_twins_have_the_ops_schemas_and_results():
    calls = op_overhead.op_calls()
    assert len(calls) == 6
    for name, (op, args) in calls.items():
        twin = op_overhead.custom_op_twin(name + '_test', op)
        assert str(twin._opoverload._schema).split('(', 1)[1] == str(
            op._schema).split('(', 1)[1]
        got, want = twin(*args), op(*args)
        got = got if isinstance(got, tuple) else (got, )
        want = want if isinstance(want, tuple) else (want, )
        assert [(t.shape, t.dtype, t.device) for t in got if t is not None] \
            == [(t.shape, t.dtype, t.device) for t in want if t is not None]


def test_keys_backward_is_declared_to_write_its_gradient():
    op, _ = op_overhead.op_calls()['vicinity_keys_backward']
    twin = op_overhead.custom_op_twin('keys_backward_mutates', op)
    written = [
        a.name for a in twin._opoverload._schema.arguments
        if a.alias_info is not None and a.alias_info.is_write
    ]
    assert written == ['grad']


def test_prints_a_row_per_op(capsys):
    threads = torch.get_num_threads()
    op_overhead.main(['--calls', '3', '--rounds', '1'])
    out = capsys.readouterr().out
    rows = [
        line for line in out.splitlines()
        if line.startswith('| vic') or line.startswith('| gated')
    ]
    assert len(rows) == 6
    for row in rows:
        ours, twin, added = (float(c) for c in row.strip('|').split('|')[1:])
        assert ours > 0 and twin > 0
        assert abs(twin - ours - added) < 0.11
    assert 'per block' in out
    assert torch.get_num_threads() == threads  # restored


def test_counts_below_one_are_refused(capsys):
    # --rounds 0 once printed inf / nan timings with exit status 0
    for flag in ('--calls', '--rounds', '--threads'):
        with pytest.raises(SystemExit) as exit_:
            op_overhead.parse_args([flag, '0'])
        assert exit_.value.code == 2
        assert f'argument {flag}: expected an integer >= 1' in \
            capsys.readouterr().err
