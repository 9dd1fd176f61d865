"""mmseg_vvt.utils.cli: the tools' checks of paths, configs, devices and
numbers refuse bad input with a message naming it."""
import argparse
import os
import re

import pytest
import torch
from mmengine.config import Config

from mmseg_vvt.testing import tiny_segmentor, write_tiny_config
from mmseg_vvt.utils.cli import (BadInputError, check_classes, check_device,
                                 check_loader_workers, check_out_dir,
                                 check_out_file, check_vvt_widths, load_config,
                                 nonnegative_int, positive_float, positive_int,
                                 vvt_backbone)


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


@pytest.mark.parametrize(
    'head, options, expect',
    [
        ('fpn', {
            'model.neck.in_channels': [96, 192, 384, 768]
        },
         'model.neck.in_channels is [96, 192, 384, 768], but the VVT backbone '
         'returns [16, 32, 64, 128] channels'),
        ('fpn', {
            'model.backbone.out_indices': [1, 2, 3]
        }, 'model.neck.in_channels is [16, 32, 64, 128], but the VVT backbone '
         'returns [32, 64, 128] channels'),
        ('uper', {
            'model.decode_head.in_channels': [16, 32, 64, 96]
        }, 'model.decode_head.in_channels is [16, 32, 64, 96], but backbone '
         'outputs [0, 1, 2, 3] have [16, 32, 64, 128] channels'),
        ('uper', {
            'model.auxiliary_head.in_channels': 128
        }, 'model.auxiliary_head.in_channels is 128, but backbone output 2 '
         'has 64 channels'),
        ('fcn', {
            'model.backbone.out_indices': [0, 1]
        },
         'model.decode_head.in_index 3 picks backbone output(s) [3], but the '
         'backbone returns 2 outputs ([16, 32] channels)'),
        # the input side: VVT's patch embedding takes what the preprocessor
        # normalises (was: a ValueError in the first forward)
        ('fpn', {
            'model.backbone.in_channels': 4
        }, 'model.backbone.in_channels is 4, but model.data_preprocessor '
         'normalises 3 channels (mean=[123.675, 116.28, 103.53]); set '
         'in_channels=3'),
    ])
def test_load_config_refuses_inputs_narrower_or_wider_than_vvt(
        tmp_path, head, options, expect):
    # without the check: a conv shape error in the first forward
    cfg = write_tiny_config(
        tmp_path / 'c.py', decode_head=head, auxiliary_head=head == 'uper')
    load_config(cfg)
    with pytest.raises(BadInputError) as info:
        load_config(cfg, options)
    assert f'config {cfg}: {expect}' in str(info.value)


def test_vvt_widths_follow_out_indices_and_skip_other_backbones():
    model = tiny_segmentor(decode_head='uper', auxiliary_head=True)
    model['backbone']['out_indices'] = [1, 2, 3]
    model['decode_head'].update(in_channels=[32, 64, 128], in_index=[0, 1, 2])
    model['auxiliary_head'].update(in_channels=64, in_index=-2)
    check_vvt_widths(model)
    model['auxiliary_head']['in_index'] = 2  # now the 128-channel stage 4
    with pytest.raises(BadInputError, match='output 2 has 128 channels'):
        check_vvt_widths(model)
    # counted from the end, as Python does: -3 is the first of three outputs
    model['auxiliary_head'].update(in_channels=32, in_index=-3)
    check_vvt_widths(model)
    model['auxiliary_head']['in_index'] = -4
    with pytest.raises(BadInputError, match=r'in_index -4 picks backbone '):
        check_vvt_widths(model)
    # the outputs come in stage order, whatever the order of out_indices
    import torch

    from mmseg_vvt.models.backbones import VVT
    model['backbone']['out_indices'] = [3, 1]
    outs = VVT(**{
        k: v
        for k, v in model['backbone'].items() if k != 'type'
    })(
        torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]
    model['decode_head'].update(in_channels=[32, 128], in_index=[0, 1])
    model['auxiliary_head'].update(in_channels=32, in_index=0)
    check_vvt_widths(model)
    model['backbone'] = dict(type='ResNetV1c', depth=50)
    check_vvt_widths(model)  # not ours: mmseg's own checks apply


def test_vvt_input_channels_follow_the_preprocessor():
    model = tiny_segmentor()
    model['backbone']['in_channels'] = 4
    with pytest.raises(BadInputError, match='in_channels is 4'):
        check_vvt_widths(model)
    # four-channel data, normalised as such, is fine; so is no mean at all
    model['data_preprocessor'].update(mean=[0] * 4, std=[1] * 4)
    check_vvt_widths(model)
    model['data_preprocessor'].update(mean=None, std=None)
    check_vvt_widths(model)
    # one value is broadcast over every channel by mmseg's preprocessor
    model['data_preprocessor'].update(mean=[127.5], std=[127.5])
    check_vvt_widths(model)


def _with_data(tmp_path, num_classes, dataset, aux=False):
    loader = dict(dataset=dataset)
    return write_tiny_config(
        tmp_path / 'c.py',
        num_classes=num_classes,
        decode_head='uper',
        auxiliary_head=aux,
        train_dataloader=loader,
        test_dataloader=loader)


# (the dataset config, its classes, the dataset type named)
@pytest.mark.parametrize('dataset, count, named', [
    (dict(type='ADE20KDataset'), 150, 'ADE20KDataset'),
    (dict(type='ADE20KDataset',
          metainfo=dict(classes=list('abcd'))), 4, 'ADE20KDataset'),
    (dict(
        type='RepeatDataset', times=2,
        dataset=dict(type='CityscapesDataset')), 19, 'CityscapesDataset'),
    (dict(
        type='ConcatDataset',
        datasets=[dict(type='ADE20KDataset'),
                  dict(type='ADE20KDataset')]), 150, 'ConcatDataset'),
])
def test_load_config_refuses_heads_with_fewer_classes_than_the_data(
        tmp_path, dataset, count, named):
    # without the check: IndexError 'Target k is out of bounds' in the loss
    cfg = _with_data(tmp_path, 2, dataset)
    load_config(cfg)  # only the dataloaders the tool runs are checked
    with pytest.raises(BadInputError) as info:
        load_config(cfg, data=('train_dataloader', ))
    assert str(info.value) == (
        f'config {cfg}: model.decode_head.num_classes is 2, but the dataset '
        f'of train_dataloader ({named}) has {count} classes: its '
        f'labels 2..{count - 1} are out of the head\'s range; set '
        f'model.decode_head.num_classes={count} (or choose classes with the '
        "dataset's metainfo; check_num_classes = False in the config skips "
        "this check for heads that count classes their own way)")
    fitting = _with_data(tmp_path, count, dataset)
    assert load_config(fitting, data=('train_dataloader', 'test_dataloader'))


def test_class_check_names_the_auxiliary_head(tmp_path):
    cfg = _with_data(
        tmp_path,
        3,
        dict(type='ADE20KDataset', metainfo=dict(classes=list('abc'))),
        aux=True)
    with pytest.raises(BadInputError, match='model.auxiliary_head'):
        load_config(
            cfg, {'model.auxiliary_head.num_classes': 1},
            data=('test_dataloader', ))


def test_more_classes_than_the_data_is_logged_not_refused(
        tmp_path, monkeypatch):
    # e.g. labels kept unreduced: a head of 151 for ADE20K's 150 names
    import logging

    import mmengine.logging
    logged = []
    monkeypatch.setattr(mmengine.logging, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    cfg = _with_data(tmp_path, 151, dict(type='ADE20KDataset'))
    # (its train and test dataloaders share the dataset: logged once)
    assert load_config(cfg, data=('train_dataloader', 'test_dataloader'))
    assert [m for m in logged if m[1] >= logging.WARNING] == [
        (f'config {cfg}: model.decode_head.num_classes is 151, but the '
         'dataset of train_dataloader (ADE20KDataset) has 150 classes: the '
         "head's extra outputs are trained only if the labels use them, "
         'and pixels predicted as class 150 count as misses in the metric',
         logging.WARNING)
    ]


def test_unknown_dataset_classes_are_left_to_the_dataset(tmp_path):
    for dataset in (dict(type='NoSuchDataset'), dict(type='BaseSegDataset'),
                    dict(
                        type='ConcatDataset',
                        datasets=[
                            dict(type='ADE20KDataset'),
                            dict(type='CityscapesDataset')
                        ])):
        assert load_config(
            _with_data(tmp_path, 2, dataset), data=('train_dataloader', ))


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


def test_vvt_in_an_mmseg_config_without_its_widths_is_named(tmp_path):
    # the README's drop-in example without its decode_head line
    cfg = tmp_path / 'segformer_vvt.py'
    cfg.write_text(
        "_base_ = ['mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-"
        "512x512.py']\n"
        "custom_imports = dict(imports=['mmseg_vvt'], "
        "allow_failed_imports=False)\n"
        "model = dict(backbone=dict(_delete_=True, type='VVT', "
        "arch='small'))\n")
    with pytest.raises(BadInputError) as info:
        load_config(cfg)
    assert str(info.value).startswith(
        f'config {cfg}: model.decode_head.in_channels is [32, 64, 160, 256], '
        'but backbone outputs [0, 1, 2, 3] have [96, 160, 320, 512] channels.')
    fixed = load_config(
        cfg, {'model.decode_head.in_channels': [96, 160, 320, 512]},
        data=('train_dataloader', 'val_dataloader'))
    assert fixed.model.backbone.type == 'VVT'


def test_mmseg_own_configs_pass_the_class_check_and_refuse_vvt_as_is():
    # no false refusals: every config mmseg 1.2.2 ships that mmengine can
    # read here passes, with all three dataloaders checked (STDC's detail
    # head and SAN's head count classes their own way and are skipped)
    import glob
    import os.path as osp

    import mmseg

    from mmseg_vvt.utils.cli import segmentor_cfg
    root = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')
    configs = [
        c for c in glob.glob(osp.join(root, '**', '*.py'), recursive=True)
        if '_base_' not in c
    ]
    checked, missed = 0, []
    for path in configs:
        try:
            cfg = load_config(
                path,
                data=('train_dataloader', 'val_dataloader', 'test_dataloader'))
        except BadInputError as err:
            # configs that need packages not installed here
            assert re.search(
                r"cannot be read as an mmengine config|, but "
                r"'(mmdet|mmpretrain)' is not installed|but mmdet is "
                r'not installed', str(err)), err
            continue
        checked += 1
        # no misses: VVT swapped in with the config's widths left as they
        # were is refused, whatever reads its outputs (necks, lists of
        # heads, Mask2Former's all-output head, K-Net's inner head, BEiT's
        # one-width Feature2Pyramid)
        model = segmentor_cfg(cfg.model)
        if hasattr(model.get('backbone'), 'get'):
            model.backbone = dict(type='VVT', arch='small')
            try:
                check_vvt_widths(model)
                missed.append(path)
            except BadInputError:
                pass
    assert checked >= 600, (checked, len(configs))
    assert not missed, missed


def _cfg(head, dataset):
    from mmengine.config import Config
    return Config(
        dict(
            model=dict(decode_head=head),
            train_dataloader=dict(dataset=dataset)))


ADE = dict(type='ADE20KDataset')
TWO = dict(type='ADE20KDataset', metainfo=dict(classes=['bg', 'fg']))


def test_class_names_from_a_file_are_counted(tmp_path):
    # mmengine reads metainfo classes given as a path, one name a line
    names = tmp_path / 'classes.txt'
    names.write_text('a\nb\nc\n')
    ds = dict(type='ADE20KDataset', metainfo=dict(classes=str(names)))
    check_classes(_cfg(dict(num_classes=3), ds), ['train_dataloader'])
    with pytest.raises(BadInputError, match='has 3 classes'):
        check_classes(_cfg(dict(num_classes=2), ds), ['train_dataloader'])
    # a missing file is the dataset's to name, not ADE20K's 150
    ds['metainfo']['classes'] = str(tmp_path / 'missing.txt')
    check_classes(_cfg(dict(num_classes=2), ds), ['train_dataloader'])


def test_one_sigmoid_output_counts_as_two_classes():
    sigmoid = dict(type='CrossEntropyLoss', use_sigmoid=True)
    softmax = dict(type='CrossEntropyLoss', use_sigmoid=False)
    for num_classes in (1, 2):  # both forms train a binary sigmoid head
        check_classes(
            _cfg(
                dict(
                    num_classes=num_classes,
                    out_channels=1,
                    loss_decode=sigmoid), TWO), ['train_dataloader'])
    # one output under a softmax loss: 'Target 1 is out of bounds'
    with pytest.raises(BadInputError) as info:
        check_classes(
            _cfg(
                dict(num_classes=2, out_channels=1, loss_decode=[softmax]),
                TWO), ['train_dataloader'])
    assert ('model.decode_head.out_channels is 1 (one sigmoid output for '
            'two classes), but its loss_decode is a CrossEntropyLoss with '
            'use_sigmoid=False') in str(info.value)


def test_heads_counting_their_own_classes_and_the_opt_out(
        tmp_path, monkeypatch):
    from mmseg.models.decode_heads import STDCHead
    from mmseg.registry import MODELS

    @MODELS.register_module(force=True)
    class MyDetailHead(STDCHead):
        pass

    for kind in ('STDCHead', 'mmseg.STDCHead', STDCHead, 'MyDetailHead',
                 MyDetailHead):
        check_classes(
            _cfg(dict(type=kind, num_classes=2), ADE), ['train_dataloader'])
    head = dict(type='FCNHead', num_classes=2)
    with pytest.raises(BadInputError):
        check_classes(_cfg(head, ADE), ['train_dataloader'])
    # a subclass in a module of the user's, registered by custom_imports
    module = tmp_path / 'my_edge_heads.py'
    module.write_text('from mmseg.registry import MODELS\n'
                      'from mmseg.models.decode_heads import STDCHead\n'
                      '@MODELS.register_module(force=True)\n'
                      'class MyEdgeHead(STDCHead):\n'
                      '    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = _cfg(dict(type='MyEdgeHead', num_classes=2), ADE)
    cfg.custom_imports = dict(imports=['my_edge_heads'])
    check_classes(cfg, ['train_dataloader'])
    cfg = _cfg(head, ADE)
    cfg.check_num_classes = False
    check_classes(cfg, ['train_dataloader'])


def test_types_given_as_classes_as_in_pure_python_configs():
    from mmseg.datasets import ADE20KDataset

    from mmseg_vvt.models.backbones import VVT
    with pytest.raises(BadInputError) as info:
        check_classes(
            _cfg(dict(num_classes=2), dict(type=ADE20KDataset)),
            ['train_dataloader'])
    assert '(ADE20KDataset) has 150 classes' in str(info.value)
    for kind, found in ((VVT, True), ('mmseg.VVT', True), ('VVT', True),
                        ('ResNetV1c', False)):
        assert (vvt_backbone(dict(backbone=dict(type=kind)))
                is not None) == found
    model = tiny_segmentor(decode_head='uper')
    model['backbone']['type'] = VVT
    model['decode_head']['in_channels'] = [16, 32, 64, 96]
    with pytest.raises(BadInputError, match='in_channels is'):
        check_vvt_widths(model)


def test_deeplabv3plus_low_level_input_is_checked():
    # DepthwiseSeparableASPPHead reads backbone output 0 besides in_index
    model = tiny_segmentor(decode_head='fcn')
    model['decode_head'].update(c1_in_channels=256, c1_channels=8)
    with pytest.raises(BadInputError) as info:
        check_vvt_widths(model)
    assert ('model.decode_head.c1_in_channels is 256, but backbone output 0 '
            'has 16 channels') in str(info.value)
    model['decode_head']['c1_in_channels'] = 16
    check_vvt_widths(model)


def test_heads_reading_every_output_and_nested_heads_are_checked():
    # Mask2Former: a list of in_channels, no in_index, all outputs in order
    model = tiny_segmentor(decode_head='fcn')
    model['decode_head'] = dict(
        type='Mask2FormerHead', in_channels=[256, 512, 1024, 2048])
    with pytest.raises(BadInputError) as info:
        check_vvt_widths(model)
    assert ('model.decode_head.in_channels is [256, 512, 1024, 2048], but '
            'the VVT backbone returns [16, 32, 64, 128] channels (the head '
            'reads every output)') in str(info.value)
    model['decode_head']['in_channels'] = [16, 32, 64, 128]
    check_vvt_widths(model)
    # K-Net: the head reading VVT sits inside the decode head
    uper = tiny_segmentor(decode_head='uper')['decode_head']
    model['decode_head'] = dict(
        type='IterativeDecodeHead',
        kernel_generate_head=dict(uper, in_channels=[16, 32, 64, 96]))
    with pytest.raises(BadInputError) as info:
        check_vvt_widths(model)
    assert ('model.decode_head.kernel_generate_head.in_channels is [16, 32, '
            '64, 96], but backbone outputs [0, 1, 2, 3] have [16, 32, 64, '
            '128] channels') in str(info.value)
    model['decode_head']['kernel_generate_head'] = uper
    check_vvt_widths(model)


def test_a_list_of_necks_is_checked_at_its_first():
    import torch
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    model = tiny_segmentor(decode_head='fpn')
    fpn = model['neck']
    model['neck'] = [
        dict(fpn, in_channels=[96, 192, 384, 768]),
        dict(
            type='MultiLevelNeck',
            in_channels=[16] * 4,
            out_channels=16,
            scales=[1, 1, 1, 1])
    ]
    with pytest.raises(
            BadInputError,
            match=r'model.neck\[0\].in_channels '
            r'is \[96, 192, 384, 768\], but the VVT backbone '
            r'returns \[16, 32, 64, 128\] channels'):
        check_vvt_widths(model)
    # mmengine builds the list as a chain, whose first link reads VVT
    model['neck'][0] = fpn
    check_vvt_widths(model)
    with DefaultScope.overwrite_default_scope('mmseg'):
        segmentor = MODELS.build(model)
    logits = segmentor(torch.rand(1, 3, 64, 64), mode='tensor')
    assert logits.shape == (1, 4, 16, 16)


def test_a_one_width_neck_is_refused_for_vvt():
    # BEiT / MAE's Feature2Pyramid deconvolves outputs of one width
    model = tiny_segmentor(decode_head='fpn')
    model['neck'] = dict(type='Feature2Pyramid', embed_dim=768)
    with pytest.raises(BadInputError) as info:
        check_vvt_widths(model)
    assert ('model.neck is a Feature2Pyramid, which takes outputs of '
            'embed_dim=768 channels each, but the VVT backbone returns [16, '
            '32, 64, 128] channels') in str(info.value)


def test_knet_inner_heads_are_class_checked():
    uper = dict(type='UPerHead', num_classes=150)
    update = dict(type='KernelUpdateHead', num_classes=150)
    knet = dict(
        type='IterativeDecodeHead',
        kernel_generate_head=uper,
        kernel_update_head=[update, update])
    check_classes(_cfg(knet, ADE), ['train_dataloader'])
    knet['kernel_update_head'] = [update, dict(update, num_classes=19)]
    with pytest.raises(
            BadInputError,
            match=r'model.decode_head.'
            r'kernel_update_head\[1\].num_classes is 19'):
        check_classes(_cfg(knet, ADE), ['train_dataloader'])
    knet['kernel_update_head'] = [update]
    knet['kernel_generate_head'] = dict(uper, num_classes=19)
    with pytest.raises(
            BadInputError,
            match='model.decode_head.'
            'kernel_generate_head.num_classes is 19'):
        check_classes(_cfg(knet, ADE), ['train_dataloader'])


def test_error_text_unwraps_a_dataloader_workers_error():
    from torch._utils import ExceptionWrapper

    from mmseg_vvt.datasets import DataFileError
    from mmseg_vvt.utils.cli import error_text
    try:
        try:
            raise AssertionError('failed to load image: a.jpg')
        except AssertionError:
            raise DataFileError('a.jpg: cannot load image\nsecond line')
    except DataFileError:
        wrapped = ExceptionWrapper(where='in DataLoader worker process 0')
    with pytest.raises(DataFileError) as info:
        wrapped.reraise()  # what the main process gets
    assert 'Original Traceback' in str(info.value)
    assert error_text(info.value) == 'a.jpg: cannot load image\nsecond line'
    # raised in the main process (num_workers=0): the message as it is
    plain = DataFileError('a.jpg: cannot load image')
    assert error_text(plain) == 'a.jpg: cannot load image'


def _mmseg_config(name):
    import os.path as osp

    import mmseg
    return osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', name)


def _drop_in(path, base, model):
    """A config of the drop-in recipe: mmseg's ``base`` with ``model``."""
    path.write_text(f'_base_ = [{base!r}]\n'
                    "custom_imports = dict(imports=['mmseg_vvt'], "
                    'allow_failed_imports=False)\n'
                    f'model = {model!r}\n')
    return path


def test_vvt_in_a_resnet_config_needs_pretrained_none(tmp_path):
    # mmseg's segmentor hands model.pretrained (here ResNet's weights) to
    # the backbone (was: "VVT.__init__() got an unexpected keyword argument
    # 'pretrained'" in the build, a 440-line traceback)
    model = dict(
        backbone=dict(_delete_=True, type='VVT', arch='tiny'),
        decode_head=dict(in_channels=512),
        auxiliary_head=dict(in_channels=320))
    cfg = _drop_in(
        tmp_path / 'psp_vvt.py',
        _mmseg_config('pspnet/pspnet_r50-d8_4xb4-80k_ade20k-'
                      '512x512.py'), model)
    with pytest.raises(BadInputError) as info:
        load_config(cfg)
    assert str(info.value).startswith(
        f"config {cfg}: model.pretrained is 'open-mmlab://resnet50_v1c', "
        'which mmseg hands to the backbone, but VVT takes its weights only '
        'from model.backbone.init_cfg')
    assert 'set model.pretrained=None' in str(info.value)
    # the documented recipe sets it
    fixed = load_config(
        _drop_in(tmp_path / 'fixed.py', str(cfg), dict(pretrained=None)))
    assert fixed.model.pretrained is None
    fixed_path = tmp_path / 'fixed.py'
    with pytest.raises(BadInputError) as info:
        load_config(fixed_path, {'model.backbone.pretrained': 'vvt.pth'})
    assert str(info.value) == (
        f"config {fixed_path}: model.backbone.pretrained is 'vvt.pth', but "
        'VVT takes its weights only from model.backbone.init_cfg; set '
        "model.backbone.pretrained=None, and VVT's ImageNet weights with "
        "model.backbone.init_cfg=dict(type='Pretrained', checkpoint=PATH)")


def test_vvt_refuses_a_pretrained_argument():
    from mmseg_vvt.models.backbones import VVT
    from mmseg_vvt.testing import tiny_arch
    VVT(arch=tiny_arch(), pretrained=None)
    with pytest.raises(ValueError) as info:
        VVT(arch=tiny_arch(), pretrained='open-mmlab://resnet50_v1c')
    assert "VVT got pretrained='open-mmlab://resnet50_v1c'" in str(info.value)
    assert 'Set model.pretrained (or model.backbone.pretrained, wherever ' \
        'it was given) to None' in str(info.value)


def _non_width_refusal(model) -> str:
    """The message check_vvt_widths refuses ``model`` with, for a mistake
    that is not a width: no advice to set the widths."""
    with pytest.raises(BadInputError) as info:
        check_vvt_widths(model)
    message = str(info.value)
    assert 'Set them to the VVT widths' not in message
    return message


def _ocrnet(fcn_index, ocr_index):
    """A tiny OCRNet on the tiny VVT: an FCN head, then the OCR head."""
    model = tiny_segmentor(decode_head='fcn')
    widths = [16, 32, 64, 128]
    fcn = dict(
        model['decode_head'],
        in_index=fcn_index,
        in_channels=widths[fcn_index])
    common = {
        k: fcn[k]
        for k in ('num_classes', 'norm_cfg', 'align_corners', 'loss_decode')
    }
    ocr = dict(
        type='OCRHead',
        in_channels=widths[ocr_index],
        in_index=ocr_index,
        channels=16,
        ocr_channels=8,
        dropout_ratio=0.1,
        **common)
    model.update(
        type='CascadeEncoderDecoder', num_stages=2, decode_head=[fcn, ocr])
    return model


def test_ocrnet_heads_must_read_outputs_of_one_stride():
    import torch
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    # mmseg's ResNet OCRNet reads outputs 2 and 3, both at stride 8 there
    refused = _ocrnet(2, 3)
    message = _non_width_refusal(refused)
    assert ('model.decode_head[1] is an OCRHead, which needs '
            "model.decode_head[0]'s prediction at the size of its own input, "
            'but it reads backbone output 3 (stride 32) and '
            'model.decode_head[0] predicts at output 2 (stride 16)') in message
    check_vvt_widths(_ocrnet(3, 3))
    check_vvt_widths(_ocrnet(2, 2))
    # what the check spares: the refused config's first forward fails
    x = torch.rand(1, 3, 64, 64)
    with DefaultScope.overwrite_default_scope('mmseg'):
        fine, broken = MODELS.build(_ocrnet(3, 3)), MODELS.build(refused)
    assert fine(x, mode='tensor').shape == (1, 4, 2, 2)
    with pytest.raises(RuntimeError):
        broken(x, mode='tensor')


def test_an_index_past_the_outputs_is_not_told_to_fix_widths():
    model = tiny_segmentor(decode_head='fcn')
    model['backbone']['out_indices'] = [0, 1]
    message = _non_width_refusal(model)
    assert ('model.decode_head.in_index 3 picks backbone output(s) [3], but '
            'the backbone returns 2 outputs ([16, 32] channels): pick among '
            '0..1, or return more stages with model.backbone.out_indices'
            ) in message


def test_maskformer_heads_without_mmdet_are_named(tmp_path, monkeypatch):
    # the recipe's custom_imports replaces the base's, here mmdet.models,
    # whose import would have named mmdet (was: "BaseModule.__init__() got
    # an unexpected keyword argument 'in_channels'" in the build: mmseg
    # derives its head from BaseModule when mmdet is missing)
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: None
        if name == 'mmdet' else find_spec(name, *a))
    cfg = _drop_in(
        tmp_path / 'm2f_vvt.py',
        _mmseg_config(
            'mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py'),
        dict(
            backbone=dict(_delete_=True, type='VVT'),
            decode_head=dict(in_channels=[96, 160, 320, 512])))
    with pytest.raises(BadInputError) as info:
        load_config(cfg)
    assert str(info.value) == (
        f'config {cfg}: model.decode_head is a Mask2FormerHead, which mmseg '
        "builds on mmdet's, but mmdet is not installed (mim install mmdet)")


def _loader_cfg(dataset, steps, num_classes=4):
    from mmengine.config import Config
    model = tiny_segmentor(num_classes=num_classes)
    return Config(
        dict(
            model=model,
            test_dataloader=dict(
                dataset=dataset if steps is
                None else dict(dataset, pipeline=steps))))


def _loader_refusal(dataset, steps, num_classes=4) -> str:
    with pytest.raises(BadInputError) as info:
        check_classes(
            _loader_cfg(dataset, steps, num_classes), ['test_dataloader'])
    return str(info.value)


CITYSCAPES = dict(type='CityscapesDataset')
FOUR = dict(type='ADE20KDataset', metainfo=dict(classes=list('abcd')))


def test_label_loaders_follow_their_dataset_and_the_head():
    # ADE20K's settings left in a config moved to Cityscapes: mmseg asserts
    # at the first label (was: "cannot load label map", naming the file)
    reduce = [dict(type='CheckedLoadAnnotations', reduce_zero_label=True)]
    assert _loader_refusal(CITYSCAPES, reduce, 19) == (
        'config: test_dataloader.dataset.pipeline[0].reduce_zero_label is '
        'True, but its dataset (CityscapesDataset) loads with '
        "reduce_zero_label=False: leave it out of the loader to follow the "
        "dataset's, or set the dataset's (True where label 0 means \"other\" "
        'and is ignored, as in ADE20K)')
    check_classes(
        _loader_cfg(dict(CITYSCAPES, reduce_zero_label=True), reduce, 19),
        ['test_dataloader'])
    for follows in (None, False):  # None: the dataset's
        check_classes(
            _loader_cfg(
                CITYSCAPES,
                [dict(type='LoadAnnotations', reduce_zero_label=follows)], 19),
            ['test_dataloader'])
    # ADE20K's 150 left in the loader of a 4-class head (was: labels the
    # loss cannot take let through: "Target 8 is out of bounds")
    ade = [dict(type='CheckedLoadAnnotations', num_classes=150)]
    assert _loader_refusal(FOUR, ade) == (
        'config: test_dataloader.dataset.pipeline[0].num_classes is 150, but '
        'model.decode_head predicts 4 classes: labels 4..149 would pass the '
        'loader and fail the loss; set it to 4')
    check_classes(
        _loader_cfg(FOUR, [dict(ade[0], num_classes=4)]), ['test_dataloader'])
    # fewer than the dataset's classes: its valid labels blamed on the file
    assert _loader_refusal(FOUR, [dict(ade[0], num_classes=3)]) == (
        'config: test_dataloader.dataset.pipeline[0].num_classes is 3, but '
        'its dataset (ADE20KDataset) has 4 classes: labels of class 3 would '
        'be refused as not classes; set it to 4')
    # between the two: a head with more classes than the data (logged) and
    # a loader checking the data's
    check_classes(
        _loader_cfg(FOUR, [dict(ade[0], num_classes=4)], num_classes=5),
        ['test_dataloader'])
    # one message for every loader that shares the mistake
    from mmengine.config import Config
    unreduced = dict(type='LoadAnnotations', reduce_zero_label=False)
    both = Config(
        dict(
            model=tiny_segmentor(),
            train_dataloader=dict(dataset=dict(FOUR, pipeline=ade)),
            test_dataloader=dict(
                dataset=dict(FOUR, pipeline=[unreduced] + ade))))
    with pytest.raises(BadInputError) as info:
        check_classes(both, ['train_dataloader', 'test_dataloader'])
    message = str(info.value)
    assert message.startswith('config: train_dataloader.dataset.pipeline[0]'
                              '.num_classes is 150')
    for also in ('; test_dataloader.dataset.pipeline[0].reduce_zero_label '
                 'is False', '; test_dataloader.dataset.pipeline[1].'
                 'num_classes is 150'):
        assert also in message
    # through dataset wrappers (VOC-aug is a ConcatDataset of two)
    concat = dict(
        type='ConcatDataset',
        datasets=[dict(FOUR, pipeline=[]),
                  dict(FOUR, pipeline=ade)])
    assert _loader_refusal(concat, None).startswith(
        'config: test_dataloader.dataset.datasets[1].pipeline[0].num_classes '
        'is 150, but model.decode_head predicts 4 classes')


def test_label_loaders_inside_test_time_aug_are_checked():
    tta = [
        dict(type='CheckedLoadImageFromFile'),
        dict(
            type='TestTimeAug',
            transforms=[[dict(type='RandomFlip', prob=1.)],
                        [dict(type='CheckedLoadAnnotations', num_classes=150)],
                        [dict(type='PackSegInputs')]])
    ]
    assert _loader_refusal(FOUR, tta).startswith(
        'config: test_dataloader.dataset.pipeline[1].transforms[1][0].'
        'num_classes is 150, but model.decode_head predicts 4 classes')


def test_persistent_workers_without_workers_is_named(tmp_path):
    # mmseg's dataset bases set persistent_workers=True; num_workers=0 alone
    # was a traceback from torch's DataLoader when the runner built it
    from mmseg_vvt.datasets.checks import runner_dataloader_keys
    path = write_tiny_config(tmp_path / 'c.py')

    def check(options):
        cfg = load_config(path, options)
        check_loader_workers(cfg, runner_dataloader_keys(cfg, 'train'),
                             f'config {path}')

    check({
        'train_dataloader.num_workers': 1,
        'train_dataloader.persistent_workers': True
    })
    no_workers = {
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': True
    }
    with pytest.raises(BadInputError) as info:
        check(no_workers)
    assert str(info.value) == (
        f'config {path}: train_dataloader.persistent_workers=True needs '
        'train_dataloader.num_workers > 0; with num_workers=0 also set '
        'train_dataloader.persistent_workers=False')
    check(dict(no_workers, **{'train_dataloader.persistent_workers': False}))
    # a loader the runner does not build is not checked: validation off
    val = {
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': True,
        'val_cfg.type': 'ValLoop',
        'val_evaluator.type': 'IoUMetric'
    }
    with pytest.raises(BadInputError, match='val_dataloader.persistent'):
        check(val)
    val.pop('val_cfg.type')
    check(val)


def test_check_out_paths_need_write_and_search_permission(
        tmp_path, monkeypatch):
    # kills cli.py `os.access(base, os.W_OK | os.X_OK)` -> `os.R_OK` (in
    # _check_writable_parent) and `os.access(path, W_OK | X_OK)` ->
    # `os.F_OK` (check_out_dir); the suite runs as root, where os.access
    # grants everything, so the refusals are reached through a fake
    from mmseg_vvt.utils import cli
    from mmseg_vvt.utils.cli import (BadInputError, check_out_dir,
                                     check_out_file)
    real = os.access
    monkeypatch.setattr(
        cli.os, 'access', lambda p, mode: real(p, mode) and not (str(p) == str(
            tmp_path) and mode & (os.W_OK | os.X_OK)))
    with pytest.raises(BadInputError, match='no permission to write in'):
        check_out_file(tmp_path / 'x.json')
    with pytest.raises(BadInputError, match='no permission to write in'):
        check_out_dir(tmp_path / 'new')
    with pytest.raises(BadInputError, match='no permission to write in it'):
        check_out_dir(tmp_path)


def test_check_device_index_past_the_devices(monkeypatch):
    # kills cli.py `dev.index >= count` -> `>` (the CUDA branch of
    # test_check_device runs only on a GPU host)
    from mmseg_vvt.utils.cli import BadInputError, check_device
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert check_device('cuda') == 'cuda'
    assert check_device('cuda:1') == 'cuda:1'
    with pytest.raises(BadInputError, match='has 2 CUDA device'):
        check_device('cuda:2')


def test_persistent_workers_without_a_num_workers_key():
    # kills cli.py `loader.get('num_workers', 0)` -> default 1: torch's
    # DataLoader defaults num_workers to 0
    from mmseg_vvt.utils.cli import BadInputError, check_loader_workers
    cfg = Config(
        dict(train_dataloader=dict(persistent_workers=True, batch_size=1)))
    with pytest.raises(BadInputError, match='persistent_workers=True needs'):
        check_loader_workers(cfg, ['train_dataloader'], 'config')


FOUR = dict(type='ADE20KDataset', metainfo=dict(classes=list('abcd')))


def _four_class_loader_cfg(steps, model):
    return Config(
        dict(
            model=model,
            test_dataloader=dict(dataset=dict(FOUR, pipeline=steps))))


def test_a_loader_one_class_past_the_head_is_refused():
    # kills cli.py `count > head[1]` -> `count > head[1] + 1` (the suite
    # checks 150 against 4, never the boundary)
    import mmseg_vvt  # noqa: F401
    from mmseg_vvt.testing import tiny_segmentor
    from mmseg_vvt.utils.cli import BadInputError, check_classes
    steps = [dict(type='CheckedLoadAnnotations', num_classes=5)]
    with pytest.raises(
            BadInputError,
            match='num_classes is 5, but '
            'model.decode_head predicts 4 classes'):
        check_classes(
            _four_class_loader_cfg(steps, tiny_segmentor(num_classes=4)),
            ['test_dataloader'])


def test_the_label_loader_is_checked_against_the_last_decode_head():
    # kills cli.py `decode[-1]` -> `decode[0]`: in a cascade (OCRNet) the
    # last decode head's prediction is the model's
    import mmseg_vvt  # noqa: F401
    from mmseg_vvt.testing import tiny_segmentor
    from mmseg_vvt.utils.cli import BadInputError, check_classes
    model = tiny_segmentor(num_classes=4)
    first = dict(model['decode_head'], num_classes=8)
    model['decode_head'] = [first, dict(model['decode_head'])]
    model['type'] = 'CascadeEncoderDecoder'
    steps = [dict(type='CheckedLoadAnnotations', num_classes=8)]
    with pytest.raises(
            BadInputError,
            match=r'num_classes is 8, but '
            r'model.decode_head\[1\] predicts 4 classes'):
        check_classes(
            _four_class_loader_cfg(steps, model), ['test_dataloader'])


def test_only_cpu_and_cuda_devices_are_taken():
    # kills cli.py `dev.type not in ('cpu', 'cuda')` -> `dev.type in
    # ('meta',)`: the suite refuses only 'meta'
    from mmseg_vvt.utils.cli import BadInputError, check_device
    for other in ('mps', 'xpu', 'meta'):
        with pytest.raises(BadInputError, match="expected 'cpu', 'cuda'"):
            check_device(other)


def test_as_many_head_classes_as_the_data_logs_nothing(monkeypatch):
    # kills cli.py `num_classes > count` -> `>=` in the 'more classes'
    # warning: a head that fits the data exactly is no news
    import logging

    import mmengine.logging

    import mmseg_vvt  # noqa: F401
    from mmseg_vvt.testing import tiny_segmentor
    from mmseg_vvt.utils.cli import check_classes
    logged = []
    monkeypatch.setattr(mmengine.logging, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    check_classes(
        _four_class_loader_cfg([], tiny_segmentor(num_classes=4)),
        ['test_dataloader'])
    assert [m for m in logged if m[1] >= logging.WARNING] == []


def test_a_backbone_merged_without_delete_names_the_old_keys(tmp_path):
    # without _delete_=True the ResNet keys stay (was: "VVT.__init__() got
    # an unexpected keyword argument 'depth'" after a 416-line traceback)
    base = _mmseg_config('pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py')
    model = dict(
        pretrained=None,
        backbone=dict(type='VVT', arch='tiny'),
        decode_head=dict(in_channels=512),
        auxiliary_head=dict(in_channels=320))
    cfg = _drop_in(tmp_path / 'psp_vvt.py', base, model)
    with pytest.raises(BadInputError) as info:
        load_config(cfg)
    msg = str(info.value)
    assert msg.startswith(
        f"config {cfg}: model.backbone has ['contract_dilation', 'depth', "
        "'dilations', 'norm_cfg', 'num_stages', 'strides', 'style'], which "
        "VVT does not take (it takes ['arch', 'in_channels', ")
    assert "write backbone=dict(_delete_=True, type='VVT', ...)" in msg
    model['backbone']['_delete_'] = True
    assert load_config(_drop_in(tmp_path / 'ok.py', base,
                                model)).model.backbone.type == 'VVT'
    # a base backbone with an `arch` of its own (ConvNeXt's 'base'): the
    # keys are named, not "Unknown VVT arch 'base'"
    convnext = tmp_path / 'convnext_vvt.py'
    convnext.write_text("model = dict(backbone=dict(type='VVT', arch='base', "
                        'layer_scale_init_value=1.0))\n')
    with pytest.raises(
            BadInputError,
            match=r"has \['layer_scale_init_value'\], which VVT"):
        load_config(convnext)


def test_a_list_of_heads_without_types_says_lists_are_replaced(tmp_path):
    # mmengine replaces a base's list: OCRNet's heads written as partial
    # dicts lost their types (was: KeyError '... must contain the key
    # "type"' in the build); the documented form keeps them
    base = _mmseg_config(
        'ocrnet/ocrnet_r101-d8_4xb2-40k_cityscapes-512x1024.py')
    path = tmp_path / 'ocr_vvt.py'
    head = ('dict(_base_.model.decode_head[{}], in_index=3, '
            'in_channels=512)')
    text = (f'_base_ = [{base!r}]\n'
            "custom_imports = dict(imports=['mmseg_vvt'])\n"
            'model = dict(pretrained=None, backbone=dict(_delete_=True, '
            "type='VVT', arch='tiny'), decode_head=[{}, {}])\n")
    path.write_text(text.format(head.format(0), head.format(1)))
    cfg = load_config(path)
    assert [h.type for h in cfg.model.decode_head] == ['FCNHead', 'OCRHead']
    path.write_text(
        text.format('dict(in_index=3, in_channels=512)', head.format(1)))
    with pytest.raises(BadInputError) as info:
        load_config(path)
    assert str(info.value) == (
        f'config {path}: model.decode_head[0] has no type. A list in a config '
        "replaces the base config's list instead of merging into it; write "
        'each entry whole, e.g. dict(_base_.model.decode_head[0], '
        'in_channels=...)')


@pytest.mark.parametrize('module, said', [
    ('mmdet', "imports module 'mmdet.models', but 'mmdet' is not installed "
     "(mim install mmdet): install it, or take it out of the config's "
     'custom_imports'),
    ('not_a_module_here', "imports module 'not_a_module_here.models', but "
     "'not_a_module_here' is not installed: install it, or take it out "
     "of the config's custom_imports"),
    ('mmseg_vvt', ": no module named 'mmseg_vvt.models', though "
     "'mmseg_vvt' is installed (a misspelt module in the config's "
     "custom_imports, or one that 'mmseg_vvt' needs)"),
])
def test_a_custom_import_that_is_not_installed_is_named(
        tmp_path, monkeypatch, module, said):
    # was: mmengine's ImportError with a dump of sys.path and "set
    # PYTHONPATH", also for the Mask2Former recipe without mmdet
    import sys
    if module == 'mmseg_vvt':  # installed, the submodule misspelt
        monkeypatch.setitem(sys.modules, 'mmseg_vvt.models', None)
    else:  # absent, whether installed here or not
        monkeypatch.setitem(sys.modules, module, None)
    path = tmp_path / 'm2f.py'
    path.write_text(f"custom_imports = dict(imports=['{module}.models'], "
                    'allow_failed_imports=False)\n'
                    "model = dict(type='EncoderDecoder')\n")
    with pytest.raises(BadInputError) as info:
        load_config(path)
    assert str(info.value) == f'config {path}' + ('' if said.startswith(':')
                                                  else ' ') + said


@pytest.mark.parametrize(
    'change, warned',
    [
        ({}, True),
        ({
            'model.backbone.init_cfg': dict(type='TruncNormal', std=0.02)
        }, True),
        ({
            'resume': True
        }, True),  # nothing in work_dir to resume from
        ({
            'model.data_preprocessor.pad_val': -1
        }, False),
        ({
            'model.data_preprocessor': None
        }, False),
        ({
            'load_from': 'work/iter_8.pth'
        }, False),
        ({
            'model.backbone.init_cfg': dict(
                type='Pretrained', checkpoint='x.pth')
        }, False),
        ({
            'model.backbone.init_cfg': [
                dict(type='Constant', val=1),
                dict(type='mmseg.Pretrained', checkpoint='x.pth')
            ]
        }, False),
        ({
            'model.backbone.type': 'MixVisionTransformer'
        }, False),
    ])
def test_scratch_padding_warning_only_for_random_vvt_on_zero_pad(
        tmp_path, change, warned):
    from mmseg_vvt.utils.cli import scratch_padding_warning
    cfg = Config(dict(model=tiny_segmentor(), work_dir=str(tmp_path)))
    cfg.merge_from_dict(change)
    got = scratch_padding_warning(cfg, 'config a.py')
    assert (got is not None) == warned, got
    if warned:
        assert got.startswith('config a.py: VVT starts from random weights')
        assert 'Set model.data_preprocessor.pad_val=-1' in got


def test_scratch_padding_warning_not_for_a_run_that_resumes(tmp_path):
    # mmengine's resume finds its checkpoint through last_checkpoint
    from mmseg_vvt.utils.cli import scratch_padding_warning
    cfg = Config(
        dict(model=tiny_segmentor(), work_dir=str(tmp_path), resume=True))
    (tmp_path / 'iter_4.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    assert scratch_padding_warning(cfg) is None


def test_layer_decay_constructor_refused_only_for_vvt():
    from mmseg_vvt.utils.cli import check_optimizer_constructor
    cfg = Config(
        dict(
            model=tiny_segmentor(),
            optim_wrapper=dict(
                constructor='LearningRateDecayOptimizerConstructor')))
    with pytest.raises(BadInputError) as info:
        check_optimizer_constructor(cfg, 'config a.py')
    assert str(info.value).startswith(
        "config a.py: optim_wrapper.constructor is "
        "'LearningRateDecayOptimizerConstructor', mmseg's layer-wise "
        'learning-rate decay, which knows only ConvNeXt, BEiT and MAE')
    cfg.optim_wrapper.constructor = 'DefaultOptimWrapperConstructor'
    check_optimizer_constructor(cfg)
    cfg.optim_wrapper.constructor = 'LayerDecayOptimizerConstructor'
    cfg.model.backbone = dict(type='BEiT')
    check_optimizer_constructor(cfg)  # mmseg's own recipes
    check_optimizer_constructor(Config(dict(model=tiny_segmentor())))


def test_a_neck_of_three_inputs_is_told_about_out_indices(tmp_path):
    # FastFCN's JPU reads three outputs: the widths alone cannot be right
    # with VVT's four; the message says which out_indices give it three
    base = _mmseg_config(
        'fastfcn/fastfcn_r50-d32_jpu_aspp_4xb4-160k_ade20k-512x512.py')
    model = dict(pretrained=None, backbone=dict(_delete_=True, type='VVT'))
    cfg = _drop_in(tmp_path / 'jpu_vvt.py', base, model)
    with pytest.raises(BadInputError) as info:
        load_config(cfg)
    assert str(info.value).startswith(
        f'config {cfg}: model.neck.in_channels is (512, 1024, 2048), but '
        'the VVT backbone returns [96, 160, 320, 512] channels; it reads 3 '
        'inputs: e.g. model.backbone.out_indices=(1, 2, 3) gives it the '
        'last 3 outputs, of [160, 320, 512] channels. Set them to the VVT '
        'widths (docs/training.md, "Drop-in use in other mmseg configs")')
    # following it (and the heads after the neck, which read its outputs)
    model['backbone']['out_indices'] = (1, 2, 3)
    model['neck'] = dict(in_channels=(160, 320, 512))
    model['auxiliary_head'] = dict(in_channels=320)
    load_config(_drop_in(tmp_path / 'ok.py', base, model))
