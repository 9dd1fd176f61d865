# Copyright (c) OpenMMLab. All rights reserved.
# mmsegmentation 1.2.2's tools/test.py (same command line), plus:
#   * ``import mmseg_vvt``: registers VVT and installs the weights_only
#     allow-list that lets mmengine checkpoints load on torch >= 2.6;
#   * CPU-only machines: SyncBN recipes build BN, ``--launcher pytorch``
#     uses gloo (mmseg_vvt/engine/runtime.py);
#   * the summary (aAcc, mIoU, mAcc) and the per-class IoU/Acc that the
#     configs' PerClassIoUMetric returns are written to
#     ``<work_dir>/eval_<timestamp>.json`` (never overwriting a file), next
#     to the table mmseg prints (mmseg_vvt/evaluation/), with how it was
#     made: --tta, a partial checkpoint load, the --cfg-options;
#   * a missing or empty test dataset stops the run before the model is
#     built, naming the path (mmseg_vvt/datasets/checks.py);
#   * a damaged image or label file (mmseg_vvt/datasets/transforms.py) stops
#     the run with one line naming it, also when a DataLoader worker raised
#     it;
#   * a checkpoint that does not fit the model (missing / unexpected keys,
#     other shapes) is refused unless --allow-partial-checkpoint; a refused
#     checkpoint (unsafe pickle, empty or truncated file, misfit) stops the
#     run with one line naming the file and no eval JSON
#     (mmseg_vvt/engine/checkpoint.py, hooks.py);
#   * the iteration (and epoch) the checkpoint reached, from its ``meta``,
#     is recorded in the eval JSON, for collect_results.py's Lr schd;
#   * a config that cannot be read, has no ``model`` or a bad VVT arch,
#     a neck / head whose widths are not VVT's or with fewer classes than
#     the test dataset, unmergeable --cfg-options, a --work-dir / --out
#     that is a file (or lies under one), and an --out folder holding files
#     (an earlier run's predictions; --overwrite lets them be replaced) stop
#     the run with one ``error: ...`` line before the model is built
#     (mmseg_vvt/utils/cli.py).
import argparse
import logging
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import Runner

import mmseg_vvt  # noqa: F401
from mmseg_vvt.datasets.checks import (DatasetNotFoundError, EmptyDatasetError,
                                       check_dataloader_datasets,
                                       runner_dataloader_keys)
from mmseg_vvt.datasets.transforms import DataFileError
from mmseg_vvt.engine import (CheckpointError, CheckpointFitHook,
                              add_checkpoint_fit_hook)
from mmseg_vvt.engine.runtime import (LauncherNotAvailableError,
                                      adapt_cfg_to_device, close_distributed)
from mmseg_vvt.evaluation import write_eval_json
from mmseg_vvt.evaluation.eval_json import checkpoint_progress
from mmseg_vvt.utils.cli import (BadInputError, CfgOptionsAction,
                                 check_classes, check_loader_workers,
                                 check_out_dir, error_text, load_config)


# TODO: support fuse_conv_bn, visualization, and format_only
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help=('if specified, the evaluation metric results will be dumped'
              'into the directory as json'))
    parser.add_argument(
        '--out',
        type=str,
        help='The directory to save output prediction for offline '
        'evaluation; refused if it holds files, unless --overwrite')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='let --out write into a folder that holds files (predictions '
        'of the same images are replaced)')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved, under '
        'SHOW_DIR/vis_data/vis_image/ (a relative SHOW_DIR is relative to '
        "the current directory, not the work_dir, as in mmseg's test.py)")
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='load a checkpoint that does not fit the model (missing, '
        'unexpected or mis-shaped keys; logged) instead of refusing it')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')
    if '://' not in args.checkpoint and not osp.isfile(
            osp.expanduser(args.checkpoint)):
        parser.error(f'checkpoint file {args.checkpoint!r} does not exist')

    return args


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' in default_hooks:
        visualization_hook = default_hooks['visualization']
        # Turn on visualization
        visualization_hook['draw'] = True
        if args.show:
            visualization_hook['show'] = True
            visualization_hook['wait_time'] = args.wait_time
        if args.show_dir:
            visualizer = cfg.visualizer
            visualizer['save_dir'] = args.show_dir
    else:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks.'
            'refer to usage '
            '"visualization=dict(type=\'VisualizationHook\')"')

    return cfg


class CheckpointProgressHook(Hook):
    """Keeps the iteration and epoch in the ``meta`` of the checkpoint the
    runner loads (the runner drops the checkpoint after loading it)."""
    priority = 'LOWEST'

    def __init__(self):
        self.progress = dict(iter=None, epoch=None)

    def after_load_checkpoint(self, runner, checkpoint):
        self.progress = checkpoint_progress(checkpoint)


def check_outputs(cfg, args):
    """The work dir and ``--out`` can be written, and ``--out`` holds no
    files of an earlier run unless ``--overwrite``; BadInputError if not."""
    check_out_dir(cfg.work_dir,
                  '--work-dir' if args.work_dir is not None else 'work_dir')
    if args.out is None:
        return
    out = check_out_dir(args.out, '--out')
    # IoUMetric writes <image name>.png there: an earlier run's predictions
    # would be replaced one by one, mixed with this run's
    if not args.overwrite and out.is_dir() and any(out.iterdir()):
        raise BadInputError(
            f'--out {args.out} already holds files (an earlier run\'s '
            'predictions?); give an empty or new folder, or pass '
            '--overwrite to write into it')


def main(argv=None):
    args = parse_args(argv)

    # load config (and merge --cfg-options): a config that cannot be used
    # is one line, not an mmengine traceback
    try:
        cfg = load_config(
            args.config, args.cfg_options, data=('test_dataloader', ))
        check_loader_workers(cfg, runner_dataloader_keys(cfg, 'test'),
                             f'config {args.config}')
    except BadInputError as err:
        raise SystemExit(f'error: {err}')
    # as in mmseg, --cfg-options (merged above) have the last word
    if 'launcher' not in (args.cfg_options or {}):
        cfg.launcher = args.launcher

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        # update configs according to CLI args if args.work_dir is not None
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        # use config filename as default work_dir if cfg.work_dir is None
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    # before anything is built: mmengine would fail with a FileExistsError
    # traceback on a file, and silently overwrite earlier predictions
    try:
        check_outputs(cfg, args)
    except BadInputError as err:
        raise SystemExit(f'error: {err}')

    cfg.load_from = args.checkpoint
    # refuse a checkpoint of another model unless a partial load is asked
    add_checkpoint_fit_hook(cfg, args.allow_partial_checkpoint)

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        # mmseg's dataset _base_ files define tta_pipeline, its
        # default_runtime tta_model; a config without them fails here
        missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
        if missing:
            raise SystemExit(f'error: --tta needs {" and ".join(missing)} '
                             f'in the config {args.config}; it has none')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
        # load_config checked the pipeline TTA has just replaced
        try:
            check_classes(
                cfg, ('test_dataloader', ),
                f'config {args.config}',
                log_more=False)
        except BadInputError as err:
            raise SystemExit(f'error: {err}')

    # add output_dir in metric
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True

    # CPU-only machines: SyncBN -> BN, gloo process group for --launcher
    try:
        adapt_cfg_to_device(cfg, cfg.launcher)  # --cfg-options' say
    except LauncherNotAvailableError as err:
        raise SystemExit(f'error: {err}')

    # the dataset the runner will build exists and is not empty
    try:
        check_dataloader_datasets(cfg, runner_dataloader_keys(cfg, 'test'))
    except (DatasetNotFoundError, EmptyDatasetError) as err:
        raise SystemExit(f'error: {err}')

    # build the runner from config
    runner = Runner.from_cfg(cfg)
    progress = CheckpointProgressHook()
    runner.register_hook(progress)

    # start testing
    try:
        metrics = runner.test()
    except CheckpointError as err:
        raise SystemExit(f'error: {err}')
    except DataFileError as err:  # from a DataLoader worker too
        raise SystemExit(f'error: {error_text(err)}')

    if is_main_process():
        summary = dict(metrics)
        per_class = summary.pop('per_class', None)
        if per_class is not None:
            fit = [h for h in runner.hooks if isinstance(h, CheckpointFitHook)]
            path = write_eval_json(
                cfg.work_dir,
                timestamp=runner.timestamp,
                config=args.config,
                checkpoint=args.checkpoint,
                dataset=cfg.test_dataloader.dataset.get('type', ''),
                metrics=summary,
                per_class=per_class,
                tta=args.tta,
                partial_checkpoint=any(h.fits is False for h in fit),
                cfg_options=args.cfg_options,
                checkpoint_iter=progress.progress['iter'],
                checkpoint_epoch=progress.progress['epoch'])
            print_log(
                f'evaluation results written to {path}', logger='current')
        else:
            print_log(
                'the test evaluator returned no per-class results (it is '
                "not type='PerClassIoUMetric', or format_only), so no eval "
                'JSON was written',
                logger='current',
                level=logging.WARNING)
    # a live gloo group can abort the process at interpreter exit
    close_distributed()
    return metrics


if __name__ == '__main__':
    main()
