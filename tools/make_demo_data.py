#!/usr/bin/env python
"""Write a small synthetic segmentation dataset in the ADE20K layout.

The command line of ``mmseg_vvt.datasets.demo_data`` (what the data looks
like, its layout and label convention are described there and in
docs/data.md): the dataset ``configs/vvt_fpn_demo.py`` trains on, a pure
function of ``--seed``.

Usage::

    python tools/make_demo_data.py data/demo
    python tools/make_demo_data.py data/demo --seed 1 --num-train 300 \
        --num-val 60 --size 160 --force
"""
import argparse
import sys

from mmseg_vvt.datasets.demo_data import (CLASS_NAMES, DEFAULT_NUM_TRAIN,
                                          DEFAULT_NUM_VAL, DEFAULT_SEED,
                                          DEFAULT_SIZE, NUM_CLASSES, generate)
from mmseg_vvt.utils.cli import BadInputError, check_out_dir, nonnegative_int


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small synthetic dataset in the ADE20K layout '
        '(OUT/ADEChallengeData2016/{images,annotations}/'
        '{training,validation}).')
    parser.add_argument('out_dir', help='output directory, e.g. data/demo')
    parser.add_argument(
        '--seed',
        type=nonnegative_int,
        default=DEFAULT_SEED,
        help='random seed; same seed gives identical files '
        f'(default {DEFAULT_SEED})')
    parser.add_argument(
        '--num-train',
        type=int,
        default=DEFAULT_NUM_TRAIN,
        help=f'training samples (default {DEFAULT_NUM_TRAIN})')
    parser.add_argument(
        '--num-val',
        type=int,
        default=DEFAULT_NUM_VAL,
        help=f'validation samples (default {DEFAULT_NUM_VAL})')
    parser.add_argument(
        '--size',
        type=int,
        nargs='+',
        metavar='PX',
        default=list(DEFAULT_SIZE),
        help='image size: SIZE for square images or HEIGHT '
        f'WIDTH (default {DEFAULT_SIZE[0]} {DEFAULT_SIZE[1]})')
    parser.add_argument(
        '--force',
        action='store_true',
        help='replace OUT/ADEChallengeData2016 if OUT is '
        'not empty')
    args = parser.parse_args(argv)
    if len(args.size) == 1:
        args.size = [args.size[0], args.size[0]]
    elif len(args.size) != 2:
        parser.error(f'--size takes SIZE or HEIGHT WIDTH, got {args.size}')
    try:  # a file where the folder goes: one line, not a makedirs traceback
        check_out_dir(args.out_dir, flag='out_dir')
    except BadInputError as err:
        parser.error(str(err))
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        root = generate(
            args.out_dir,
            seed=args.seed,
            num_train=args.num_train,
            num_val=args.num_val,
            size=tuple(args.size),
            force=args.force)
    except (FileExistsError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'demo dataset ready: {root} ({NUM_CLASSES} classes: '
          f'{", ".join(CLASS_NAMES)}; label 0 = ignore)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
