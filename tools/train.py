# Copyright (c) OpenMMLab. All rights reserved.
# mmsegmentation 1.2.2's tools/train.py (same command line), plus:
#   * ``import mmseg_vvt``: registers VVT and installs the weights_only
#     allow-list that lets ``--resume`` load mmengine checkpoints on
#     torch >= 2.6 (see mmseg_vvt/engine/checkpoint.py);
#   * CPU-only machines: SyncBN recipes build BN, ``--launcher pytorch``
#     uses gloo (mmseg_vvt/engine/runtime.py);
#   * ``--amp`` refuses with a clear message where mmengine can not do it;
#   * a missing or empty dataset (train, and val when validating) stops the
#     run before it starts, naming the path (an empty one would otherwise
#     make mmengine's InfiniteSampler wait forever;
#     mmseg_vvt/datasets/checks.py);
#   * a damaged image or label file (mmseg_vvt/datasets/transforms.py) stops
#     the run with one line naming it, also when a DataLoader worker raised
#     it;
#   * ``--resume`` continues from the newest complete checkpoint, also one
#     saved just before the job was killed (mmseg_vvt/engine/fileio.py);
#   * a checkpoint that does not fit the model (``--resume``, ``load_from``)
#     is refused unless --allow-partial-checkpoint; a refused checkpoint
#     (unsafe pickle, empty or truncated file, misfit) stops the run with
#     one line naming the file (mmseg_vvt/engine/checkpoint.py, hooks.py);
#   * CPU training keeps glibc from unmapping large freed blocks, which
#     VVT's wide hidden maps would page-fault in again every step
#     (mmseg_vvt/engine/allocator.py; MMSEG_VVT_CPU_ALLOCATOR=default: off);
#   * a config that cannot be read, has no ``model`` or a bad VVT arch,
#     a neck / head whose widths are not VVT's or with fewer classes than
#     the dataset, unmergeable --cfg-options and a work dir that is a file
#     (or lies under one) stop the run with one ``error: ...`` line before
#     it starts
#     (mmseg_vvt/utils/cli.py).
import argparse
import logging
import os
import os.path as osp

from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

import mmseg_vvt  # noqa: F401
from mmseg_vvt.datasets.checks import (DatasetNotFoundError, EmptyDatasetError,
                                       check_dataloader_datasets,
                                       runner_dataloader_keys)
from mmseg_vvt.datasets.transforms import DataFileError
from mmseg_vvt.engine import (CheckpointError, VVTConfigCheckHook,
                              add_checkpoint_fit_hook, latest_checkpoint,
                              lists_hook)
from mmseg_vvt.engine.allocator import allocator_choice, keep_freed_cpu_memory
from mmseg_vvt.engine.runtime import (AmpNotAvailableError,
                                      LauncherNotAvailableError,
                                      adapt_cfg_to_device, close_distributed,
                                      enable_amp)
from mmseg_vvt.utils.cli import (BadInputError, CfgOptionsAction,
                                 check_loader_workers,
                                 check_optimizer_constructor, check_out_dir,
                                 error_text, load_config,
                                 scratch_padding_warning)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='resume / load_from a checkpoint that does not fit the model '
        '(missing, unexpected or mis-shaped keys; logged) instead of '
        'refusing it')
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
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')

    return args, parser


def main(argv=None):
    args, parser = parse_args(argv)

    # load config (and merge --cfg-options): a config that cannot be used
    # is one line, not an mmengine traceback
    try:
        cfg = load_config(
            args.config,
            args.cfg_options,
            data=('train_dataloader', 'val_dataloader'))
        check_loader_workers(cfg, runner_dataloader_keys(cfg, 'train'),
                             f'config {args.config}')
        check_optimizer_constructor(cfg, f'config {args.config}')
        allocator_choice()  # a bad value is named on every device
    except (BadInputError, ValueError) as err:
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
    # a file there would end in a FileExistsError traceback from mmengine
    try:
        check_out_dir(
            cfg.work_dir,
            '--work-dir' if args.work_dir is not None else 'work_dir')
    except BadInputError as err:
        raise SystemExit(f'error: {err}')

    # enable automatic-mixed-precision training
    if args.amp is True:
        try:
            enable_amp(cfg)
        except AmpNotAvailableError as err:
            parser.error(str(err))

    # resume training
    cfg.resume = args.resume
    if args.resume and cfg.get('load_from') is None:
        # also a checkpoint saved just before a kill, which mmengine's
        # last_checkpoint record does not name yet
        cfg.load_from = latest_checkpoint(cfg.work_dir)
    # refuse a checkpoint of another model unless a partial load is asked
    add_checkpoint_fit_hook(cfg, args.allow_partial_checkpoint)

    # CPU-only machines: SyncBN -> BN, gloo process group for --launcher
    try:
        adapt_cfg_to_device(cfg, cfg.launcher)  # --cfg-options' say
    except LauncherNotAvailableError as err:
        raise SystemExit(f'error: {err}')

    # the datasets the runner will build exist and are not empty
    try:
        check_dataloader_datasets(cfg, runner_dataloader_keys(cfg, 'train'))
    except (DatasetNotFoundError, EmptyDatasetError) as err:
        raise SystemExit(f'error: {err}')

    # CPU training: freed tensors' memory reused, not faulted in anew each
    # step (mmseg_vvt/engine/allocator.py); before the runner allocates
    if get_device() == 'cpu':
        _, allocator = keep_freed_cpu_memory()
        if int(os.environ.get('RANK', '0')) == 0:  # once per job
            print_log(f'CPU training: {allocator}', logger='current')

    # build the runner from config
    if 'runner_type' not in cfg:
        # build the default runner
        runner = Runner.from_cfg(cfg)
    else:
        # build customized runner from the registry
        # if 'runner_type' is set in the cfg
        runner = RUNNERS.build(cfg)
    # random weights on zero padding: the first steps' gradients explode.
    # Logged by the runner's logger (into the work_dir's log, rank 0 only),
    # here unless the config's VVTConfigCheckHook says it in before_run
    warning = scratch_padding_warning(cfg, f'config {args.config}')
    if warning and not lists_hook(cfg, VVTConfigCheckHook):
        print_log(warning, logger='current', level=logging.WARNING)

    if args.resume and cfg.get('load_from') is None:
        print_log(
            f'--resume: no checkpoint found in {cfg.work_dir}, so training '
            'starts from iteration 0.',
            logger='current',
            level=logging.WARNING)

    # start training
    try:
        runner.train()
    except CheckpointError as err:
        raise SystemExit(f'error: {err}')
    except DataFileError as err:  # from a DataLoader worker too
        raise SystemExit(f'error: {error_text(err)}')
    # a live gloo group can abort the process at interpreter exit
    close_distributed()
    return runner


if __name__ == '__main__':
    main()
