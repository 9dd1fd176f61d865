"""mmseg_vvt.utils.cli: the tools' checks of paths, configs, devices and
numbers refuse bad input with a message naming it."""
import argparse

import pytest

from mmseg_vvt.testing import write_tiny_config
from mmseg_vvt.utils.cli import (BadInputError, check_device, check_out_dir,
                                 check_out_file, load_config, nonnegative_int,
                                 positive_float, positive_int)


@pytest.fixture
def cfg_file(tmp_path):
    return write_tiny_config(tmp_path / 'tiny.py', data_preprocessor=False)


def test_load_config_reads_and_merges_options(cfg_file):
    cfg = load_config(cfg_file, {'model.backbone.drop_path_rate': 0.25})
    assert cfg.model.backbone.type == 'VVT'
    assert cfg.model.backbone.drop_path_rate == 0.25


@pytest.mark.parametrize(
    'name, text, expect',
    [('syntax.py', 'x = (\n', "SyntaxError: '(' was never closed"),
     ('raises.py', 'raise RuntimeError("boom")\n', 'RuntimeError: boom'),
     ('notes.txt', 'hello\n', 'Only py/yml/yaml/json'),
     ('nomodel.py', 'a = 1\n', 'has no model entry'),
     ('base.py', "_base_ = ['missing_base.py']\n", 'missing_base.py')])
def test_load_config_names_an_unreadable_config(tmp_path, name, text, expect):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(BadInputError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert expect in str(info.value)


def test_load_config_refuses_missing_paths_and_folders(tmp_path):
    with pytest.raises(BadInputError, match='does not exist'):
        load_config(tmp_path / 'missing.py')
    with pytest.raises(BadInputError, match='is a folder'):
        load_config(tmp_path)


@pytest.mark.parametrize('arch, expect', [
    ('huge', "Unknown VVT arch 'huge'"),
    ({
        '_delete_': True,
        'embed_dims': [8]
    }, 'missing keys'),
])
def test_load_config_checks_the_vvt_arch_without_building(
        cfg_file, arch, expect):
    with pytest.raises(BadInputError) as info:
        load_config(cfg_file, {'model.backbone.arch': arch})
    assert 'model.backbone.arch' in str(info.value)
    assert expect in str(info.value)


def test_load_config_names_options_that_do_not_merge(cfg_file):
    # a dict option over a number needs _delete_: mmengine refuses
    with pytest.raises(BadInputError, match='--cfg-options'):
        load_config(cfg_file, {'model.backbone.drop_path_rate.x': 1})


def test_check_out_file(tmp_path):
    new = tmp_path / 'sub' / 'new.json'
    assert check_out_file(new) == new
    old = tmp_path / 'old.json'
    old.write_text('keep')
    with pytest.raises(BadInputError, match='pass --overwrite'):
        check_out_file(old)
    with pytest.raises(BadInputError, match='pass --force'):
        check_out_file(old, overwrite_flag='--force')
    assert check_out_file(old, overwrite=True) == old
    assert old.read_text() == 'keep'  # checked, never written
    with pytest.raises(BadInputError, match='is a folder'):
        check_out_file(tmp_path, flag='--json')
    with pytest.raises(BadInputError) as info:
        check_out_file(old / 'x.json')
    assert f'{old} is a file, not a folder' in str(info.value)


def test_check_out_dir(tmp_path):
    assert check_out_dir(tmp_path / 'a' / 'b') == tmp_path / 'a' / 'b'
    assert check_out_dir(tmp_path) == tmp_path
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    with pytest.raises(BadInputError, match='is a file; expected a folder'):
        check_out_dir(a_file)
    with pytest.raises(BadInputError, match='is a file, not a folder'):
        check_out_dir(a_file / 'x', flag='--work-dir')


def test_check_device():
    import torch
    assert check_device('cpu') == 'cpu'
    with pytest.raises(BadInputError, match="'banana' is not a device"):
        check_device('banana')
    with pytest.raises(BadInputError, match="expected 'cpu', 'cuda'"):
        check_device('meta')
    if not torch.cuda.is_available():
        with pytest.raises(BadInputError, match='sees no CUDA device'):
            check_device('cuda:0')
    else:
        n = torch.cuda.device_count()
        with pytest.raises(BadInputError, match=f'has {n} CUDA device'):
            check_device(f'cuda:{n}')


def test_int_types():
    assert positive_int('3') == 3
    assert positive_float('0.5') == 0.5
    for bad in ('0', '-1', 'nan', 'inf', 'x'):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_float(bad)
    assert nonnegative_int('0') == 0
    for fn, bad in ((positive_int, '0'), (positive_int, '-2'),
                    (nonnegative_int, '-1'), (positive_int, 'x')):
        with pytest.raises(argparse.ArgumentTypeError):
            fn(bad)


def test_cfg_options_action_refuses_malformed_items(capsys):
    from mmseg_vvt.utils.cli import CfgOptionsAction
    p = argparse.ArgumentParser()
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    args = p.parse_args(['--cfg-options', 'a=1', 'b=[1,2]', 'c.d=x'])
    assert args.cfg_options == {'a': 1, 'b': [1, 2], 'c.d': 'x'}
    for item, message in (('foo', "expected KEY=VALUE items, got 'foo'"),
                          ('=3', "got '=3'"), ('a=[1,2',
                                               'Imbalanced brackets')):
        with pytest.raises(SystemExit) as exit_:
            p.parse_args(['--cfg-options', item])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert 'argument --cfg-options' in err and message in err


@pytest.mark.parametrize(
    'tool',
    ['get_flops', 'throughput', 'first_step_grad', 'run_demo', 'train'])
def test_tools_parse_cfg_options_with_the_checked_action(tool, capsys):
    from tool_modules import load_tool
    with pytest.raises(SystemExit) as exit_:
        load_tool(tool).parse_args(['x.py', '--cfg-options', 'foo'] if tool !=
                                   'run_demo' else ['--cfg-options', 'foo'])
    assert exit_.value.code == 2
    assert "expected KEY=VALUE items, got 'foo'" in capsys.readouterr().err
