"""Collect the evaluation results of several work dirs into one table.

Reads the ``eval_*.json`` files that ``tools/test.py`` writes into a work
dir (the newest per work dir, or all with ``--all``), loads the config each
result records, and prints a markdown table in mmseg's model-zoo style
with the columns Method (decode head), Backbone, Crop Size, Lr schd
(iterations), Params (M), GFLOPs, mIoU and config. Results of ``--tta``
runs go into an mIoU(ms+flip) column; a result from a partially loaded
checkpoint or with ``--cfg-options`` is marked, with a note under the table.

Lr schd is the iteration the tested checkpoint reached (recorded by
``tools/test.py`` from the checkpoint's ``meta``): the config's
``max_iters`` when it got there, else e.g. ``2 (of 400)``. When the eval
JSON does not say (a checkpoint without ``meta``, a file written before
``tools/test.py`` recorded it) the cell is the config's ``max_iters`` with a
numbered note under the table, e.g. ``400 (1)``. Epoch-based configs: the
same in epochs.

Params exclude the auxiliary head (it is not used at inference); GFLOPs
count one image of the crop size (or ``--shape H W``) with
``mmseg_vvt.utils.complexity`` (one multiply-add = one FLOP, as in the
papers). ``--no-flops`` skips the FLOP count (``-`` in the table).

Example::

    python tools/collect_results.py work_dirs/fpn_vvt-t* \\
        work_dirs/fpn_vvt-s* --out results.md
"""
import argparse
import sys
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Collect tools/test.py results (eval_*.json) of several '
        'work dirs into one markdown table.')
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    parser.add_argument(
        '--out',
        default=None,
        help='write the table to this file (default: print)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing --out file')
    parser.add_argument(
        '--all',
        action='store_true',
        help='one row per result file instead of the newest '
        'per work dir')
    parser.add_argument(
        '--no-flops',
        action='store_true',
        help='do not count FLOPs (GFLOPs column shows -)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='input size for GFLOPs (default: crop size)')
    args = parser.parse_args(argv)
    if args.shape is not None and min(args.shape) < 1:
        parser.error(f'--shape must be positive, got {args.shape}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg_vvt.apis.results import ResultsError, collect_results

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.overwrite:
        print(
            f'error: {out} exists; pass --overwrite to replace it',
            file=sys.stderr)
        return 2
    try:
        table = collect_results(
            args.work_dirs,
            flops=not args.no_flops,
            all_results=args.all,
            flops_shape=tuple(args.shape) if args.shape else None)
    except ResultsError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if out is None:
        print(table, end='')
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
