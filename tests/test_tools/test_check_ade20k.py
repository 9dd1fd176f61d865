"""tools/check_ade20k.py: the command line of
mmseg_vvt.datasets.ade20k_check (tests/test_datasets/test_ade20k_check.py
tests the checks themselves): every problem printed with its path, the
exit status, the process pool."""
import os

import pytest
from PIL import Image
from tool_modules import load_tool

from mmseg_vvt.datasets import demo_data

check = load_tool('check_ade20k')


def _tree(tmp_path):
    out = tmp_path / 'ade'
    demo_data.generate(
        str(out), seed=0, num_train=4, num_val=2, size=(32, 40), verbose=False)
    return out, out / 'ADEChallengeData2016'


def test_every_problem_reported_and_cli_exit_code(tmp_path, capsys):
    out, root = _tree(tmp_path)
    paths = [
        root / 'images' / 'training' / 'ADE_train_00000001.jpg',
        root / 'images' / 'training' / 'ADE_train_00000002.jpg',
        root / 'images' / 'validation' / 'ADE_val_00000001.jpg',
    ]
    for p in paths:
        p.write_bytes(b'\xff\xd8garbage')
    os.remove(root / 'annotations' / 'training' / 'ADE_train_00000003.png')
    argv = [
        str(out), '--num-train', '4', '--num-val', '2', '--num-classes', '6',
        '--jobs', '1', '--quiet'
    ]
    assert check.main(argv) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    for p in paths:
        assert any(
            line.startswith(f'{p}: image cannot be decoded') for line in lines)
    seg3 = root / 'annotations' / 'training' / 'ADE_train_00000003.png'
    img3 = root / 'images' / 'training' / 'ADE_train_00000003.jpg'
    assert f'{img3}: image has no label (expected {seg3})' in lines
    assert any(
        line.startswith(str(root / 'annotations' / 'training'))
        and 'found 4 images and 3 labels' in line for line in lines)
    assert lines[-1] == f'5 problem(s) found in {root}'


def test_cli_ok_and_parallel_decoding(tmp_path, capsys):
    # More than 64 pairs: the process pool path is used.
    out = tmp_path / 'demo'
    demo_data.generate(
        str(out),
        seed=0,
        num_train=70,
        num_val=1,
        size=(16, 16),
        verbose=False)
    seg = out / 'ADEChallengeData2016/annotations/training/' \
        'ADE_train_00000070.png'
    Image.new('L', (16, 16), 151).save(seg)
    argv = [
        str(out), '--num-train', '70', '--num-val', '1', '--jobs', '2',
        '--quiet'
    ]
    assert check.main(argv) == 1
    assert f'{seg}: label values 151 (256 pixels) are not among the 150 ' \
        'classes' in capsys.readouterr().out
    Image.new('L', (16, 16), 150).save(seg)
    assert check.main(argv) == 0
    assert 'OK:' in capsys.readouterr().out


@pytest.mark.parametrize('argv, message', [
    (['--num-classes', '0'], 'argument --num-classes: expected an integer'),
    (['--num-classes', '255'], 'at most 254 classes'),
    (['--num-train', '-5'], 'argument --num-train: expected a count >= 0'),
    (['--num-val', '-2'], 'argument --num-val'),
    (['--jobs', '0'], 'argument --jobs: expected an integer >= 1'),
])
def test_cli_refuses_bad_numbers(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        check.main([str(tmp_path)] + argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    # -1 still skips a count check
    assert check.parse_args([str(tmp_path), '--num-train', '-1']).num_train \
        == -1


def test_check_ade20k_counts_zero_and_skips_each_split_alone(tmp_path, capsys):
    # kills check_ade20k.py `args.num_train < 0` -> `<= 0` (0 is a count,
    # only -1 skips), and `num_val=None if args.num_train < 0` (the val
    # count skipped with the train count)
    out, _ = _tree(tmp_path)  # four training and two validation pairs
    base = [str(out), '--num-classes', '6', '--jobs', '1', '--quiet']
    assert check.main(base + ['--num-train', '4', '--num-val', '2']) == 0
    assert check.main(base + ['--num-train', '0', '--num-val', '2']) == 1
    assert 'training: found 4 images and 4 labels, expected 0' in \
        capsys.readouterr().out
    assert check.main(base + ['--num-train', '-1', '--num-val', '3']) == 1
    assert 'validation: found 2 images and 2 labels, expected 3' in \
        capsys.readouterr().out
