"""The demo: configs/vvt_fpn_demo.py and tools/run_demo.py."""
import json
import math
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS
from PIL import Image
from tool_modules import assert_refused, load_tool

import mmseg_vvt.datasets  # noqa: F401  (registers VVT and the transforms)
from mmseg_vvt.datasets import demo_data
from mmseg_vvt.testing import tiny_arch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'vvt_fpn_demo.py')
# A very small VVT for fast tests (the demo itself uses arch='tiny').
TINY_ARCH = tiny_arch()

run_demo = load_tool('run_demo')


def test_demo_config_matches_the_demo_data_and_builds():
    cfg = Config.fromfile(DEMO_CONFIG)
    classes = tuple(cfg.train_dataloader.dataset.metainfo['classes'])
    assert classes == demo_data.CLASS_NAMES
    assert tuple(cfg.val_dataloader.dataset.metainfo['classes']) == classes
    assert cfg.model.decode_head.num_classes == demo_data.NUM_CLASSES
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.model.backbone.type == 'VVT'
    assert cfg.model.backbone.arch == 'tiny'
    assert cfg.model.backbone.init_cfg is None  # no pretrained weights
    assert cfg.data_root == 'data/demo/ADEChallengeData2016'
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert types == [
        'CheckedLoadImageFromFile', 'CheckedLoadAnnotations', 'RandomResize',
        'RandomCrop', 'RandomFlip', 'PhotoMetricDistortion', 'PackSegInputs'
    ]

    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 64, 96) * 255, mode='tensor')
    # FPN head predicts at stride 4.
    assert logits.shape == (1, demo_data.NUM_CLASSES, 16, 24)


def test_set_max_iters_keeps_schedule_consistent():
    cfg = Config.fromfile(DEMO_CONFIG)
    old = cfg.train_cfg.max_iters
    run_demo.set_max_iters(cfg, old // 2)
    assert cfg.train_cfg.max_iters == old // 2
    assert cfg.train_cfg.val_interval == old // 2
    assert cfg.default_hooks.checkpoint.interval == old // 2
    assert cfg.param_scheduler[-1].end == old // 2
    assert cfg.param_scheduler[0].end == cfg.param_scheduler[1].begin
    run_demo.set_max_iters(cfg, 2)
    ends = [(s.begin, s.end) for s in cfg.param_scheduler]
    assert all(0 <= b < e <= 2 for b, e in ends)


def test_tiny_demo_end_to_end(tmp_path, capsys):
    """The whole demo pipeline at toy size: data generated, 2 training
    iterations, mIoU from IoUMetric, constant baseline, the picture."""
    work = tmp_path / 'work'
    data = tmp_path / 'demo'
    argv = [
        '--work-dir',
        str(work), '--data-dir',
        str(data), '--num-train', '4', '--num-val', '2', '--size', '48',
        '--max-iters', '2', '--batch-size', '2', '--crop-size', '32',
        '--num-workers', '0', '--num-vis', '2', '--arch',
        json.dumps(TINY_ARCH)
    ]
    assert run_demo.main(argv) == 0
    out = capsys.readouterr().out
    # named after what ran (a custom arch here), not the default demo
    dims = '-'.join(map(str, TINY_ARCH['embed_dims']))
    depths = '-'.join(map(str, TINY_ARCH['depths']))
    name = f'VVT (custom: dims {dims}, depths {depths}) + Semantic FPN'
    assert f'{name} mIoU' in out
    assert 'VVT-T' not in out
    assert 'baseline' in out

    root = data / 'ADEChallengeData2016'
    assert len(list((root / 'images' / 'training').iterdir())) == 4
    results = json.loads((work / 'demo_results.json').read_text())
    assert results['max_iters'] == 2 and results['num_val'] == 2
    assert results['model']['name'] == name
    for key in ('model', 'constant_baseline'):
        miou = results[key]['mIoU']
        assert math.isfinite(miou) and 0 <= miou <= 100
    assert results['constant_baseline']['cls'] in demo_data.CLASS_NAMES
    assert (work / 'iter_2.pth').is_file()
    cfg = Config.fromfile(next(work.glob('*/vis_data/config.py')))
    assert cfg.model.backbone.arch == TINY_ARCH
    assert cfg.model.neck.in_channels == TINY_ARCH['embed_dims']
    assert cfg.train_dataloader.dataset.pipeline[3].crop_size == (32, 32)

    pic = cv2.imread(str(work / 'demo_predictions.png'))
    assert pic is not None
    # 3 panels of 48 px, doubled for viewing; 2 rows of 48 (+4) px, header
    # and legend.
    assert pic.shape[1] == 2 * 3 * 48
    assert pic.shape[0] > 2 * 2 * 48

    # Data present now: a second run uses it, and refuses options that
    # contradict it.
    with pytest.raises(SystemExit) as exc:
        run_demo.main(argv[:4] + ['--num-train', '5'])
    assert 'num_train=5 (existing: 4)' in str(exc.value)


def test_constant_baseline_uses_iou_metric(tmp_path):
    """The baseline really is IoUMetric on a constant prediction: with
    one class everywhere, its IoU is its pixel share among predictions and
    labels, and every other class scores 0."""
    root = demo_data.generate(
        str(tmp_path / 'demo'),
        seed=0,
        num_train=3,
        num_val=2,
        size=(32, 32),
        verbose=False)
    cfg = Config.fromfile(DEMO_CONFIG)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = root
    cls, counts = run_demo.most_frequent_train_class(cfg)
    assert counts.sum() > 0 and counts[cls] == counts.max()

    gts = [
        np.asarray(
            Image.open(
                osp.join(root, 'annotations', 'validation',
                         f'ADE_val_0000000{i}.png'))) for i in (1, 2)
    ]
    labelled = sum(int((g > 0).sum()) for g in gts)
    hit = sum(int((g == cls + 1).sum()) for g in gts)
    present = {int(v) - 1 for g in gts for v in np.unique(g) if v > 0}
    present.add(cls)
    expected_iou = 100 * hit / labelled  # union = all labelled pixels
    metrics = run_demo.constant_baseline(cfg, cls)
    assert metrics['mIoU'] == pytest.approx(
        round(expected_iou / len(present), 2), abs=0.011)
    assert metrics['aAcc'] == pytest.approx(
        round(100 * hit / labelled, 2), abs=0.011)


@pytest.mark.slow
def test_full_demo_learns_far_above_constant(tmp_path):
    """The real demo command (default data and schedule; about 6 minutes on
    2 cores), run as a user runs it."""
    work = tmp_path / 'work'
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'run_demo.py'), '--work-dir',
        str(work), '--data-dir',
        str(tmp_path / 'demo')
    ],
                          cwd=str(tmp_path),
                          capture_output=True,
                          text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'VVT-T + Semantic FPN      mIoU' in proc.stdout
    results = json.loads((work / 'demo_results.json').read_text())
    assert results['max_iters'] == 400
    assert results['model']['mIoU'] > 3 * results['constant_baseline']['mIoU']
    assert results['model']['mIoU'] > 50
    assert (work / 'demo_predictions.png').is_file()


def test_broken_existing_data_stops_before_training(tmp_path, capsys):
    data = tmp_path / 'demo'
    demo_data.generate(
        str(data),
        seed=0,
        num_train=3,
        num_val=2,
        size=(32, 32),
        verbose=False)
    root = data / 'ADEChallengeData2016'
    bad = root / 'images' / 'validation' / 'ADE_val_00000002.jpg'
    bad.write_bytes(b'not a jpeg')
    (root / 'annotations' / 'training' / 'ADE_train_00000001.png').unlink()
    work = tmp_path / 'work'
    with pytest.raises(SystemExit) as exc:
        run_demo.main(['--work-dir', str(work), '--data-dir', str(data)])
    assert '3 problem(s) in the demo data' in str(exc.value)
    err = capsys.readouterr().err
    assert f'{bad}: image cannot be decoded' in err
    assert 'ADE_train_00000001.jpg: image has no label' in err
    assert 'training: found 3 images and 2 labels, expected 3 of each' in err
    assert not work.exists()  # nothing trained


def test_baseline_reads_labels_with_the_training_checks(tmp_path):
    # most_frequent_train_class loads labels as training does: a value
    # beyond the classes stops it, naming the file, instead of being counted
    root = demo_data.generate(
        str(tmp_path / 'demo'),
        seed=0,
        num_train=2,
        num_val=1,
        size=(16, 16),
        verbose=False)
    bad = osp.join(root, 'annotations', 'training', 'ADE_train_00000001.png')
    label = np.asarray(Image.open(bad)).copy()
    label[0, 0] = 250
    Image.fromarray(label).save(bad)
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.train_dataloader.dataset.data_root = root
    with pytest.raises(Exception, match='ADE_train_00000001.png'):
        run_demo.most_frequent_train_class(cfg)


def test_bad_arguments_stop_before_data_or_model(tmp_path, capsys):
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    model_only = tmp_path / 'model_only.py'
    model_only.write_text("model = dict(type='EncoderDecoder')\n")
    resnet = tmp_path / 'resnet.py'
    resnet.write_text("model = dict(type='EncoderDecoder', backbone=dict("
                      "type='ResNetV1c'))\n" +
                      ''.join(f'{k} = dict()\n'
                              for k in ('train_dataloader', 'val_dataloader',
                                        'test_dataloader')))
    data = ['--data-dir', str(tmp_path / 'data')]
    cases = [
        (['--num-train', '0'], 'argument --num-train'),
        (['--num-workers', '-1'], 'argument --num-workers'),
        (['--seed', '-1'], 'argument --seed'),
        (['--config', str(resnet), '--arch',
          'tiny'], "--arch sets a VVT backbone; the backbone of config"),
        (['--arch', 'huge'], "--arch: Unknown VVT arch 'huge'"),
        (['--arch', '{"depths": [1, 1, 1, 1]}'], '--arch: arch dict is '
         'missing keys'),
        (['--config', str(model_only)], 'has no train_dataloader / '
         'val_dataloader / test_dataloader entry'),
        (['--work-dir', str(a_file)], '--work-dir'),
        (['--data-dir', str(a_file / 'demo')], '--data-dir'),
        # merge, then fail in the first loss / forward
        (['--cfg-options', 'model.decode_head.num_classes=3'],
         'model.decode_head.num_classes is 3, but the dataset of '
         'train_dataloader (ADE20KDataset) has 6 classes'),
        (['--cfg-options', 'model.neck.in_channels=[64,128,320,512]'],
         'model.neck.in_channels is [64, 128, 320, 512], but the VVT '
         'backbone returns [96, 160, 320, 512] channels'),
    ]
    assert_refused(lambda argv: run_demo.parse_args(data + argv), cases,
                   capsys)
    assert not (tmp_path / 'data').exists()


def test_run_demo_refuses_zero_pictures(tmp_path, capsys):
    # kills run_demo.py `args.num_vis < 1` -> `< 0`
    from tool_modules import load_tool
    tool = load_tool('run_demo')
    with pytest.raises(SystemExit):
        tool.parse_args(
            ['--num-vis', '0', '--data-dir',
             str(tmp_path / 'data')])
    assert '--num-vis must be >= 1, got 0' in capsys.readouterr().err
