"""tools/make_demo_data.py: the command line of
mmseg_vvt.datasets.demo_data (tests/test_datasets/test_demo_data.py tests
the data itself)."""
import os

import cv2
import pytest
from tool_modules import assert_refused, load_tool

mdd = load_tool('make_demo_data')


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / 'demo'
    out.mkdir()
    (out / 'precious.txt').write_text('keep me')
    rc = mdd.main(
        [str(out), '--num-train', '2', '--num-val', '1', '--size', '32'])
    assert rc == 1
    err = capsys.readouterr().err
    assert str(out) in err and '--force' in err
    assert sorted(os.listdir(out)) == ['precious.txt']

    rc = mdd.main([
        str(out), '--num-train', '2', '--num-val', '1', '--size', '32',
        '--force'
    ])
    assert rc == 0
    root = out / 'ADEChallengeData2016'
    assert len(os.listdir(root / 'images' / 'training')) == 2
    # --force replaces the dataset folder, nothing else in OUT.
    assert (out / 'precious.txt').read_text() == 'keep me'
    (root / 'images' / 'training' / 'stale.jpg').write_bytes(b'x')
    assert mdd.main([
        str(out), '--num-train', '1', '--num-val', '1', '--size', '32',
        '--force'
    ]) == 0
    assert os.listdir(root / 'images' /
                      'training') == ['ADE_train_00000001.jpg']


def test_cli_size_and_bad_arguments(tmp_path, capsys):
    out = tmp_path / 'demo'
    assert mdd.main(
        [str(out), '--num-train', '1', '--num-val', '1', '--size', '40',
         '24']) == 0
    img = cv2.imread(
        str(out / 'ADEChallengeData2016/images/validation/'
            'ADE_val_00000001.jpg'))
    assert img.shape == (40, 24, 3)
    assert mdd.main([str(tmp_path / 'x'), '--num-train', '0']) == 1
    assert 'num_train=0' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mdd.main([str(tmp_path / 'y'), '--size', '1', '2', '3'])


def test_bad_output_path_and_seed_are_refused_by_the_parser(tmp_path, capsys):
    a_file = tmp_path / 'a_file'
    a_file.write_text('keep')
    assert_refused(mdd.main, [
        ([str(a_file / 'demo')], 'is a file, not a folder'),
        ([str(a_file)], 'is a file; expected a folder'),
        ([str(tmp_path / 'z'), '--seed', '-1'], 'argument --seed'),
    ], capsys)
    assert a_file.read_text() == 'keep'
    assert not (tmp_path / 'z').exists()


def test_force_never_deletes_a_dataset_it_did_not_write(tmp_path, capsys):
    out = tmp_path / 'data'
    real = out / 'ADEChallengeData2016' / 'images' / 'training'
    real.mkdir(parents=True)
    (real / 'ADE_train_99999999.jpg').write_bytes(b'precious')
    small = ['--num-train', '1', '--num-val', '1', '--size', '32', '--force']
    assert mdd.main([str(out)] + small) == 1
    assert 'was not written by this generator' in capsys.readouterr().err
    assert (real / 'ADE_train_99999999.jpg').read_bytes() == b'precious'


def test_force_replaces_an_interrupted_generation(tmp_path, monkeypatch):
    from mmseg_vvt.datasets import demo_data
    out = tmp_path / 'data'
    calls = []

    def fail_second(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed half way through
        return encode(*args)

    encode = demo_data._encode
    monkeypatch.setattr(demo_data, '_encode', fail_second)
    small = ['--num-train', '2', '--num-val', '1', '--size', '32']
    with pytest.raises(KeyboardInterrupt):
        mdd.main([str(out)] + small)
    root = out / 'ADEChallengeData2016'
    assert (root / '.generating').exists()
    assert not (root / 'demo_info.json').exists()
    monkeypatch.setattr(demo_data, '_encode', encode)
    assert mdd.main([str(out)] + small + ['--force']) == 0
    assert (root / 'demo_info.json').exists()
    assert not (root / '.generating').exists()


def test_make_demo_data_one_size_is_square(tmp_path):
    # kills make_demo_data.py `[args.size[0], args.size[0]]` -> `[.., 160]`
    from tool_modules import load_tool
    tool = load_tool('make_demo_data')
    assert tool.parse_args([str(tmp_path / 'd'), '--size',
                            '32']).size == [32, 32]
