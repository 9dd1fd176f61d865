#!/usr/bin/env python
"""Check a dataset directory in the ADE20K layout before training on it.

The command line of ``mmseg_vvt.datasets.ade20k_check`` (the checks are
listed there and in docs/data.md): layout, pairing, complete decoding,
label values and modes, sizes, and the number of pairs per split. Every
problem is printed with the path it concerns.

Exit status 0 when everything is fine, 1 when problems were found.

Usage::

    python tools/check_ade20k.py data/ade
    python tools/check_ade20k.py data/demo --num-train 300 --num-val 60 \
        --num-classes 6
"""
import argparse
import sys

from mmseg_vvt.datasets.ade20k_check import (ADE20K_NUM_CLASSES,
                                             ADE20K_NUM_TRAIN, ADE20K_NUM_VAL,
                                             check_dataset, find_root)
from mmseg_vvt.utils.cli import positive_int


def count_or_skip(text):
    """argparse ``type=``: a pair count >= 0, or -1 to skip the check."""
    value = int(text)
    if value < -1:
        raise argparse.ArgumentTypeError(
            f'expected a count >= 0, or -1 to skip the check, got {value}')
    return value


def num_classes(text):
    """argparse ``type=``: 1..254 classes (label 0 and 255 are ignored,
    so a class id is 1..254)."""
    value = positive_int(text)
    if value > 254:
        raise argparse.ArgumentTypeError(
            f'expected at most 254 classes (labels 1..K; 0 and 255 are '
            f'ignored), got {value}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check a dataset in the ADE20K layout and list every '
        'problem with its path (exit status 1 if there are any).')
    parser.add_argument(
        'dir',
        help='dataset directory (the '
        'ADEChallengeData2016 folder or its parent)')
    parser.add_argument(
        '--num-train',
        type=count_or_skip,
        default=ADE20K_NUM_TRAIN,
        help='expected training pairs (default '
        f'{ADE20K_NUM_TRAIN}); -1 skips the count check')
    parser.add_argument(
        '--num-val',
        type=count_or_skip,
        default=ADE20K_NUM_VAL,
        help='expected validation pairs (default '
        f'{ADE20K_NUM_VAL}); -1 skips the count check')
    parser.add_argument(
        '--num-classes',
        type=num_classes,
        default=ADE20K_NUM_CLASSES,
        help='number of classes: label values 1..K are the '
        'classes, 0 ("other") and 255 are ignored (default '
        f'{ADE20K_NUM_CLASSES})')
    parser.add_argument(
        '--jobs',
        type=positive_int,
        default=None,
        help='decoding processes (default: one per CPU; 1: no worker '
        'processes)')
    parser.add_argument(
        '--quiet', action='store_true', help='no progress output')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def progress(done, total):
        if done == total or done % 1000 == 0:
            print(f'  checked {done}/{total} pairs', file=sys.stderr)

    problems = check_dataset(
        args.dir,
        num_train=None if args.num_train < 0 else args.num_train,
        num_val=None if args.num_val < 0 else args.num_val,
        num_classes=args.num_classes,
        jobs=args.jobs,
        progress=None if args.quiet else progress)
    for path, msg in problems:
        print(f'{path}: {msg}')
    root = find_root(args.dir)
    if problems:
        print(f'{len(problems)} problem(s) found in {root}')
        return 1
    print(f'OK: {root} looks like a valid ADE20K-layout dataset')
    return 0


if __name__ == '__main__':
    sys.exit(main())
