#!/usr/bin/env python
"""The demo: synthetic data -> train VVT-T + Semantic FPN -> mIoU -> picture.

Steps (all on CPU, about 15 minutes on 2 cores with the defaults):

1. ``data/demo`` is generated as ``tools/make_demo_data.py`` does if it does
   not exist, and checked as ``tools/check_ade20k.py`` does either way (both
   through ``mmseg_vvt.datasets``);
2. ``configs/vvt_fpn_demo.py`` is trained with mmengine's ``Runner`` (its
   usual progress and log output), which validates at the end with mmseg's
   ``IoUMetric``;
3. the mIoU of a constant prediction (the class most frequent in the
   training labels, everywhere) is computed on the same validation set with
   the same metric;
4. a PNG with image / ground truth / prediction for a few validation images
   is written to the work dir (mmseg's ``SegLocalVisualizer`` and the
   dataset palette), next to ``demo_results.json`` with the numbers.

Usage::

    python tools/run_demo.py                      # the full demo
    python tools/run_demo.py --work-dir work_dirs/demo --max-iters 100
"""
import os

# OpenMP threads that spin while waiting make torch many times slower (15x
# measured on 2 cores) as soon as anything else runs on the machine; passive
# waiting costs little on an idle machine. Must be set before torch loads.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import os.path as osp  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.fileio import list_from_file  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.evaluation import IoUMetric  # noqa: E402
from mmseg.registry import DATASETS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmseg.visualization import SegLocalVisualizer  # noqa: E402

from mmseg_vvt.apis.results import describe_config  # noqa: E402
from mmseg_vvt.datasets import demo_data  # noqa: E402
from mmseg_vvt.datasets.ade20k_check import check_dataset  # noqa: E402
from mmseg_vvt.engine import CheckpointError  # noqa: E402
from mmseg_vvt.utils.cli import BadInputError  # noqa: E402
from mmseg_vvt.utils.cli import CfgOptionsAction  # noqa: E402
from mmseg_vvt.utils.cli import check_out_dir  # noqa: E402
from mmseg_vvt.utils.cli import check_vvt_arch  # noqa: E402
from mmseg_vvt.utils.cli import dataset_classes  # noqa: E402
from mmseg_vvt.utils.cli import load_config  # noqa: E402
from mmseg_vvt.utils.cli import nonnegative_int  # noqa: E402
from mmseg_vvt.utils.cli import positive_int  # noqa: E402
from mmseg_vvt.utils.cli import vvt_backbone  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'vvt_fpn_demo.py')
PICTURE = 'demo_predictions.png'
RESULTS = 'demo_results.json'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Run the VVT demo: generate data if missing, train, '
        'evaluate against a constant baseline, draw predictions.')
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='demo config (default configs/vvt_fpn_demo.py)')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/demo',
        help='logs, checkpoint, picture and results '
        '(default work_dirs/demo)')
    parser.add_argument(
        '--data-dir',
        default='data/demo',
        help='demo data folder, generated if missing '
        '(default data/demo)')
    gen = parser.add_argument_group(
        'data generation (only used when the data folder is missing)')
    gen.add_argument('--seed', type=nonnegative_int, default=None)
    gen.add_argument('--num-train', type=positive_int, default=None)
    gen.add_argument('--num-val', type=positive_int, default=None)
    gen.add_argument(
        '--size',
        type=positive_int,
        nargs='+',
        default=None,
        metavar='PX',
        help='SIZE or HEIGHT WIDTH')
    small = parser.add_argument_group(
        'schedule (defaults: the config\'s; for quick runs and tests)')
    small.add_argument(
        '--max-iters',
        type=int,
        default=None,
        help='training iterations (schedule, checkpoint and '
        'validation follow)')
    small.add_argument('--batch-size', type=int, default=None)
    small.add_argument(
        '--crop-size',
        type=int,
        default=None,
        help='square training crop in pixels')
    small.add_argument(
        '--arch',
        default=None,
        help="VVT arch: a preset ('tiny', 'small', 'medium', "
        "'large') or a JSON dict with embed_dims, depths, "
        "num_heads, mlp_ratios, fr_ratios, sr_ratios "
        "(default: the config's)")
    small.add_argument(
        '--num-workers',
        type=nonnegative_int,
        default=None,
        help='data loader workers (0: load in this process)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch CPU threads (default: torch\'s choice, '
        'one per core); 1 is faster on a machine busy with '
        'other work')
    parser.add_argument(
        '--num-vis',
        type=int,
        default=4,
        help='validation images in the picture (default 4)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='further config overrides, key=value')
    args = parser.parse_args(argv)
    if args.arch is not None and args.arch.lstrip().startswith('{'):
        try:
            args.arch = json.loads(args.arch)
        except json.JSONDecodeError as e:
            parser.error(f'--arch is not valid JSON: {e}')
    if args.size is not None and len(args.size) not in (1, 2):
        parser.error(f'--size takes SIZE or HEIGHT WIDTH, got {args.size}')
    for name in ('max_iters', 'batch_size', 'crop_size', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got '
                         f'{value}')
    if args.num_vis < 1:
        parser.error(f'--num-vis must be >= 1, got {args.num_vis}')
    # before data is generated or a model built: one error line each
    try:
        cfg = load_config(
            args.config,
            args.cfg_options,
            require=('model', 'train_dataloader', 'val_dataloader',
                     'test_dataloader'),
            data=('train_dataloader', 'val_dataloader', 'test_dataloader'))
        if args.arch is not None:
            if vvt_backbone(cfg.model) is None:
                other = (cfg.model.get('backbone') or {}).get('type')
                raise BadInputError(
                    f'--arch sets a VVT backbone; the backbone of config '
                    f'{args.config} is {other!r}')
            check_vvt_arch(args.arch)
        check_out_dir(args.work_dir, '--work-dir')
        check_out_dir(args.data_dir, '--data-dir')
        # the demo data is generated with the training set's classes
        if dataset_classes(cfg.train_dataloader.dataset) is None:
            raise BadInputError(
                f'config {args.config}: the number of classes of '
                "train_dataloader's dataset cannot be told; give its "
                'metainfo classes')
    except BadInputError as err:
        parser.error(str(err))
    args.cfg = cfg  # read once, --cfg-options merged
    return args


# ---------------------------------------------------------------------------
# 1. data
# ---------------------------------------------------------------------------
def prepare_data(args, num_classes):
    """Generate the demo data if missing, then check it. Returns the
    dataset root (``.../ADEChallengeData2016``)."""
    root = osp.join(args.data_dir, demo_data.DATASET_DIRNAME)
    requested = dict(
        seed=args.seed, num_train=args.num_train, num_val=args.num_val)
    if args.size is not None:
        size = args.size * 2 if len(args.size) == 1 else args.size
        requested.update(height=size[0], width=size[1])
    if not osp.isdir(root):
        size = demo_data.DEFAULT_SIZE
        if args.size is not None:
            size = (requested['height'], requested['width'])
        print_log(
            f'Generating the demo data in {args.data_dir} ...',
            logger='current')
        demo_data.generate(
            args.data_dir,
            seed=_default(args.seed, demo_data.DEFAULT_SEED),
            num_train=_default(args.num_train, demo_data.DEFAULT_NUM_TRAIN),
            num_val=_default(args.num_val, demo_data.DEFAULT_NUM_VAL),
            size=size)
    else:
        print_log(f'Using the existing demo data in {root}', logger='current')
    info_path = osp.join(root, 'demo_info.json')
    info = {}
    if osp.isfile(info_path):
        with open(info_path) as f:
            info = json.load(f)
    differs = {
        k: (v, info.get(k))
        for k, v in requested.items() if v is not None and info.get(k) != v
    }
    if differs:
        detail = ', '.join(f'{k}={v[0]} (existing: {v[1]})'
                           for k, v in differs.items())
        raise SystemExit(
            f'error: {root} exists but was not generated with the requested '
            f'{detail}; delete {args.data_dir} to regenerate it, or drop '
            'those options to use it as it is')
    problems = check_dataset(
        root,
        num_train=info.get('num_train'),
        num_val=info.get('num_val'),
        num_classes=num_classes,
        jobs=1)
    if problems:
        for path, msg in problems:
            print(f'{path}: {msg}', file=sys.stderr)
        raise SystemExit(f'error: {len(problems)} problem(s) in the demo '
                         f'data {root} (listed above); delete '
                         f'{args.data_dir} to regenerate it')
    return root


def _default(value, default):
    return default if value is None else value


# ---------------------------------------------------------------------------
# 2. config
# ---------------------------------------------------------------------------
def build_cfg(args, data_root):
    cfg = copy.deepcopy(args.cfg)
    cfg.work_dir = args.work_dir
    cfg.launcher = 'none'
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for name in loaders:
        cfg[name].dataset.data_root = data_root
        if args.num_workers is not None:
            cfg[name].num_workers = args.num_workers
            cfg[name].persistent_workers = args.num_workers > 0
    if args.batch_size is not None:
        cfg.train_dataloader.batch_size = args.batch_size
    if args.crop_size is not None:
        crop = (args.crop_size, args.crop_size)
        cfg.crop_size = crop
        cfg.model.data_preprocessor.size = crop
        for step in cfg.train_dataloader.dataset.pipeline:
            if step.type == 'RandomCrop':
                step.crop_size = crop
    if args.max_iters is not None:
        set_max_iters(cfg, args.max_iters)
    if args.arch is not None:
        cfg.model.backbone.arch = args.arch
        if isinstance(args.arch, dict):  # the presets all match the config
            cfg.model.neck.in_channels = list(args.arch['embed_dims'])
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def set_max_iters(cfg, max_iters):
    """Shorten/lengthen the schedule consistently: training length,
    validation and checkpoint at the end, warm-up and decay inside it."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.default_hooks.logger.interval = min(cfg.default_hooks.logger.interval,
                                            max_iters)
    for sched in cfg.param_scheduler:
        begin = min(
            int(round(sched.get('begin', 0) * max_iters / old)), max_iters - 1)
        end = sched.get('end', old)
        end = max(begin + 1, int(round(end * max_iters / old)))
        sched.begin, sched.end = begin, end


class _KeepMetrics(Hook):
    """Remembers the metrics of the last validation run."""
    priority = 'LOWEST'

    def __init__(self):
        self.metrics = None

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics or {})


# ---------------------------------------------------------------------------
# 3. constant baseline
# ---------------------------------------------------------------------------
def most_frequent_train_class(cfg):
    """Train id of the class with most pixels in the training labels (the
    same label loading as training, without augmentation)."""
    ds_cfg = cfg.train_dataloader.dataset.copy()
    # the training pipeline's own label loader (its value checks included)
    ds_cfg.pipeline = [
        next(
            dict(t) for t in ds_cfg.pipeline
            if t['type'].endswith('LoadAnnotations'))
    ]
    dataset = DATASETS.build(ds_cfg)
    num_classes = len(dataset.metainfo['classes'])
    counts = np.zeros(num_classes, np.int64)
    for i in range(len(dataset)):
        seg = dataset[i]['gt_seg_map']
        seg = seg[seg != 255]
        counts += np.bincount(seg.ravel(), minlength=num_classes)[:num_classes]
    return int(counts.argmax()), counts


def constant_baseline(cfg, cls):
    """mIoU etc. (mmseg's IoUMetric) of predicting ``cls`` everywhere on the
    validation set."""
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    evaluator_cfg = cfg.val_evaluator.copy()
    evaluator_cfg.pop('type', None)
    metric = IoUMetric(**evaluator_cfg)
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        gt = sample.gt_sem_seg.data
        pred = torch.full_like(gt, cls)
        metric.process(
            {}, [dict(pred_sem_seg=dict(data=pred), gt_sem_seg=dict(data=gt))])
    return metric.evaluate(len(dataset))


# ---------------------------------------------------------------------------
# 4. picture
# ---------------------------------------------------------------------------
def draw_predictions(runner, out_file, num_vis):
    """Rows of [image | ground truth | prediction] for the first ``num_vis``
    validation images, coloured with the dataset palette; ignored pixels
    black. Returns the number of rows drawn."""
    dataset = runner.val_dataloader.dataset
    meta = dataset.metainfo
    vis = SegLocalVisualizer(name=f'vvt_demo_{time.time_ns()}', alpha=1.0)
    vis.dataset_meta = dict(classes=meta['classes'], palette=meta['palette'])
    model = runner.model
    model.eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(min(num_vis, len(dataset))):
            data = dataset[i]
            with torch.no_grad():
                pred = model.test_step(pseudo_collate([data]))[0]
            img = cv2.cvtColor(
                cv2.imread(pred.img_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            sample = SegDataSample()
            sample.gt_sem_seg = PixelData(
                data=data['data_samples'].gt_sem_seg.data)
            sample.pred_sem_seg = pred.pred_sem_seg
            tmp_file = osp.join(tmp, f'{i}.png')
            vis.add_datasample(
                f'demo_{i}',
                np.zeros_like(img),
                sample,
                draw_gt=True,
                draw_pred=True,
                with_labels=False,
                out_file=tmp_file)
            drawn = cv2.cvtColor(cv2.imread(tmp_file), cv2.COLOR_BGR2RGB)
            rows.append(np.concatenate([img, drawn], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [
        np.pad(
            r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255)
        for r in rows
    ]
    picture = np.concatenate(
        [_header(width, rows[0].shape[1] // 3)] + rows +
        [_legend(width, meta['classes'], meta['palette'])],
        axis=0)
    scale = 2 if picture.shape[1] < 800 else 1
    picture = cv2.resize(
        picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    cv2.imwrite(out_file, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return len(rows)


def _header(width, col):
    bar = np.full((14, width, 3), 255, np.uint8)
    for j, text in enumerate(('image', 'ground truth', 'prediction')):
        cv2.putText(bar, text, (j * col + 2, 11), cv2.FONT_HERSHEY_PLAIN, 0.8,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def _legend(width, classes, palette):
    per_row = max(1, width // 80)
    n_rows = (len(classes) + per_row - 1) // per_row + 1
    bar = np.full((14 * n_rows, width, 3), 255, np.uint8)
    entries = list(zip(classes, palette)) + [('ignored', (0, 0, 0))]
    for k, (name, colour) in enumerate(entries):
        y, x = (k // per_row) * 14, (k % per_row) * 80
        cv2.rectangle(bar, (x + 2, y + 2), (x + 12, y + 12),
                      tuple(int(c) for c in colour), -1)
        cv2.putText(bar, name.strip(), (x + 15, y + 11),
                    cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


# ---------------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    ds_cfg = args.cfg.train_dataloader.dataset
    classes = (ds_cfg.get('metainfo') or {}).get('classes')
    if classes is None:  # a config without custom classes: the dataset's
        classes = DATASETS.get(ds_cfg.type).METAINFO['classes']
    elif isinstance(classes, str):  # a file of names, as mmengine reads it
        classes = list_from_file(classes)
    data_root = prepare_data(args, num_classes=len(classes))
    cfg = build_cfg(args, data_root)
    # mmengine hands out one visualizer per name and process: a second demo
    # run in the same process would otherwise log into the first's folder.
    cfg.visualizer.name = f'vvt_demo_visualizer_{time.time_ns()}'

    runner = Runner.from_cfg(cfg)
    keep = _KeepMetrics()
    runner.register_hook(keep)
    t_train = time.time()
    try:
        runner.train()  # validates at the end (IoUMetric prints the table)
    except CheckpointError as err:
        # pretrained weights that cannot be had (no network, unsafe, misfit)
        raise SystemExit(f'error: {err}')
    train_s = time.time() - t_train
    if keep.metrics is None:
        raise RuntimeError('training ended without a validation run; '
                           'train_cfg.val_interval must divide max_iters')
    model_metrics = keep.metrics

    cls, counts = most_frequent_train_class(cfg)
    print_log(
        f'Constant baseline: predicting "{classes[cls].strip()}" '
        f'(most frequent class in the training labels, '
        f'{100 * counts[cls] / counts.sum():.1f}% of labelled pixels) '
        'everywhere',
        logger='current')
    base_metrics = constant_baseline(cfg, cls)

    picture = osp.join(args.work_dir, PICTURE)
    n_drawn = draw_predictions(runner, picture, args.num_vis)
    total_s = time.time() - t_start

    # what ran (--config, --arch), not the default demo's name
    info = describe_config(cfg)
    model_name = f'{info["backbone"]} + {info["method"]}'
    results = dict(
        model=dict(
            name=model_name,
            mIoU=model_metrics['mIoU'],
            aAcc=model_metrics['aAcc'],
            mAcc=model_metrics['mAcc']),
        constant_baseline=dict(
            cls=classes[cls].strip(),
            mIoU=base_metrics['mIoU'],
            aAcc=base_metrics['aAcc'],
            mAcc=base_metrics['mAcc']),
        max_iters=cfg.train_cfg.max_iters,
        batch_size=cfg.train_dataloader.batch_size,
        num_val=len(runner.val_dataloader.dataset),
        train_seconds=round(train_s, 1),
        total_seconds=round(total_s, 1),
        torch_threads=torch.get_num_threads(),
        picture=picture)
    with open(osp.join(args.work_dir, RESULTS), 'w') as f:
        json.dump(results, f, indent=2)
        f.write('\n')

    print('\n' + '=' * 64)
    print(f'VVT demo results on {results["num_val"]} validation images '
          f'({len(classes)} classes)')
    print(f'  {model_name:<25} mIoU {model_metrics["mIoU"]:6.2f}  '
          f'(aAcc {model_metrics["aAcc"]:.2f}, '
          f'mAcc {model_metrics["mAcc"]:.2f})')
    print(f'  constant "{classes[cls].strip()}" baseline'
          f'{" " * max(0, 8 - len(classes[cls].strip()))}'
          f'mIoU {base_metrics["mIoU"]:6.2f}  '
          f'(aAcc {base_metrics["aAcc"]:.2f}, '
          f'mAcc {base_metrics["mAcc"]:.2f})')
    print(f'  training {results["max_iters"]} iterations: {train_s:.0f} s; '
          f'whole run {total_s:.0f} s')
    print(f'  picture ({n_drawn} images): {picture}')
    print(f'  numbers: {osp.join(args.work_dir, RESULTS)}')
    print('=' * 64)
    return 0


if __name__ == '__main__':
    sys.exit(main())
