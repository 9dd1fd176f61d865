"""FLOPs and parameters of the segmentor in an mmseg config.

Uses mmengine's FlopAnalyzer (one multiply-add = 1 FLOP) with
``mmseg_vvt.utils.complexity``'s handles, so the matrix products of attention
(matmul/bmm/einsum/...) are counted exactly. Counts the inference graph
(``mode='tensor'``: backbone, neck, decode head; the train-only auxiliary
head is excluded from FLOPs and from ``params``, as in mmseg's tool).

Why not mmseg's packaged ``tools/analysis_tools/get_flops.py``: it calls
``get_model_complexity_info(model, input_shape, inputs=...)`` with both
arguments, which mmengine 0.10.7 rejects (``ValueError: "input_shape" and
"inputs" cannot be both set.``), and its stock handles undercount broadcast
matmuls / skip ``baddbmm`` and friends.

Example::

    python tools/get_flops.py configs/vvt/CONFIG.py --shape 512 512
"""
import argparse
import json
import sys
from pathlib import Path

from mmengine.analysis.print_helper import _format_size

from mmseg_vvt.utils.cli import (BadInputError, CfgOptionsAction,
                                 check_out_file, load_config, positive_int)
from mmseg_vvt.utils.complexity import segmentor_complexity


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='mmseg config file')
    p.add_argument(
        '--shape',
        type=positive_int,
        nargs='+',
        default=[512, 512],
        help='input H W (one value: square; default 512 512)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config entries, key=value')
    p.add_argument(
        '--no-table',
        action='store_true',
        help='do not print the per-module table')
    p.add_argument('--out', help='also write the numbers to this JSON file')
    p.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing --out file')
    args = p.parse_args(argv)
    if len(args.shape) not in (1, 2):
        p.error(f'--shape takes H W or one size, got {args.shape}')
    # before the model is built: the config, and where the numbers go
    if args.overwrite and not args.out:
        p.error('--overwrite replaces the --out file; there is no --out')
    try:
        args.cfg = load_config(args.config, args.cfg_options)
        if args.out:
            check_out_file(args.out, overwrite=args.overwrite)
    except BadInputError as err:
        p.error(str(err))
    return args


def main(argv=None):
    args = parse_args(argv)
    shape = tuple(args.shape) * (2 if len(args.shape) == 1 else 1)
    result = segmentor_complexity(args.cfg, shape=shape)
    line = '=' * 40
    if not args.no_table:
        print(result['table'])
    print(f'{line}\nconfig: {args.config}\n'
          f'input shape: 1 x 3 x {shape[0]} x {shape[1]}\n'
          f'FLOPs: {_format_size(result["flops"])} '
          f'({result["flops"] / 1e9:.2f} G, 1 multiply-add = 1 FLOP)\n'
          f'params: {_format_size(result["params"])} '
          f'({result["params"]}; with auxiliary head: '
          f'{result["params_with_aux"]})')
    if result['unsupported_ops']:
        ops = ', '.join(f'{k} x{v}'
                        for k, v in sorted(result['unsupported_ops'].items()))
        print(f'not counted (element-wise / no product): {ops}')
    print(line)
    if args.out:
        keep = {k: v for k, v in result.items() if k != 'table'}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, **keep), f, indent=1)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
