"""The hooks the VVT configs list: VVTConfigCheckHook here;
CheckpointFitHook with the checkpoint loading in test_checkpoint.py."""
import logging
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import BaseLoop

import mmseg_vvt  # noqa: F401  (registers the hooks)
from mmseg_vvt.engine import VVTConfigCheckHook
from mmseg_vvt.testing import tiny_segmentor
from mmseg_vvt.utils.cli import BadInputError, check_classes

ADE = dict(dataset=dict(type='ADE20KDataset'))  # 150 classes


def _runner(model, built=('train', ), **loaders):
    """A runner as before_run sees it: its config, and the loops named in
    ``built`` built (the others still configs)."""
    loops = {
        f'_{name}_loop':
        (mock.Mock(spec=BaseLoop) if name in built else dict(type='Loop'))
        for name in ('train', 'val', 'test')
    }
    return SimpleNamespace(cfg=Config(dict(model=model, **loaders)), **loops)


def test_heads_with_fewer_classes_than_the_data_of_a_built_loop_are_refused():
    model = tiny_segmentor(num_classes=4)
    runner = _runner(model, built=('train', 'val'), train_dataloader=ADE)
    with pytest.raises(BadInputError) as info:
        VVTConfigCheckHook().before_run(runner)
    assert str(info.value).startswith(
        'config: model.decode_head.num_classes is 4, but the dataset of '
        'train_dataloader (ADE20KDataset) has 150 classes')
    # test() builds only the test loop: an ADE20K train set is not its data
    runner = _runner(model, built=('test', ), train_dataloader=ADE)
    VVTConfigCheckHook().before_run(runner)
    runner = _runner(model, built=('test', ), test_dataloader=ADE)
    with pytest.raises(BadInputError, match='test_dataloader'):
        VVTConfigCheckHook().before_run(runner)
    # the config's own opt-out holds
    runner.cfg.check_num_classes = False
    VVTConfigCheckHook().before_run(runner)


@pytest.mark.parametrize('tta', [False, True])
def test_widths_and_input_channels_are_checked_also_under_tta(tta):
    model = tiny_segmentor(num_classes=150)
    model['neck']['in_channels'] = [96, 192, 384, 768]  # Swin-T's
    # test.py --tta wraps the segmentor in mmseg's SegTTAModel
    wrap = (lambda m: dict(type='SegTTAModel', module=m)) if tta else (
        lambda m: m)
    runner = _runner(wrap(model), built=('test', ), test_dataloader=ADE)
    with pytest.raises(BadInputError, match='model.neck.in_channels is'):
        VVTConfigCheckHook().before_run(runner)
    model = tiny_segmentor(num_classes=150)
    model['backbone']['in_channels'] = 4
    runner = _runner(wrap(model), built=('test', ), test_dataloader=ADE)
    with pytest.raises(BadInputError, match='in_channels is 4'):
        VVTConfigCheckHook().before_run(runner)
    model = tiny_segmentor(num_classes=2)
    runner = _runner(wrap(model), built=('test', ), test_dataloader=ADE)
    with pytest.raises(BadInputError, match='num_classes is 2'):
        VVTConfigCheckHook().before_run(runner)


def test_more_classes_than_the_data_is_left_to_the_tools_log(monkeypatch):
    logged = []
    monkeypatch.setattr('mmengine.logging.print_log',
                        lambda *a, **k: logged.append(a))
    runner = _runner(
        tiny_segmentor(num_classes=200),
        built=('train', 'val'),
        train_dataloader=ADE,
        val_dataloader=ADE)
    VVTConfigCheckHook().before_run(runner)
    assert not [a for a in logged if 'extra outputs' in str(a[0])]
    check_classes(runner.cfg, ['train_dataloader'])  # the tools' call logs
    assert [a for a in logged if 'extra outputs' in str(a[0])]


def test_paramwise_keys_that_match_no_parameter_are_named(monkeypatch):
    # keys of a Swin config (its position tables) match nothing in VVT, and
    # mmengine applies them to nothing without a word
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    from mmseg_vvt.engine import hooks
    logged = []
    monkeypatch.setattr(hooks, 'print_log', lambda msg, **kw: logged.append(
        (msg, kw)))
    model_cfg = tiny_segmentor(num_classes=150)
    runner = _runner(
        model_cfg,
        train_dataloader=ADE,
        optim_wrapper=dict(
            paramwise_cfg=dict(
                custom_keys={
                    'norm': dict(decay_mult=0.),
                    'relative_position_bias_table': dict(decay_mult=0.),
                    'backbone.layers.0': dict(lr_mult=0.1),
                })))
    with DefaultScope.overwrite_default_scope('mmseg'):
        runner.model = MODELS.build(model_cfg)
    VVTConfigCheckHook().before_run(runner)
    # (its random VVT on zero padding is warned of too: another test's)
    ((msg, kw), ) = [(m, k) for m, k in logged if 'custom_keys' in m]
    assert msg.startswith(
        "config: optim_wrapper.paramwise_cfg.custom_keys "
        "['relative_position_bias_table', 'backbone.layers.0'] match no "
        'parameter of the model')
    assert kw['level'] == logging.WARNING
    # test runs build no optimizer; other constructors read keys their way
    logged.clear()
    runner._train_loop = dict(type='Loop')
    VVTConfigCheckHook().before_run(runner)
    runner._train_loop = mock.Mock(spec=BaseLoop)
    runner.cfg.optim_wrapper.constructor = 'MyOptimWrapperConstructor'
    VVTConfigCheckHook().before_run(runner)
    assert [m for m, _ in logged if 'custom_keys' in m] == []


def _keys_cfg(**wrapper):
    return Config(
        dict(
            optim_wrapper=dict(
                paramwise_cfg=dict(
                    custom_keys={
                        'weight': dict(decay_mult=0.),
                        'relative_position_bias_table': dict(decay_mult=0.)
                    }),
                **wrapper)))


def test_unmatched_custom_keys_under_the_scoped_default_constructor():
    # kills hooks.py dropping 'mmengine.DefaultOptimWrapperConstructor'
    from mmseg_vvt.engine.hooks import unmatched_custom_keys
    model = torch.nn.Linear(2, 2)
    for name in ('DefaultOptimWrapperConstructor',
                 'mmengine.DefaultOptimWrapperConstructor'):
        assert unmatched_custom_keys(_keys_cfg(constructor=name), model) == [
            'relative_position_bias_table'
        ]


def test_unmatched_custom_keys_look_inside_a_wrapped_model():
    # kills hooks.py `module = getattr(model, 'module', model)` -> `model`
    # (a DDP-wrapped model's names start with 'module.')
    from mmseg_vvt.engine.hooks import unmatched_custom_keys

    class Wrapper(torch.nn.Module):

        def __init__(self, module):
            super().__init__()
            self.module = module

    cfg = _keys_cfg()
    cfg.optim_wrapper.paramwise_cfg.custom_keys = {
        'module.weight': dict(decay_mult=0.),
        'weight': dict(decay_mult=0.)
    }
    # mmengine's constructor matches the wrapped module's own names
    assert unmatched_custom_keys(cfg, Wrapper(torch.nn.Linear(
        2, 2))) == ['module.weight']


def test_zero_padding_from_random_weights_is_warned_in_training(monkeypatch):
    from mmseg_vvt.engine import hooks
    logged = []
    monkeypatch.setattr(hooks, 'print_log', lambda msg, **kw: logged.append(
        (msg, kw['level'])))
    runner = _runner(tiny_segmentor(num_classes=150), train_dataloader=ADE)
    VVTConfigCheckHook().before_run(runner)
    ((msg, level), ) = logged
    assert msg.startswith('config: VVT starts from random weights')
    assert 'Set model.data_preprocessor.pad_val=-1' in msg
    assert level == logging.WARNING
    logged.clear()
    runner._train_loop = dict(type='Loop')  # a test run: nothing to train
    VVTConfigCheckHook().before_run(runner)
    assert logged == []
