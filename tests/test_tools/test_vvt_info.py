"""tools/vvt_info.py: stage shapes and strides of a VVT preset; bad numbers
and arch names refused by the parser."""
import pytest
from tool_modules import load_tool


def test_vvt_info_prints_the_stage_shapes(capsys):
    assert load_tool('vvt_info').main(
        ['--arch', 't', '--shape', '64', '100', '--repeats', '1']) == 0
    out = capsys.readouterr().out
    assert 'VVT-t: 12.' in out and 'input (1, 3, 64, 100)' in out
    # 100 is not a multiple of the strides: the maps round up
    for i, (c, h, w) in enumerate([(96, 16, 25), (160, 8, 13), (320, 4, 7),
                                   (512, 2, 4)]):
        assert f'stage {i + 1}: (1, {c}, {h}, {w})  (stride {4 * 2**i})' \
            in out
    assert 'not multiples of 32' in out


@pytest.mark.parametrize('argv, message', [
    (['--arch', 'huge'], "argument --arch: invalid choice: 'huge'"),
    (['--shape', '0', '64'], 'argument --shape: expected an integer >= 1'),
    (['--batch-size', '-1'], 'argument --batch-size'),
    (['--repeats', '0'], 'argument --repeats'),
])
def test_vvt_info_refuses_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        load_tool('vvt_info').parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
