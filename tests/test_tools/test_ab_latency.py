"""tools/ab_latency.py: two trees, alternating fresh processes (no timing
assertions)."""
import json
import shutil

import pytest
from tool_modules import REPO, assert_refused, load_tool

from mmseg_vvt.testing import tiny_arch

ab_latency = load_tool('ab_latency')


def test_compares_two_trees_and_checks_what_each_imports(tmp_path):
    # tree B: a copy of the package, so the import check can tell them apart
    tree_b = tmp_path / 'b'
    shutil.copytree(f'{REPO}/mmseg_vvt', tree_b / 'mmseg_vvt')
    out = tmp_path / 'ab.json'
    result = ab_latency.main([
        REPO,
        str(tree_b), '--arch',
        json.dumps(tiny_arch()), '--size', '32', '--repeats', '2', '--rounds',
        '2', '--out',
        str(out)
    ])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert [len(v) for v in result['best_per_round_s'].values()] == [2, 2]
    assert all(t > 0 for v in result['best_per_round_s'].values() for t in v)
    assert result['ratio_b_over_a'] == pytest.approx(result['median_s']['b'] /
                                                     result['median_s']['a'])


def test_train_mode_times_a_training_step(tmp_path):
    result = ab_latency.main([
        REPO, REPO, '--arch',
        json.dumps(tiny_arch()), '--size', '32', '--repeats', '1', '--rounds',
        '1', '--train'
    ])
    assert result['mode'] == 'train'
    assert all(t > 0 for v in result['best_per_round_s'].values() for t in v)


def test_a_tree_without_the_package_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ab_latency.parse_args([REPO, str(tmp_path)])
    assert f"tree_b '{tmp_path}' has no mmseg_vvt/__init__.py" in (
        capsys.readouterr().err)


def test_bad_arch_threads_and_out_are_refused_before_any_round(
        tmp_path, capsys):
    old = tmp_path / 'old.json'
    old.write_text('{}')
    assert_refused(lambda argv: ab_latency.parse_args([REPO, REPO] + argv), [
        (['--arch', 'huge'], "--arch: Unknown VVT arch 'huge'"),
        (['--arch', '{"depths": [1]'], '--arch is not valid JSON'),
        (['--threads', '-5'], 'argument --threads'),
        (['--out', str(old)], 'pass --overwrite'),
        (['--out', str(tmp_path)], 'is a folder'),
        (['--overwrite'], 'there is no --out'),
    ], capsys)
    assert old.read_text() == '{}'
