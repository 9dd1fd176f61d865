"""End-to-end runs of tools/train.py, tools/test.py and tools/dist_train.sh
on CPU, with a tiny VVT on a tiny dataset in the ADE20K layout.

Each run is a subprocess, as a user would start it; the fixtures write the
data and a config that inherits the repository's VVT-T Semantic FPN recipe
(SyncBN heads included) and only shrinks the model, crops and schedule.
"""
import glob
import json
import math
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from tool_modules import load_tool

from mmseg_vvt.testing import TINY_ARCH

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PYTHON = sys.executable
TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')
DIST_TRAIN = osp.join(REPO, 'tools', 'dist_train.sh')
DIST_TEST = osp.join(REPO, 'tools', 'dist_test.sh')
FPN_T = osp.join(REPO, 'configs', 'vvt',
                 'fpn_vvt-t_8xb2-80k_ade20k-512x512.py')
# ADE20K label values (before reduce_zero_label) used in the tiny data
COLOURS = {1: (200, 30, 30), 3: (30, 200, 30), 5: (30, 30, 200)}


def _write_split(root, split, n, seed):
    rng = np.random.default_rng(seed)
    img_dir = osp.join(root, 'images', split)
    ann_dir = osp.join(root, 'annotations', split)
    os.makedirs(img_dir)
    os.makedirs(ann_dir)
    for i in range(n):
        label = np.zeros((64, 64), np.uint8)  # 0: "other", ignored
        values = list(COLOURS)
        rng.shuffle(values)
        # three vertical bands of random widths, coloured by class
        cuts = sorted(rng.integers(12, 52, size=2))
        label[:, :cuts[0]] = values[0]
        label[:, cuts[0]:cuts[1]] = values[1]
        label[:, cuts[1]:] = values[2]
        label[:4] = 0
        img = np.zeros((64, 64, 3), np.uint8)
        for v, colour in COLOURS.items():
            img[label == v] = colour
        noise = rng.integers(-20, 21, size=img.shape)
        img = np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)
        name = f'ADE_{split}_{i:08d}'
        assert cv2.imwrite(osp.join(img_dir, name + '.jpg'), img)
        assert cv2.imwrite(osp.join(ann_dir, name + '.png'), label)


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'ade' / 'ADEChallengeData2016'
    root = str(root)
    _write_split(root, 'training', 2, seed=0)
    _write_split(root, 'validation', 2, seed=1)
    return root


CONFIG_TEMPLATE = '''
_base_ = [{base!r}]
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, **{arch!r}), drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(in_channels={widths!r}, out_channels=32),
    decode_head=dict(in_channels=[32, 32, 32, 32], channels=32))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=False),
    dataset=dict(data_root={root!r}, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.0))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False,
                        begin=0, end={iters})]
train_cfg = dict(max_iters={iters}, val_interval=1000)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, by_epoch=False),
    visualization=dict(type='SegVisualizationHook', draw=False))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
'''


def write_config(path, root, iters, base=FPN_T, arch=None):
    arch = TINY_ARCH if arch is None else arch
    with open(path, 'w') as f:
        f.write(
            CONFIG_TEMPLATE.format(
                base=base,
                arch=arch,
                widths=arch['embed_dims'],
                root=root,
                iters=iters))
    return str(path)


def run(cmd, timeout=240, env=None, check=True):
    full_env = dict(os.environ)
    full_env.update({
        'PYTHONPATH':
        REPO + os.pathsep + full_env.get('PYTHONPATH', ''),
        'OMP_NUM_THREADS':
        '1',
        'MKL_NUM_THREADS':
        '1',
        # behave as on a machine without GPU also on GPU hosts
        'CUDA_VISIBLE_DEVICES':
        '',
    })
    full_env.update(env or {})
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{cmd} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-6000:]}')
    return proc


def scalars(work_dir):
    """Training scalars per iteration from mmengine's LocalVisBackend."""
    files = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert files, f'no scalars.json under {work_dir}'
    runs = []
    for path in files:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        runs.append([r for r in rows if 'loss' in r])
    return runs


def load_ckpt(path):
    import mmseg_vvt  # noqa: F401  (allow-list for weights_only)
    return torch.load(path, map_location='cpu', weights_only=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def trained(ade_root, tmp_path_factory):
    """One 8-iteration training run shared by the train and test checks."""
    tmp = tmp_path_factory.mktemp('train')
    cfg = write_config(tmp / 'tiny_fpn.py', ade_root, iters=8)
    work_dir = str(tmp / 'work')
    # the tools' default allocator policy (the suite's process keeps glibc's)
    proc = run([PYTHON, TRAIN, cfg, '--work-dir', work_dir],
               env={'MMSEG_VVT_CPU_ALLOCATOR': 'keep'})
    return dict(cfg=cfg, work_dir=work_dir, log=proc.stdout)


def test_train_loss_goes_down(trained):
    (rows, ) = scalars(trained['work_dir'])
    assert [r['step'] for r in rows] == list(range(1, 9))
    losses = [r['loss'] for r in rows]
    # the same 2 images every iteration: the loss must drop, and steadily
    assert losses[-1] < 0.9 * losses[0], losses
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 6, losses
    assert osp.isfile(osp.join(trained['work_dir'], 'iter_8.pth'))
    # SyncBN recipe on CPU: the heads are built with BN, and said so
    assert 'SyncBN needs CUDA tensors' in trained['log']
    assert 'model.decode_head.norm_cfg' in trained['log']
    # CPU training reuses freed memory (mmseg_vvt/engine/allocator.py)
    assert ('CPU training: glibc malloc keeps freed memory for reuse'
            in trained['log'])


def test_checkpoint_holds_only_allowlisted_globals(trained):
    """An mmseg runner checkpoint needs exactly the allow-listed globals
    beyond torch's defaults (what mmseg_vvt.engine allows)."""
    import mmseg_vvt.engine as engine
    path = osp.join(trained['work_dir'], 'iter_8.pth')
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        found = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    finally:
        torch.serialization.add_safe_globals(saved)
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in found
    assert found <= set(engine.allowed_global_names())
    ckpt = load_ckpt(path)
    assert ckpt['meta']['iter'] == 8
    assert ckpt['meta']['dataset_meta']['classes'][0] == 'wall'


def test_test_py_prints_miou_and_writes_json(trained, tmp_path):
    ckpt = osp.join(trained['work_dir'], 'iter_8.pth')
    work_dir = str(tmp_path / 'eval')
    proc = run([PYTHON, TEST, trained['cfg'], ckpt, '--work-dir', work_dir])
    out = proc.stdout
    assert 'per class results' in out
    assert 'mIoU' in out and 'aAcc' in out

    (path, ) = glob.glob(osp.join(work_dir, 'eval_*.json'))
    with open(path) as f:
        record = json.load(f)
    assert record['config'] == trained['cfg']
    assert record['checkpoint'] == ckpt
    assert record['dataset'] == 'ADE20KDataset'
    assert set(record['metrics']) == {'aAcc', 'mIoU', 'mAcc'}
    assert record['test'] == dict(
        tta=False, partial_checkpoint=False, cfg_options={})
    # how far the checkpoint was trained, from its meta
    assert (record['checkpoint_iter'], record['checkpoint_epoch']) == (8, 0)
    assert len(record['per_class']) == 150
    assert set(record['per_class'][0]) == {'class', 'IoU', 'Acc'}
    # the summary printed on the console is the one in the file
    assert f"mIoU: {record['metrics']['mIoU']:.4f}" in out
    # ADE20K label 1 -> class 0 ('wall') is in the validation images
    assert record['per_class'][0]['class'] == 'wall'
    assert record['per_class'][0]['Acc'] is not None
    assert osp.basename(path) == f"eval_{record['timestamp']}.json"
    # mmengine's own JSON log of the run holds the same per-class values
    # (the configs' PerClassIoUMetric returns them)
    ts = record['timestamp']
    with open(osp.join(work_dir, ts, f'{ts}.json')) as f:
        logged = json.load(f)
    assert logged['per_class'] == record['per_class']
    assert logged['mIoU'] == pytest.approx(record['metrics']['mIoU'])

    # a second evaluation into the same work dir keeps the first file;
    # --show-dir paints the predictions
    before = open(path).read()
    show_dir = str(tmp_path / 'vis')
    run([
        PYTHON, TEST, trained['cfg'], ckpt, '--work-dir', work_dir,
        '--show-dir', show_dir, '--cfg-options',
        'default_hooks.visualization.interval=1'
    ])
    files = sorted(glob.glob(osp.join(work_dir, 'eval_*.json')))
    assert len(files) == 2
    assert open(path).read() == before
    with open(files[1]) as f:  # the overrides are recorded with the result
        assert json.load(f)['test']['cfg_options'] == {
            'default_hooks.visualization.interval': 1
        }
    painted = glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True)
    assert len(painted) == 2  # one per validation image
    # where --help says they go
    assert {osp.dirname(p)
            for p in painted} == {osp.join(show_dir, 'vis_data', 'vis_image')}


def test_test_py_missing_checkpoint_is_named(trained, tmp_path):
    missing = str(tmp_path / 'no_such.pth')
    proc = run([PYTHON, TEST, trained['cfg'], missing], check=False)
    assert proc.returncode == 2
    assert 'no_such.pth' in proc.stdout and 'does not exist' in proc.stdout


def test_test_py_records_the_iteration_the_checkpoint_reached(
        trained, tmp_path, capsys):
    """iter_2.pth of the 8-iteration run is tabled as 2 iterations, not as
    the config's 8."""
    ckpt = osp.join(trained['work_dir'], 'iter_2.pth')
    work_dir = str(tmp_path / 'eval')
    run([PYTHON, TEST, trained['cfg'], ckpt, '--work-dir', work_dir])
    (path, ) = glob.glob(osp.join(work_dir, 'eval_*.json'))
    with open(path) as f:
        record = json.load(f)
    assert (record['checkpoint_iter'], record['checkpoint_epoch']) == (2, 0)
    assert load_tool('collect_results').main([work_dir, '--no-flops']) == 0
    header, row = [[c.strip() for c in ln.strip('|').split('|')]
                   for ln in capsys.readouterr().out.splitlines()
                   if ln.startswith('|')][::2]
    assert dict(zip(header, row))['Lr schd'] == '2 (of 8)'


def test_test_py_refuses_out_folder_with_earlier_predictions(
        trained, tmp_path):
    ckpt = osp.join(trained['work_dir'], 'iter_8.pth')
    out = tmp_path / 'preds'
    out.mkdir()
    earlier = out / 'ADE_validation_00000000.png'
    earlier.write_bytes(b'an earlier run')
    cmd = [
        PYTHON, TEST, trained['cfg'], ckpt, '--work-dir',
        str(tmp_path / 'eval'), '--out',
        str(out)
    ]
    proc = run(cmd, check=False)
    _one_line_error(proc, f'--out {out} already holds files', '--overwrite')
    assert 'System environment' not in proc.stdout  # before the runner
    assert earlier.read_bytes() == b'an earlier run'

    run(cmd + ['--overwrite'])
    assert sorted(p.name for p in out.iterdir()) == [
        'ADE_validation_00000000.png', 'ADE_validation_00000001.png'
    ]
    assert cv2.imread(str(earlier), cv2.IMREAD_UNCHANGED).shape == (64, 64)


@pytest.fixture
def tool_env(monkeypatch):
    # the tools set LOCAL_RANK when it is unset: keep it out of this process
    monkeypatch.setenv('LOCAL_RANK', '0')


def _refused(tool_main, argv):
    """The one ``error: ...`` line a tool stopped with (SystemExit)."""
    with pytest.raises(SystemExit) as info:
        tool_main(argv)
    message = info.value.code
    assert isinstance(message, str) and message.startswith('error: '), \
        message
    assert '\n' not in message
    return message


@pytest.mark.parametrize('flag', ['--out', '--work-dir'])
@pytest.mark.parametrize('under', [False, True])
def test_test_py_out_or_work_dir_that_is_a_file(trained, tmp_path, tool_env,
                                                flag, under):
    a_file = tmp_path / 'a_file'
    a_file.write_text('not a folder')
    path = a_file / 'sub' if under else a_file
    argv = [trained['cfg'], osp.join(trained['work_dir'], 'iter_8.pth')]
    if flag == '--out':
        argv += ['--work-dir', str(tmp_path / 'eval')]
    message = _refused(load_tool('test').main, argv + [flag, str(path)])
    expected = f'{path}: {a_file} is a file, not a folder' if under else \
        f'{path} is a file; expected a folder'
    assert message == f'error: {flag} {expected}'
    assert a_file.read_text() == 'not a folder'


def test_train_py_names_a_bad_allocator_choice(trained, tmp_path, tool_env,
                                               monkeypatch):
    monkeypatch.setenv('MMSEG_VVT_CPU_ALLOCATOR', 'tcmalloc')
    message = _refused(
        load_tool('train').main,
        [trained['cfg'], '--work-dir',
         str(tmp_path / 'work')])
    assert message == ("error: MMSEG_VVT_CPU_ALLOCATOR must be one of "
                       "('keep', 'default'), got 'tcmalloc'")
    assert not (tmp_path / 'work').exists()


def test_train_py_work_dir_that_is_a_file(trained, tmp_path, tool_env):
    a_file = tmp_path / 'a_file'
    a_file.write_text('not a folder')
    message = _refused(
        load_tool('train').main, [trained['cfg'], '--work-dir',
                                  str(a_file)])
    assert message == (f'error: --work-dir {a_file} is a file; expected a '
                       'folder')


@pytest.mark.parametrize('weights', ['missing', 'segmentor', 'deeper'])
def test_train_py_pretrained_weights_that_cannot_serve_are_one_line(
        trained, tmp_path, tool_env, weights):
    """The configs' default state before the ImageNet weights are converted
    (a missing file); a segmentor checkpoint given without its prefix; the
    weights of a shallower VVT (was: loaded in part with a warning)."""
    path = osp.join(trained['work_dir'], 'iter_8.pth')
    init = dict(_delete_=True, type='Pretrained', checkpoint=path)
    options = []
    if weights == 'missing':
        path = init['checkpoint'] = str(tmp_path / 'vvt_small_backbone.pth')
        expected = ('does not exist', 'tools/convert_vvt_checkpoint.py',
                    'model.backbone.init_cfg=None')
    elif weights == 'segmentor':
        expected = ("prefix='backbone.'", )
    else:
        init['prefix'] = 'backbone.'
        options = ['--cfg-options', 'model.backbone.arch.depths=[2,1,1,1]']
        expected = ('does not fit the VVT backbone', 'keys missing',
                    'strict=False')
    cfg = tmp_path / 'pretrained.py'
    cfg.write_text(f'_base_ = [{trained["cfg"]!r}]\n'
                   f'model = dict(backbone=dict(init_cfg={init!r}))\n')
    message = _refused(
        load_tool('train').main,
        [str(cfg), '--work-dir',
         str(tmp_path / 'work'), *options])
    assert path in message
    for part in expected:
        assert part in message, message


BAD_CONFIGS = {
    'not_a_config': ('notes.txt', 'just some notes\n', 'cannot be read'),
    'syntax_error': ('broken.py', 'model = dict(\n', 'SyntaxError'),
    'no_model':
    ('no_model.py', 'crop_size = (64, 64)\n', 'has no model entry'),
}

# --cfg-options that merge but would fail in the first forward or loss
BAD_OPTIONS = {
    'bad_arch': ('model.backbone.arch=huge', ('model.backbone.arch', 'huge')),
    'few_classes': ('model.decode_head.num_classes=2',
                    ('model.decode_head.num_classes is 2', '150 classes')),
    'neck_widths': ('model.neck.in_channels=[8,8,8,8]',
                    ('model.neck.in_channels is [8, 8, 8, 8]', 'VVT')),
}


@pytest.mark.parametrize('tool_name', ['test', 'train'])
@pytest.mark.parametrize('case', sorted(BAD_CONFIGS) + sorted(BAD_OPTIONS))
def test_tools_refuse_bad_configs_in_one_line(trained, tmp_path, tool_env,
                                              tool_name, case):
    if case in BAD_OPTIONS:
        option, parts = BAD_OPTIONS[case]
        cfg, extra = trained['cfg'], ['--cfg-options', option]
        parts = (cfg, ) + parts
    else:
        name, text, part = BAD_CONFIGS[case]
        cfg, extra = str(tmp_path / name), []
        with open(cfg, 'w') as f:
            f.write(text)
        parts = (cfg, part)
    argv = [cfg]
    if tool_name == 'test':
        argv.append(osp.join(trained['work_dir'], 'iter_8.pth'))
    argv += ['--work-dir', str(tmp_path / 'work')] + extra
    message = _refused(load_tool(tool_name).main, argv)
    for part in parts:
        assert part in message, message
    assert not osp.exists(tmp_path / 'work')  # stopped before the runner


def test_train_py_refuses_layer_decay_for_vvt_in_one_line(
        trained, tmp_path, tool_env):
    # mmseg's constructor knows ConvNeXt / BEiT / MAE only (was: a bare
    # NotImplementedError once the runner built the optimizer)
    for name in ('LearningRateDecayOptimizerConstructor',
                 'LayerDecayOptimizerConstructor'):
        message = _refused(
            load_tool('train').main, [
                trained['cfg'], '--work-dir',
                str(tmp_path / 'work'), '--cfg-options',
                f'optim_wrapper.constructor={name}'
            ])
        assert message.startswith(
            f"error: config {trained['cfg']}: optim_wrapper.constructor is "
            f"'{name}', mmseg's layer-wise learning-rate decay"), message
        assert "optim_wrapper=dict(_delete_=True, type='OptimWrapper'" in \
            message
    assert not osp.exists(tmp_path / 'work')


def test_train_py_warns_once_of_zero_padding_from_random_weights(trained):
    # the fixture trains from random weights (init_cfg=None) with the ADE20K
    # configs' pad_val=0; its VVTConfigCheckHook says it, train.py not again
    warning = ('VVT starts from random weights (no Pretrained model.backbone.'
               'init_cfg, no load_from) and the data preprocessor pads '
               'training crops with model.data_preprocessor.pad_val=0')
    assert trained['log'].count(warning) == 1, trained['log'][-3000:]
    assert f"config {trained['cfg']}: {warning}" in trained['log']


def test_train_py_bad_config_exits_nonzero_without_traceback(tmp_path):
    cfg = tmp_path / 'no_model.py'
    cfg.write_text('crop_size = (64, 64)\n')
    proc = run([PYTHON, TRAIN, str(cfg)], timeout=120, check=False)
    _one_line_error(proc, str(cfg), 'has no model entry')


CRASH_HOOK = '''
import os
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class HardStopAfterIter(Hook):
    """Simulates a killed job: the process dies without any clean-up."""

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at:
            os._exit(17)
'''


def test_interrupted_run_resumes(ade_root, tmp_path):
    cfg = write_config(tmp_path / 'tiny_fpn.py', ade_root, iters=6)
    (tmp_path / 'crash_hook.py').write_text(CRASH_HOOK)
    crashing = tmp_path / 'tiny_fpn_crash.py'
    crashing.write_text(
        "_base_ = ['./tiny_fpn.py']\n"
        "custom_imports = dict(imports=['mmseg_vvt', 'crash_hook'])\n"
        "custom_hooks = [\n"
        "    dict(type='HardStopAfterIter', at=3, priority='LOWEST')]\n")
    work_dir = str(tmp_path / 'work')
    # killed after iteration 3; the last checkpoint is iter_2
    proc = run(
        [PYTHON, TRAIN, str(crashing), '--work-dir', work_dir],
        env={'PYTHONPATH': f'{REPO}{os.pathsep}{tmp_path}'},
        check=False)
    assert proc.returncode == 17, proc.stdout[-3000:]
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    assert not osp.isfile(osp.join(work_dir, 'iter_4.pth'))
    step_at_2 = int(
        load_ckpt(osp.join(work_dir,
                           'iter_2.pth'))['optimizer']['state'][0]['step'])
    assert step_at_2 == 2

    proc = run([PYTHON, TRAIN, cfg, '--work-dir', work_dir, '--resume'])
    assert 'resumed epoch: 0, iter: 2' in proc.stdout
    first, second = scalars(work_dir)
    assert [r['step'] for r in first] == [1, 2, 3]
    # the resumed run continues at iteration 3 and stops at max_iters
    assert [r['step'] for r in second] == [3, 4, 5, 6]
    final = load_ckpt(osp.join(work_dir, 'iter_6.pth'))
    assert final['meta']['iter'] == 6
    # AdamW's state came from iter_2.pth: 2 steps there + 4 after resuming
    state = final['optimizer']['state']
    assert all(int(s['step']) == 6 for s in state.values())


def test_resume_without_checkpoint_warns(ade_root, tmp_path):
    cfg = write_config(tmp_path / 'tiny_fpn.py', ade_root, iters=1)
    work_dir = str(tmp_path / 'empty')
    proc = run([PYTHON, TRAIN, cfg, '--work-dir', work_dir, '--resume'])
    assert 'no checkpoint found in' in proc.stdout
    assert osp.isfile(osp.join(work_dir, 'iter_1.pth'))


def test_amp_on_cpu_is_refused(ade_root, tmp_path):
    cfg = write_config(tmp_path / 'tiny_fpn.py', ade_root, iters=1)
    proc = run(
        [PYTHON, TRAIN, cfg, '--amp', '--work-dir',
         str(tmp_path / 'w')],
        check=False)
    assert proc.returncode == 2
    assert '--amp' in proc.stdout and 'CUDA' in proc.stdout
    assert not osp.exists(osp.join(tmp_path, 'w', 'iter_1.pth'))


def test_dist_train_two_cpu_processes(ade_root, tmp_path):
    cfg = write_config(tmp_path / 'tiny_fpn.py', ade_root, iters=2)
    work_dir = str(tmp_path / 'work')
    proc = run(['bash', DIST_TRAIN, cfg, '2', '--work-dir', work_dir],
               env={
                   'PYTHON': PYTHON,
                   'PORT': str(free_port())
               })
    out = proc.stdout
    # every rank closes its process group (an open gloo group can abort
    # the process at exit, after a finished run)
    assert 'terminate called' not in out
    assert 'Distributed training: True' in out
    assert "backend 'nccl' replaced by gloo" in out
    assert 'SyncBN needs CUDA tensors' in out
    # every gradient fits DDP's buckets as laid out (no per-step copy)
    assert 'Grad strides do not match' not in out
    ckpt = load_ckpt(osp.join(work_dir, 'iter_2.pth'))
    assert ckpt['meta']['iter'] == 2
    (rows, ) = scalars(work_dir)
    assert [r['step'] for r in rows] == [1, 2]
    assert all(np.isfinite(r['loss']) for r in rows)


def test_dist_test_two_cpu_processes(trained, tmp_path):
    ckpt = osp.join(trained['work_dir'], 'iter_8.pth')
    work_dir = str(tmp_path / 'eval')
    proc = run(
        ['bash', DIST_TEST, trained['cfg'], ckpt, '2', '--work-dir', work_dir],
        env={
            'PYTHON': PYTHON,
            'PORT': str(free_port())
        })
    assert 'per class results' in proc.stdout
    assert 'terminate called' not in proc.stdout
    # rank 0 alone writes the results
    (path, ) = glob.glob(osp.join(work_dir, 'eval_*.json'))
    with open(path) as f:
        record = json.load(f)
    assert len(record['per_class']) == 150


DROPIN_TEMPLATE = '''
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmseg_vvt'], allow_failed_imports=False)
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(_delete_=True, type='VVT', arch={arch!r},
                  drop_path_rate=0.0),
    decode_head=dict(in_channels={widths!r}, channels=32))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=train_pipeline))
train_cfg = dict(max_iters=2, val_interval=1000)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=2))
'''


def test_mmseg_config_with_vvt_backbone_trains(ade_root, tmp_path):
    """Drop-in: mmseg's own SegFormer ADE20K config, backbone swapped."""
    cfg = tmp_path / 'segformer_vvt.py'
    cfg.write_text(
        DROPIN_TEMPLATE.format(
            arch=TINY_ARCH, widths=TINY_ARCH['embed_dims'], root=ade_root))
    work_dir = str(tmp_path / 'work')
    proc = run([PYTHON, TRAIN, str(cfg), '--work-dir', work_dir])
    ckpt = load_ckpt(osp.join(work_dir, 'iter_2.pth'))
    # random weights, mmseg's pad_val=0 and no VVTConfigCheckHook listed:
    # train.py says it, once, into the run's log file too
    (log, ) = glob.glob(osp.join(work_dir, '*', '*.log'))
    for text in (proc.stdout, open(log).read()):
        assert text.count(f'config {cfg}: VVT starts from random weights') \
            == 1, text[-3000:]
    assert any(
        k.startswith('backbone.block1.0.attn.') for k in ckpt['state_dict'])
    assert 'decode_head.fusion_conv.conv.weight' in ckpt['state_dict']
    (rows, ) = scalars(work_dir)
    assert [r['step'] for r in rows] == [1, 2]


FAKE_SRUN = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$SRUN_ARGS_FILE"
"""


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
def test_slurm_scripts_call_srun(tmp_path, script):
    """Without a cluster: a stand-in srun records what the script asks."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    args_file = tmp_path / 'args.txt'
    extra = ['ckpt.pth'] if script == 'slurm_test.sh' else []
    proc = subprocess.run(
        ['bash',
         osp.join(REPO, 'tools', script), 'gpu', 'job', 'cfg.py'] + extra +
        ['--work-dir', 'w'],
        env=dict(
            os.environ,
            PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
            SRUN_ARGS_FILE=str(args_file),
            GPUS='16',
            GPUS_PER_NODE='8'),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60)
    assert proc.returncode == 0, proc.stdout
    args = args_file.read_text().splitlines()
    assert args[:2] == ['-p', 'gpu']
    assert '--job-name=job' in args
    assert '--ntasks=16' in args and '--ntasks-per-node=8' in args
    assert '--gres=gpu:8' in args
    tool = 'train.py' if script == 'slurm_train.sh' else 'test.py'
    i = args.index('-u')
    assert args[i + 1] == osp.join(REPO, 'tools', tool)
    assert args[i + 2:i + 3 + len(extra)] == ['cfg.py'] + extra
    assert '--launcher=slurm' in args
    assert args[-2:] == ['--work-dir', 'w']


def _empty_split(root, split):
    os.makedirs(osp.join(root, 'images', split))
    os.makedirs(osp.join(root, 'annotations', split))


@pytest.mark.parametrize('serialize', [True, False])
def test_train_py_empty_image_folder_stops_with_its_path(tmp_path, serialize):
    """An image folder that exists but holds no images: mmengine's
    InfiniteSampler would wait forever (serialize_data=False) or numpy would
    fail naming nothing (the default); train.py stops first, naming it. The
    timeout turns a hang into a failure."""
    root = str(tmp_path / 'ade' / 'ADEChallengeData2016')
    _empty_split(root, 'training')
    _write_split(root, 'validation', 1, seed=1)
    cfg = write_config(tmp_path / 'tiny_fpn.py', root, iters=2)
    work_dir = str(tmp_path / 'work')
    proc = run([
        PYTHON, TRAIN, cfg, '--work-dir', work_dir, '--cfg-options',
        f'train_dataloader.dataset.serialize_data={serialize}'
    ],
               timeout=120,
               check=False)
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert 'error: train_dataloader: the ADE20KDataset has no samples' in out
    assert f"data_root={root!r}" in out
    assert f"img_path={osp.join(root, 'images', 'training')!r}" in out
    assert "img_suffix='.jpg'" in out
    assert 'InfiniteSampler' in out
    assert 'Traceback' not in out
    # stopped before the runner was built
    assert 'System environment' not in out
    assert not osp.exists(osp.join(work_dir, 'iter_2.pth'))


def test_train_py_empty_validation_folder_stops_with_its_path(tmp_path):
    root = str(tmp_path / 'ade' / 'ADEChallengeData2016')
    _write_split(root, 'training', 2, seed=0)
    _empty_split(root, 'validation')
    cfg = write_config(tmp_path / 'tiny_fpn.py', root, iters=2)
    proc = run([PYTHON, TRAIN, cfg, '--work-dir',
                str(tmp_path / 'work')],
               timeout=120,
               check=False)
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert 'error: val_dataloader: the ADE20KDataset has no samples' in out
    assert f"img_path={osp.join(root, 'images', 'validation')!r}" in out
    assert 'System environment' not in out


def test_test_py_empty_image_folder_stops_with_its_path(tmp_path):
    root = str(tmp_path / 'ade' / 'ADEChallengeData2016')
    _empty_split(root, 'validation')
    cfg = write_config(tmp_path / 'tiny_fpn.py', root, iters=2)
    # never loaded: the dataset check comes before the runner
    ckpt = tmp_path / 'unused.pth'
    ckpt.write_bytes(b'')
    proc = run(
        [PYTHON, TEST, cfg,
         str(ckpt), '--work-dir',
         str(tmp_path / 'eval')],
        timeout=120,
        check=False)
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert 'error: test_dataloader: the ADE20KDataset has no samples' in out
    assert f"img_path={osp.join(root, 'images', 'validation')!r}" in out
    assert 'System environment' not in out


@pytest.mark.parametrize('missing', ['data_root', 'images', 'annotations'])
def test_train_py_missing_dataset_directory_is_named(tmp_path, missing):
    root = str(tmp_path / 'ade' / 'ADEChallengeData2016')
    _write_split(root, 'validation', 1, seed=1)
    if missing == 'data_root':
        root = str(tmp_path / 'no_such_dir' / 'ADEChallengeData2016')
        expected = f"the data_root {root!r} of the ADE20KDataset does not " \
            'exist'
    elif missing == 'images':
        os.makedirs(osp.join(root, 'annotations', 'training'))
        path = osp.join(root, 'images', 'training')
        expected = f'the image directory {path!r} of the ADE20KDataset ' \
            'does not exist'
    else:
        os.makedirs(osp.join(root, 'images', 'training'))
        path = osp.join(root, 'annotations', 'training')
        expected = f'the label map directory {path!r} of the ' \
            'ADE20KDataset does not exist'
    cfg = write_config(tmp_path / 'tiny_fpn.py', root, iters=2)
    proc = run([PYTHON, TRAIN, cfg, '--work-dir',
                str(tmp_path / 'work')],
               timeout=120,
               check=False)
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert f'error: train_dataloader: {expected}' in out
    assert 'Traceback' not in out


def _corrupt_copy(ade_root, tmp_path, split):
    """A copy of the tiny ADE20K whose first ``split`` image is not a JPEG."""
    root = str(tmp_path / 'ade' / 'ADEChallengeData2016')
    shutil.copytree(ade_root, root)
    bad = osp.join(root, 'images', split, f'ADE_{split}_00000000.jpg')
    with open(bad, 'wb') as f:
        f.write(b'not a jpeg')
    return root, bad


CHECKED_LOADING = [
    'dataset.pipeline.0.type=CheckedLoadImageFromFile',
    'dataset.pipeline.1.type=CheckedLoadAnnotations'
]


def test_train_py_corrupt_image_in_a_worker_is_one_line(ade_root, tmp_path):
    # torch re-raises a worker's error with the worker's traceback as its
    # message (was: about 55 lines, the file named in the last)
    root, bad = _corrupt_copy(ade_root, tmp_path, 'training')
    cfg = write_config(tmp_path / 'tiny_fpn.py', root, iters=2)
    options = ['train_dataloader.num_workers=1'
               ] + [f'train_dataloader.{o}' for o in CHECKED_LOADING]
    proc = run([
        PYTHON, TRAIN, cfg, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *options
    ],
               timeout=180,
               check=False)
    line = _one_line_error(proc, f'error: {bad}: cannot load image')
    assert 'Caught DataFileError' not in line


def test_test_py_corrupt_image_in_a_worker_is_one_line(trained, ade_root,
                                                       tmp_path):
    root, bad = _corrupt_copy(ade_root, tmp_path, 'validation')
    options = [
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.num_workers=1'
    ] + [
        f'test_dataloader.{o}'.replace('pipeline.1', 'pipeline.2')
        for o in CHECKED_LOADING
    ]
    proc = run([
        PYTHON, TEST, trained['cfg'],
        osp.join(trained['work_dir'], 'iter_8.pth'), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *options
    ],
               timeout=180,
               check=False)
    _one_line_error(proc, f'error: {bad}: cannot load image')
    assert not _eval_jsons(str(tmp_path / 'work'))


# -- checkpoints that test.py / train.py must refuse (issue 12) -------------
DEMO_CFG = osp.join(REPO, 'configs', 'vvt_fpn_demo.py')


def _one_line_error(proc, *parts):
    """The run failed with one ``error:`` line holding every part, and no
    traceback."""
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert 'Traceback' not in proc.stdout, proc.stdout[-3000:]
    (line, ) = [
        ln for ln in proc.stdout.splitlines() if ln.startswith('error: ')
    ]
    for part in parts:
        assert part in line, line
    return line


def _eval_jsons(work_dir):
    return glob.glob(osp.join(work_dir, '**', 'eval_*.json'), recursive=True)


def test_test_py_refuses_url_checkpoint_that_runs_code(trained, tmp_path):
    from ckpt_helpers import NO_PROXY_ENV, serve_directory, write_malicious
    root = tmp_path / 'www'
    root.mkdir()
    marker = tmp_path / 'pickle_ran_code'
    write_malicious(root / 'evil.pth', marker)
    work_dir = str(tmp_path / 'eval')
    with serve_directory(root) as url:
        proc = run([
            PYTHON, TEST, trained['cfg'], url + '/evil.pth', '--work-dir',
            work_dir
        ],
                   env=dict(NO_PROXY_ENV, TORCH_HOME=str(tmp_path / 'hub')),
                   check=False)
    _one_line_error(proc, 'Refusing to load checkpoint', url + '/evil.pth',
                    'os.makedirs')
    assert not marker.exists(), 'the pickle ran its code'
    assert not _eval_jsons(work_dir)


def test_test_py_damaged_checkpoint_is_one_line(trained, tmp_path):
    from ckpt_helpers import write_truncated
    src = osp.join(trained['work_dir'], 'iter_8.pth')
    empty = tmp_path / 'iter_9.pth'
    empty.write_bytes(b'')
    half = write_truncated(src, tmp_path / 'iter_10.pth')
    size = osp.getsize(half)
    for path, parts in ((str(empty), ('0 bytes', 'empty')),
                        (half, (f'{size} bytes', 'truncated'))):
        work_dir = str(tmp_path / ('eval_of_' + osp.basename(path)))
        proc = run(
            [PYTHON, TEST, trained['cfg'], path, '--work-dir', work_dir],
            check=False)
        _one_line_error(proc, path, *parts)
        assert not _eval_jsons(work_dir)


def test_test_py_refuses_checkpoint_of_another_arch(ade_root, tmp_path):
    """The issue's case: a VVT-T demo checkpoint tested as VVT-S."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO_CFG)
    model = MODELS.build(cfg.model)
    cfg.model.backbone.arch = 'small'
    small = MODELS.build(cfg.model).state_dict()
    # VVT-S has 1+1+7+1 blocks more than VVT-T, of the same widths
    missing = sorted(set(small) - set(model.state_dict()))
    assert missing and set(model.state_dict()) < set(small)
    ckpt = str(tmp_path / 'vvt_t_demo.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    work_dir = str(tmp_path / 'eval')
    proc = run([
        PYTHON, TEST, DEMO_CFG, ckpt, '--work-dir', work_dir, '--cfg-options',
        'model.backbone.arch=small',
        f'test_dataloader.dataset.data_root={ade_root}'
    ],
               check=False)
    line = _one_line_error(proc, ckpt, 'does not fit the model',
                           '--allow-partial-checkpoint')
    required = [k for k in small if not k.endswith('num_batches_tracked')]
    assert f"{len(missing)} of the model's {len(required)} keys missing" \
        in line
    assert 'backbone.block1.2.' in line
    assert not _eval_jsons(work_dir)


def test_test_py_partial_load_only_when_asked(trained, tmp_path):
    ckpt = load_ckpt(osp.join(trained['work_dir'], 'iter_8.pth'))
    del ckpt['state_dict']['decode_head.conv_seg.bias']
    path = str(tmp_path / 'no_bias.pth')
    torch.save(ckpt, path)
    work_dir = str(tmp_path / 'eval')
    proc = run([PYTHON, TEST, trained['cfg'], path, '--work-dir', work_dir],
               check=False)
    _one_line_error(proc, path, 'keys missing (decode_head.conv_seg.bias)')
    assert not _eval_jsons(work_dir)

    proc = run([
        PYTHON, TEST, trained['cfg'], path, '--work-dir', work_dir,
        '--allow-partial-checkpoint'
    ])
    assert 'Partial load asked for' in proc.stdout
    assert 'decode_head.conv_seg.bias' in proc.stdout
    (path, ) = _eval_jsons(work_dir)
    with open(path) as f:  # the result says it came from a partial load
        assert json.load(f)['test']['partial_checkpoint'] is True


def test_mmseg_own_test_py_refuses_a_checkpoint_that_does_not_fit(
        trained, tmp_path):
    """The configs list the fit check in custom_hooks, so mmseg's own
    tools/test.py (what ``mim test`` runs) refuses too, and scores nothing."""
    import mmseg
    mmseg_test = osp.join(
        osp.dirname(mmseg.__file__), '.mim', 'tools', 'test.py')
    ckpt = load_ckpt(osp.join(trained['work_dir'], 'iter_8.pth'))
    del ckpt['state_dict']['decode_head.conv_seg.bias']
    path = str(tmp_path / 'no_bias.pth')
    torch.save(ckpt, path)
    work_dir = str(tmp_path / 'eval')
    cmd = [PYTHON, mmseg_test, trained['cfg'], path, '--work-dir', work_dir]
    proc = run(cmd, check=False)
    assert proc.returncode != 0
    assert 'CheckpointMismatchError' in proc.stdout
    assert "keys missing (decode_head.conv_seg.bias)" in proc.stdout
    assert 'mIoU:' not in proc.stdout  # no metric line
    # the partial load is asked for through the config
    proc = run(cmd + ['--cfg-options', 'allow_partial_checkpoint=True'])
    assert 'Partial load asked for' in proc.stdout
    assert 'mIoU:' in proc.stdout


def test_mmseg_own_train_py_stops_a_head_with_too_few_classes(
        trained, tmp_path):
    """VVTConfigCheckHook (in the configs' custom_hooks) gives mmseg's own
    tools the check this project's tools run up front: before the first
    iteration (not at the first loss, a device-side assert on CUDA), and
    before the pretrained weights load (whose error would hide it)."""
    import mmseg
    mmseg_train = osp.join(
        osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')
    missing = str(tmp_path / 'vvt_tiny_backbone.pth')
    cfg = tmp_path / 'few_classes.py'
    cfg.write_text(
        f'_base_ = [{trained["cfg"]!r}]\n'
        'model = dict(decode_head=dict(num_classes=2), backbone=dict('
        f"init_cfg=dict(_delete_=True, type='Pretrained', "
        f'checkpoint={missing!r})))\n')
    proc = run(
        [PYTHON, mmseg_train,
         str(cfg), '--work-dir',
         str(tmp_path / 'work')],
        check=False)
    assert proc.returncode != 0
    assert 'BadInputError' in proc.stdout
    assert (f'config {cfg}: model.decode_head.num_classes is 2, but the '
            'dataset of train_dataloader (ADE20KDataset) has 150 '
            'classes') in proc.stdout
    assert 'Iter(train)' not in proc.stdout
    assert 'out of bounds' not in proc.stdout
    # the weights were not reached
    assert 'CheckpointNotFoundError' not in proc.stdout


def test_test_py_tta_without_tta_config_is_one_line(trained, tmp_path):
    from mmseg_vvt.testing import write_tiny_config
    cfg = write_tiny_config(tmp_path / 'no_tta.py')
    ckpt = osp.join(trained['work_dir'], 'iter_8.pth')
    proc = run([PYTHON, TEST, cfg, ckpt, '--tta'], check=False)
    _one_line_error(proc, '--tta needs tta_model and tta_pipeline', cfg)


def test_test_py_tta_pipeline_is_checked_as_it_runs(trained, tmp_path,
                                                    tool_env):
    # --tta swaps the test pipeline for tta_pipeline after the config
    # checks (was: its loader's 3 classes went unchecked, an mIoU printed)
    cfg = tmp_path / 'tta3.py'
    cfg.write_text(
        f"_base_ = [{trained['cfg']!r}]\n"
        'tta_pipeline = [\n'
        "    dict(type='CheckedLoadImageFromFile'),\n"
        "    dict(type='TestTimeAug', transforms=[\n"
        "        [dict(type='Resize', scale=(64, 64), keep_ratio=True)],\n"
        "        [dict(type='CheckedLoadAnnotations', num_classes=3)],\n"
        "        [dict(type='PackSegInputs')]])]\n")
    argv = [
        str(cfg),
        osp.join(trained['work_dir'], 'iter_8.pth'), '--work-dir',
        str(tmp_path / 'eval')
    ]
    message = _refused(load_tool('test').main, argv + ['--tta'])
    assert message == (
        f'error: config {cfg}: test_dataloader.dataset.pipeline[1].'
        'transforms[1][0].num_classes is 3, but its dataset (ADE20KDataset) '
        'has 150 classes: labels of classes 3..149 would be refused as not '
        'classes; set it to 150')
    assert not _eval_jsons(str(tmp_path / 'eval'))


def test_test_py_tta_is_recorded_and_tabled_as_ms_flip(trained, tmp_path):
    # the config's tta_pipeline (mmseg's ADE20K one: six scales, flips)
    ckpt = osp.join(trained['work_dir'], 'iter_8.pth')
    work_dir = str(tmp_path / 'eval')
    run([PYTHON, TEST, trained['cfg'], ckpt, '--work-dir', work_dir])
    run([PYTHON, TEST, trained['cfg'], ckpt, '--work-dir', work_dir, '--tta'])
    records = []
    for path in sorted(_eval_jsons(work_dir)):
        with open(path) as f:
            records.append(json.load(f))
    assert [r['test']['tta'] for r in records] == [False, True]
    proc = run([
        PYTHON,
        osp.join(REPO, 'tools', 'collect_results.py'), work_dir, '--no-flops'
    ])
    header, row = [[c.strip() for c in ln.strip('|').split('|')]
                   for ln in proc.stdout.splitlines()
                   if ln.startswith('|')][::2]
    cells = dict(zip(header, row))
    assert cells['mIoU'] == f"{records[0]['metrics']['mIoU']:.2f}"
    assert cells['mIoU(ms+flip)'] == f"{records[1]['metrics']['mIoU']:.2f}"


def test_resume_from_truncated_checkpoint_is_one_line(trained, tmp_path):
    from ckpt_helpers import write_truncated
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    half = write_truncated(
        osp.join(trained['work_dir'], 'iter_8.pth'), work_dir / 'iter_8.pth')
    (work_dir / 'last_checkpoint').write_text(half)
    proc = run([
        PYTHON, TRAIN, trained['cfg'], '--work-dir',
        str(work_dir), '--resume', '--cfg-options', 'train_cfg.max_iters=10'
    ],
               check=False)
    _one_line_error(proc, half, f'{osp.getsize(half)} bytes', 'truncated')
    assert not osp.exists(work_dir / 'iter_10.pth')


def test_checkpoints_are_saved_atomically(trained):
    """The recipe's CheckpointHook writes through the atomic backend: no
    temporary file is left, and last_checkpoint names a complete file."""
    work_dir = trained['work_dir']
    assert not glob.glob(osp.join(work_dir, '.*.partial'))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    assert last == osp.join(work_dir, 'iter_8.pth')
    assert load_ckpt(last)['meta']['iter'] == 8


@pytest.mark.slow
def test_train_py_with_compile_trains(ade_root, tmp_path):
    # mmengine compiles the model when the config says compile=True; VVT
    # compiles its readable formulation (inductor: minutes on 2 cores)
    cfg = write_config(tmp_path / 'tiny_fpn.py', ade_root, iters=2)
    work_dir = str(tmp_path / 'w')
    proc = run([
        PYTHON, TRAIN, cfg, '--work-dir', work_dir, '--cfg-options',
        'compile=True'
    ],
               timeout=1800)
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth')), proc.stdout[-3000:]
    (rows, ) = scalars(work_dir)
    assert len(rows) == 2
    assert all(math.isfinite(r['loss']) for r in rows)


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_launcher_this_machine_cannot_run_is_one_line(ade_root, tmp_path,
                                                      tool):
    # slurm / mpi without GPUs: a traceback from the device set-up before
    cfg = write_config(tmp_path / 'tiny_fpn.py', ade_root, iters=1)
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': {}}, ckpt)
    args = [cfg] if tool == 'train' else [cfg, str(ckpt)]
    cases = [
        (['--launcher',
          'slurm'], 'error: --launcher slurm on a machine without GPUs is not '
         'supported: CPU-only distributed runs need --launcher pytorch '
         '(torchrun, e.g. tools/dist_train.sh CONFIG NPROC).'),
        # --cfg-options launcher=... has the last word, as in mmseg's tools
        # (was: checked as --launcher's 'none', then mmengine's KeyError)
        (['--cfg-options', 'launcher=pytorch'],
         "error: --launcher pytorch expects the environment variables "
         "['RANK'"),
    ]
    for options, said in cases:
        proc = run([
            PYTHON, TRAIN if tool == 'train' else TEST, *args, *options,
            '--work-dir',
            str(tmp_path / 'w')
        ],
                   check=False)
        assert proc.returncode == 1
        last = proc.stdout.strip().splitlines()[-1]
        # the whole line for slurm; the variables' list begins for pytorch
        assert last == said if options[0] == '--launcher' else \
            last.startswith(said), proc.stdout[-2000:]
        assert 'Traceback' not in proc.stdout


def test_persistent_workers_without_workers_is_one_line(ade_root, tmp_path):
    cfg = write_config(tmp_path / 'tiny_fpn.py', ade_root, iters=1)
    proc = run([
        PYTHON, TRAIN, cfg, '--work-dir',
        str(tmp_path / 'w'), '--cfg-options',
        'train_dataloader.persistent_workers=True'
    ],
               check=False)
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines()[-1] == (
        f'error: config {cfg}: train_dataloader.persistent_workers=True '
        'needs train_dataloader.num_workers > 0; with num_workers=0 also '
        'set train_dataloader.persistent_workers=False')
