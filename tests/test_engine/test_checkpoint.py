"""weights_only loading of mmengine checkpoints (mmseg_vvt.engine.checkpoint).

Real mmengine runners save and resume checkpoints here; the refusals are
checked on checkpoints that pickle objects outside the allow-list, served
from local paths, a local HTTP server and every CheckpointLoader scheme,
and on empty / truncated files and checkpoints of another model.
"""
import contextlib
import copy
import itertools
import os
import os.path as osp
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from ckpt_helpers import (NO_PROXY_ENV, serve_directory, write_malicious,
                          write_truncated)
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel, BaseModule
from mmengine.runner import Runner
from mmengine.runner import checkpoint as mme_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader
from torch.utils.data import Dataset

import mmseg_vvt  # noqa: F401  (installs the allow-list)
from mmseg_vvt.engine import (CheckpointError, CheckpointFitHook,
                              CheckpointMismatchError, CheckpointNotFoundError,
                              CorruptCheckpointError, UnsafeCheckpointError,
                              add_checkpoint_fit_hook, allowed_global_names,
                              check_checkpoint_fits, load_from_local,
                              load_model_checkpoint, register_safe_scheme,
                              safe_torch_load)


class ToyDataset(Dataset):
    metainfo = dict(classes=('a', 'b'), palette=[[0, 0, 0], [255, 0, 0]])

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(4, generator=g), y=torch.tensor(i % 2))


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x, y, mode='loss'):
        out = self.fc(x)
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(out, y))
        return out


_RUN_IDS = itertools.count()


def _runner(work_dir,
            max_iters,
            resume=False,
            load_from=None,
            model=None,
            custom_hooks=None):
    return Runner(
        model=model or ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            batch_size=4,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=2),
            dict(type='PolyLR', power=0.9, by_epoch=False, begin=2, end=6)
        ],
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
        custom_hooks=custom_hooks,
        # unique: MessageHub/MMLogger instances are global, keyed by name
        experiment_name=f'toy_{next(_RUN_IDS)}_{os.getpid()}')


class Custom:
    """Not allow-listed: a checkpoint carrying it must be refused."""

    def __init__(self):
        self.value = 1


class RunsCode:
    """Unpickling this would create a directory (arbitrary code)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


class SneakyGetattr:
    """Pickles as getattr(HistoryBuffer, name): only the statistics methods
    HistoryBuffer itself stores may be looked up."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return (getattr, (HistoryBuffer, self.name))


@contextlib.contextmanager
def _without_allowlist():
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        yield
    finally:
        torch.serialization.add_safe_globals(saved)


def test_allowlist_is_what_mmengine_checkpoints_contain(tmp_path):
    runner = _runner(tmp_path, max_iters=2)
    runner.train()
    ckpt = osp.join(tmp_path, 'iter_2.pth')
    # the globals a real runner checkpoint holds beyond torch's defaults
    with _without_allowlist():
        found = set(torch.serialization.get_unsafe_globals_in_checkpoint(ckpt))
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in found
    assert found <= set(
        allowed_global_names()), found - set(allowed_global_names())
    # and the allow-list is installed in torch (import of mmseg_vvt)
    safe = torch.serialization.get_safe_globals()
    assert HistoryBuffer in safe


def test_runner_checkpoint_needs_the_allowlist(tmp_path):
    """Without the allow-list, torch>=2.6 refuses mmengine's checkpoints
    (the bug this module fixes); with it they load with weights_only."""
    runner = _runner(tmp_path, max_iters=2)
    runner.train()
    ckpt = osp.join(tmp_path, 'iter_2.pth')
    with _without_allowlist():
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(ckpt, weights_only=True)
    loaded = torch.load(ckpt, weights_only=True)
    buffers = loaded['message_hub']['log_scalars']
    assert isinstance(buffers['train/loss'], HistoryBuffer)
    assert loaded['meta']['iter'] == 2
    # HistoryBuffer's statistics survive the round trip
    assert np.isfinite(buffers['train/loss'].mean())


def test_resume_continues_with_optimizer_state(tmp_path):
    first = _runner(tmp_path, max_iters=2)
    first.train()
    saved_opt = first.optim_wrapper.state_dict()
    saved_loss = first.message_hub.get_scalar('train/loss').data[0].copy()

    resumed = _runner(tmp_path, max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    assert osp.isfile(osp.join(tmp_path, 'iter_4.pth'))
    # the checkpoint the resumed run started from was iter_2: its optimizer
    # step count and the logged loss history carried over
    ckpt = safe_torch_load(osp.join(tmp_path, 'iter_4.pth'))
    state = ckpt['optimizer']['state']
    assert int(state[0]['step']) == 4
    assert int(saved_opt['state'][0]['step']) == 2
    history = ckpt['message_hub']['log_scalars']['train/loss'].data[0]
    np.testing.assert_allclose(history[:2], saved_loss[:2])
    assert len(history) == 4


def test_custom_object_is_refused_with_file_and_global(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(2)), extra=Custom()), path)
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(path)
    msg = str(info.value)
    assert path in msg
    assert f'{__name__}.Custom' in msg
    # the refusal must not advise switching the safety off
    assert not re.search(r'weights_only\s*=\s*False', msg)
    # the runner's resume path uses the same loader
    runner = _runner(tmp_path / 'work', max_iters=2, load_from=path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        runner.load_checkpoint(path)


def test_code_execution_is_refused(tmp_path):
    target = tmp_path / 'created_by_unpickling'
    path = str(tmp_path / 'rce.pth')
    torch.save({'x': RunsCode(str(target))}, path)
    with pytest.raises(UnsafeCheckpointError, match='rce.pth'):
        load_from_local(path)
    assert not target.exists()


def test_getattr_is_limited_to_history_buffer_methods(tmp_path):
    ok = str(tmp_path / 'ok.pth')
    torch.save({'m': SneakyGetattr('mean')}, ok)
    assert safe_torch_load(ok)['m'] is HistoryBuffer.mean

    bad = str(tmp_path / 'bad.pth')
    torch.save({'m': SneakyGetattr('register_statistics')}, bad)
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(bad)
    assert 'bad.pth' in str(info.value)
    assert 'register_statistics' in str(info.value)


def test_missing_file_is_named(tmp_path):
    path = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth') as info:
        CheckpointLoader.load_checkpoint(path)
    # a CheckpointError too: the tools print it as one line
    assert isinstance(info.value, CheckpointNotFoundError)


def test_plain_state_dict_still_loads(tmp_path):
    path = str(tmp_path / 'plain.pth')
    torch.save({'state_dict': {'w': torch.arange(3.)}, 'meta': {'a': 1}}, path)
    loaded = CheckpointLoader.load_checkpoint(path)
    assert torch.equal(loaded['state_dict']['w'], torch.arange(3.))


# -- every CheckpointLoader scheme goes through the allow-list ---------------


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A local HTTP server with ``evil.pth`` (whose unpickling would create
    ``marker``) and ``good.pth``; torch hub's cache in tmp_path."""
    for key, value in NO_PROXY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    root = tmp_path / 'www'
    root.mkdir()
    marker = tmp_path / 'pickle_ran_code'
    write_malicious(root / 'evil.pth', marker)
    torch.save({'state_dict': {'w': torch.arange(3.)}}, root / 'good.pth')
    with serve_directory(root) as url:
        yield dict(url=url, marker=marker)


def _assert_refused(load, served, name='evil.pth'):
    with pytest.raises(UnsafeCheckpointError) as info:
        load()
    msg = str(info.value)
    assert name in msg and '`os.makedirs`' in msg, msg
    assert not served['marker'].exists(), 'the pickle ran its code'
    return msg


def test_http_url_is_refused_without_running_code(served):
    url = served['url'] + '/evil.pth'
    msg = _assert_refused(lambda: CheckpointLoader.load_checkpoint(url),
                          served)
    assert url in msg
    # the same file over http(s) loads like a local one when it is clean
    good = CheckpointLoader.load_checkpoint(served['url'] + '/good.pth')
    assert torch.equal(good['state_dict']['w'], torch.arange(3.))
    # a failed download is one line naming the URL
    with pytest.raises(CheckpointError) as info:
        CheckpointLoader.load_checkpoint(served['url'] + '/gone.pth')
    assert 'gone.pth' in str(info.value) and '404' in str(info.value)


def test_pretrained_init_cfg_url_is_refused(served):
    """mmengine's generic ``init_cfg=dict(type='Pretrained')`` route."""
    module = BaseModule(
        init_cfg=dict(
            type='Pretrained', checkpoint=served['url'] + '/evil.pth'))
    module.fc = nn.Linear(2, 2)
    _assert_refused(module.init_weights, served)


@pytest.mark.parametrize('scheme,table', [
    ('torchvision://', 'get_torchvision_models'),
    ('modelzoo://', 'get_torchvision_models'),
    ('open-mmlab://', 'get_external_models'),
    ('openmmlab://', 'get_external_models'),
    ('mmcls://', 'get_mmcls_models'),
])
def test_prefix_schemes_resolving_to_urls_are_refused(served, monkeypatch,
                                                      scheme, table):
    """The model tables mmengine resolves the prefixes with point at the
    local server, as a tampered table or mirror would."""
    monkeypatch.setattr(
        mme_checkpoint, table, lambda: {
            'evil': served['url'] + '/evil.pth',
            'good': served['url'] + '/good.pth'
        })
    _assert_refused(lambda: CheckpointLoader.load_checkpoint(scheme + 'evil'),
                    served)
    if scheme != 'mmcls://':  # mmcls keeps backbone.* keys only
        good = CheckpointLoader.load_checkpoint(scheme + 'good')
        assert torch.equal(good['state_dict']['w'], torch.arange(3.))


def test_open_mmlab_local_table_entry_is_refused(served, tmp_path,
                                                 monkeypatch):
    home = tmp_path / 'mmengine_home'
    home.mkdir()
    write_malicious(home / 'evil_local.pth', served['marker'])
    monkeypatch.setenv('MMENGINE_HOME', str(home))
    monkeypatch.setattr(mme_checkpoint, 'get_external_models',
                        lambda: {'evil': 'evil_local.pth'})
    _assert_refused(
        lambda: CheckpointLoader.load_checkpoint('open-mmlab://evil'),
        served,
        name='evil_local.pth')


def test_pavi_and_ceph_schemes_are_refused(served, tmp_path, monkeypatch):
    import sys
    import types

    import mmseg_vvt.engine.checkpoint as safe
    evil = tmp_path / 'www' / 'evil.pth'

    class Model:
        name = 'evil.pth'

        def download(self, path):
            with open(evil, 'rb') as src, open(path, 'wb') as dst:
                dst.write(src.read())

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    _assert_refused(
        lambda: CheckpointLoader.load_checkpoint('pavi://runs/evil.pth'),
        served)

    class Backend:

        def get(self, filepath):
            return evil.read_bytes()

    monkeypatch.setattr(safe, 'get_file_backend', lambda *a, **k: Backend())
    for path in ('s3://bucket/evil.pth', 'cluster:petrel://b/evil.pth'):
        msg = _assert_refused(lambda: CheckpointLoader.load_checkpoint(path),
                              served)
        assert path in msg


@contextlib.contextmanager
def _scheme(prefix, loader, force=False):
    saved = dict(CheckpointLoader._schemes)
    CheckpointLoader.register_scheme(prefix, loader=loader, force=force)
    try:
        yield
    finally:
        CheckpointLoader._schemes = type(CheckpointLoader._schemes)(saved)


def test_other_registered_schemes_are_refused_before_they_run(served):
    """A loader registered by anyone else would unpickle outside the
    allow-list: it is not called at all."""
    calls = []

    def load_from_elsewhere(filename, map_location=None):
        calls.append(filename)
        return {}

    with _scheme('elsewhere://', load_from_elsewhere):
        with pytest.raises(UnsafeCheckpointError) as info:
            CheckpointLoader.load_checkpoint('elsewhere://x.pth')
    assert "'elsewhere://'" in str(info.value)
    assert 'load_from_elsewhere' in str(info.value)
    # replacing one of the safe loaders with force=True is caught the same
    with _scheme(('http://', 'https://'), load_from_elsewhere, force=True):
        with pytest.raises(UnsafeCheckpointError, match='http://'):
            CheckpointLoader.load_checkpoint(served['url'] + '/good.pth')
    assert calls == []
    # after the block mmseg_vvt's loaders serve again
    good = CheckpointLoader.load_checkpoint(served['url'] + '/good.pth')
    assert torch.equal(good['state_dict']['w'], torch.arange(3.))


def test_register_safe_scheme(tmp_path):
    torch.save({'state_dict': {'w': torch.ones(2)}}, tmp_path / 'a.pth')

    def load_from_mine(filename, map_location=None):
        return safe_torch_load(
            str(tmp_path / filename[len('mine://'):]), map_location)

    saved = dict(CheckpointLoader._schemes)
    try:
        register_safe_scheme('mine://', load_from_mine)
        loaded = CheckpointLoader.load_checkpoint('mine://a.pth')
    finally:
        CheckpointLoader._schemes = type(CheckpointLoader._schemes)(saved)
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


def test_refusal_gives_no_advice_to_switch_the_check_off(tmp_path):
    path = write_malicious(tmp_path / 'evil.pth', tmp_path / 'marker')
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(path)
    msg = str(info.value)
    # torch's own text says re-running with `weights_only` set to `False`
    # "will likely succeed"; none of that may be passed on
    assert 'False' not in msg and 'Re-running' not in msg, msg
    assert 'likely succeed' not in msg and 'arbitrary code' not in msg
    assert 'os.makedirs' in msg and 'blocked' in msg
    assert '\n' not in msg


def test_argparse_namespace_is_allowed(tmp_path):
    import argparse
    path = str(tmp_path / 'published.pth')
    torch.save(
        {
            'model': {
                'w': torch.ones(1)
            },
            'args': argparse.Namespace(lr=1e-3, model='vvt_tiny')
        }, path)
    loaded = CheckpointLoader.load_checkpoint(path)
    assert loaded['args'].model == 'vvt_tiny'


# -- empty, truncated, not a checkpoint --------------------------------------
def test_damaged_files_get_one_line_with_name_size_and_cause(tmp_path):
    good = str(tmp_path / 'good.pth')
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, good)
    size = os.path.getsize(good)
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    half = write_truncated(good, tmp_path / 'half.pth')
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    cases = {
        str(empty): ('0 bytes', 'empty'),
        half: (f'{size // 2} bytes', 'truncated'),
        str(text): ('17 bytes', 'not a PyTorch checkpoint'),
    }
    for path, (size_text, what) in cases.items():
        with pytest.raises(CorruptCheckpointError) as info:
            CheckpointLoader.load_checkpoint(path)
        msg = str(info.value)
        assert path in msg and size_text in msg and what in msg, msg
        assert '\n' not in msg


# -- a checkpoint that does not fit the model --------------------------------
def test_check_checkpoint_fits_names_first_keys_and_counts(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    sd = dict(model.state_dict())
    assert check_checkpoint_fits(model, {'state_dict': sd}, source='ok')
    # DDP-saved keys are fine, as for mmengine's loader
    assert check_checkpoint_fits(
        model, {
            f'module.{k}': v
            for k, v in sd.items()
        }, source='ddp')
    # num_batches_tracked may be absent, as mmengine does not report it
    del sd['1.num_batches_tracked']
    assert check_checkpoint_fits(model, sd, source='old')

    bad = dict(sd)
    del bad['2.bias']
    bad['3.weight'] = torch.zeros(1)
    bad['0.weight'] = torch.zeros(3, 5)
    with pytest.raises(CheckpointMismatchError) as info:
        check_checkpoint_fits(model, {'state_dict': bad}, source='b.pth')
    msg = str(info.value)
    assert "'b.pth'" in msg
    # BN's num_batches_tracked is neither required nor counted
    assert '1 of the model\'s 8 keys missing (2.bias)' in msg
    assert '1 unexpected keys (3.weight)' in msg
    assert '0.weight (3, 5) vs (3, 4)' in msg
    assert '--allow-partial-checkpoint' in msg and '\n' not in msg
    # explicit partial load: no error, False
    assert not check_checkpoint_fits(model, bad, allow_partial=True)
    with pytest.raises(
            CheckpointMismatchError, match="8 of the model's 8 keys missing"):
        check_checkpoint_fits(model, {'state_dict': {}}, source='empty')


def test_a_checkpoint_of_another_class_count_is_named_for_fine_tuning():
    # only the heads' classifiers differ: the usual fine-tuning start, not a
    # checkpoint of another config
    def segmentor(num_classes):
        head = nn.Module()
        head.conv = nn.Conv2d(3, 8, 1)
        head.conv_seg = nn.Conv2d(8, num_classes, 1)
        model = nn.Module()
        model.decode_head, model.auxiliary_head = head, copy.deepcopy(head)
        model.auxiliary_head.conv_seg = nn.Conv2d(8, num_classes, 1)
        return model

    ade = {'state_dict': segmentor(150).state_dict()}
    with pytest.raises(CheckpointMismatchError) as info:
        check_checkpoint_fits(segmentor(7), ade, source='ade.pth')
    msg = str(info.value)
    assert '4 shapes differ' in msg
    assert ("Only the heads' classifiers (conv_seg) differ: a model of "
            'another number of classes? To fine-tune from it, ask for a '
            'partial load') in msg
    other = segmentor(150)
    other.decode_head.conv = nn.Conv2d(3, 4, 1)
    other.decode_head.conv_seg = nn.Conv2d(4, 150, 1)
    with pytest.raises(
            CheckpointMismatchError,
            match='Is it a checkpoint of this config'):
        check_checkpoint_fits(other, ade, source='ade.pth')
    # the classifiers differ and a key is missing or unexpected: not just
    # another class count
    for change in ('missing', 'unexpected'):
        state = dict(ade['state_dict'])
        if change == 'missing':
            del state['decode_head.conv.weight']
        else:
            state['decode_head.extra'] = torch.zeros(1)
        with pytest.raises(CheckpointMismatchError) as info:
            check_checkpoint_fits(
                segmentor(7), {'state_dict': state}, source='ade.pth')
        assert 'Is it a checkpoint of this config' in str(info.value)
        assert 'classifiers' not in str(info.value)
        # what a report after an asked-for partial load shows
        assert info.value.summary.startswith("checkpoint 'ade.pth' does "
                                             'not fit the model: ')
        assert 'partial' not in info.value.summary


def test_load_model_checkpoint_refuses_misfit_and_loads_fit(tmp_path):
    src = nn.Linear(4, 3)
    path = str(tmp_path / 'lin.pth')
    torch.save({'state_dict': src.state_dict()}, path)
    dst = nn.Linear(4, 3)
    load_model_checkpoint(dst, path)
    assert torch.equal(dst.weight, src.weight)
    other = nn.Linear(5, 3)
    before = other.weight.detach().clone()
    with pytest.raises(CheckpointMismatchError, match='lin.pth'):
        load_model_checkpoint(other, path)
    assert torch.equal(other.weight, before)  # nothing was loaded
    load_model_checkpoint(other, path, allow_partial=True)
    assert torch.equal(other.bias, src.bias)


class WiderModel(ToyModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)


def test_fit_hook_refuses_resume_of_another_model(tmp_path):
    first = _runner(tmp_path, max_iters=2)
    first.train()
    resumed = _runner(
        tmp_path,
        max_iters=4,
        resume=True,
        model=WiderModel(),
        custom_hooks=[CheckpointFitHook()])
    with pytest.raises(CheckpointMismatchError) as info:
        resumed.train()
    msg = str(info.value)
    assert 'iter_2.pth' in msg
    assert 'fc.weight (2, 4) vs (3, 4)' in msg and '2 shapes differ' in msg
    # a partial load cannot resume: the optimizer state fits the old model
    # only (AdamW's first step failed on the shapes that differ)
    resumed = _runner(
        tmp_path,
        max_iters=4,
        resume=True,
        model=WiderModel(),
        custom_hooks=[CheckpointFitHook(allow_partial=True)])
    with pytest.raises(
            CheckpointMismatchError,
            match='a partial load cannot '
            'resume. To start a run of this config from its '
            r'weights \(fine-tuning\), give it as load_from '
            'without --resume'):
        resumed.train()

    # asked for, the partial load goes on, and the hook says it was partial
    def partial_run(work, hook, cfg_asks=False):
        run = _runner(
            tmp_path / work,
            max_iters=2,
            load_from=osp.join(tmp_path, 'iter_2.pth'),
            model=WiderModel(),
            custom_hooks=[hook])
        run.cfg.allow_partial_checkpoint = cfg_asks
        run.train()
        return run

    hook = CheckpointFitHook(allow_partial=True)
    assert hook.fits is None
    assert partial_run('p', hook).iter == 2
    assert hook.fits is False
    # the runner's config can ask for it too (mmseg's own tools:
    # --cfg-options allow_partial_checkpoint=True)
    hook = CheckpointFitHook()
    partial_run('c', hook, cfg_asks=True)
    assert hook.fits is False
    # a checkpoint that fits: fits is True, also when a partial load is allowed
    hook = CheckpointFitHook(allow_partial=True)
    whole = _runner(
        tmp_path / 'w',
        max_iters=2,
        load_from=osp.join(tmp_path, 'iter_2.pth'),
        custom_hooks=[hook])
    whole.train()
    assert hook.fits is True


def test_add_checkpoint_fit_hook_keeps_one_hook_and_the_partial_choice():
    ema = dict(type='EMAHook')
    # the configs' own entry is replaced, the other hooks stay in order
    cfg = Config(dict(custom_hooks=[dict(type='CheckpointFitHook'), ema]))
    add_checkpoint_fit_hook(cfg)
    assert cfg.custom_hooks == [
        ema, dict(type='CheckpointFitHook', allow_partial=False)
    ]
    assert cfg.allow_partial_checkpoint is False
    # a partial load asked for anywhere is kept: the flag, the config's
    # variable, its hook entry (a dict or a built hook)
    asks = [
        (Config(dict()), True),
        (Config(dict(allow_partial_checkpoint=True)), False),
        (Config(
            dict(custom_hooks=[
                dict(type='CheckpointFitHook', allow_partial=True)
            ])), False),
    ]
    for cfg, flag in asks:
        add_checkpoint_fit_hook(cfg, allow_partial=flag)
        assert cfg.custom_hooks == [
            dict(type='CheckpointFitHook', allow_partial=True)
        ]
        assert cfg.allow_partial_checkpoint is True
    # a built hook is kept (its `fits` stays readable), told the choice
    built = CheckpointFitHook(allow_partial=True)
    cfg = Config(
        dict(custom_hooks=[dict(type='CheckpointFitHook'), built, ema]))
    add_checkpoint_fit_hook(cfg)
    assert cfg.custom_hooks == [ema, built] and built.allow_partial
    built = CheckpointFitHook()
    cfg = Config(dict(custom_hooks=[built]))
    add_checkpoint_fit_hook(cfg, allow_partial=True)
    assert cfg.custom_hooks == [built] and built.allow_partial
