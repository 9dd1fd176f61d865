"""The hooks the VVT configs list: VVTConfigCheckHook here;
CheckpointFitHook with the checkpoint loading in test_checkpoint.py."""
from types import SimpleNamespace

import pytest
from mmengine.config import Config

import mmseg_vvt  # noqa: F401  (registers the hooks)
from mmseg_vvt.engine import VVTConfigCheckHook
from mmseg_vvt.testing import tiny_segmentor
from mmseg_vvt.utils.cli import BadInputError, check_classes


def _runner(model, **loaders):
    cfg = Config(dict(model=model, **loaders))
    return SimpleNamespace(cfg=cfg)


ADE = dict(dataset=dict(type='ADE20KDataset'))  # 150 classes


def test_config_check_hook_refuses_heads_with_fewer_classes_than_the_data():
    runner = _runner(tiny_segmentor(num_classes=4), train_dataloader=ADE)
    hook = VVTConfigCheckHook()
    with pytest.raises(BadInputError) as info:
        hook.before_train(runner)
    assert str(info.value).startswith(
        'config: model.decode_head.num_classes is 4, but the dataset '
        'of train_dataloader (ADE20KDataset) has 150 classes')
    # the test loop reads no ADE20K here: nothing to refuse
    hook.before_test(runner)
    # the config's own opt-out holds
    runner.cfg.check_num_classes = False
    VVTConfigCheckHook().before_train(runner)


def test_config_check_hook_refuses_widths_that_are_not_vvt_s():
    model = tiny_segmentor(num_classes=150)
    model['neck']['in_channels'] = [96, 192, 384, 768]  # Swin-T's
    runner = _runner(model, test_dataloader=ADE)
    with pytest.raises(BadInputError, match='model.neck.in_channels is'):
        VVTConfigCheckHook().before_test(runner)


def test_config_check_hook_checks_once_and_logs_nothing(monkeypatch):
    logged = []
    monkeypatch.setattr('mmengine.logging.print_log',
                        lambda *a, **k: logged.append(a))
    # more classes than the data: allowed; the tools log it, the hook not
    runner = _runner(
        tiny_segmentor(num_classes=200),
        train_dataloader=ADE,
        val_dataloader=ADE)
    hook = VVTConfigCheckHook()
    hook.before_train(runner)
    hook.before_val(runner)
    assert not [a for a in logged if 'extra outputs' in str(a[0])]
    check_classes(runner.cfg, ['train_dataloader'])  # the tools' call logs
    assert [a for a in logged if 'extra outputs' in str(a[0])]
    # checked once per set of loaders: a config changed mid-run is not
    # checked again at every validation
    runner.cfg.model.decode_head.num_classes = 2
    hook.before_train(runner)
    with pytest.raises(BadInputError):
        VVTConfigCheckHook().before_train(runner)
