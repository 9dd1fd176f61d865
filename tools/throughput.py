"""Inference throughput (images/s) of the segmentor in a config, in fp32 and
under bf16 autocast (CPU).

Times ``model(inputs, mode='tensor')`` (backbone + neck + decode head, eval,
no_grad) on a random batch after warm-up batches; the model is randomly
initialised (no checkpoint needed: speed does not depend on the weights).

Example::

    python tools/throughput.py configs/vvt/CONFIG.py --shape 512 512 \
        --batch-size 2 --dtype fp32 bf16 --iters 10
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import DictAction  # noqa: E402

from mmseg_vvt.utils.throughput import (DTYPES,  # noqa: E402
                                        segmentor_throughput)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='mmseg config file')
    p.add_argument('--shape', type=int, nargs='+', default=[512, 512],
                   help='input H W (one value: square; default 512 512)')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--dtype', nargs='+', default=['fp32', 'bf16'],
                   choices=sorted(DTYPES),
                   help='fp32 (no autocast) and/or autocast dtypes '
                   '(default fp32 bf16)')
    p.add_argument('--iters', type=int, default=10,
                   help='timed batches per dtype (default 10)')
    p.add_argument('--warmup', type=int, default=2,
                   help='untimed batches first (default 2)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config entries, key=value')
    p.add_argument('--out', help='also write the results to this JSON file')
    args = p.parse_args(argv)
    if len(args.shape) not in (1, 2):
        p.error(f'--shape takes H W or one size, got {args.shape}')
    if not osp.isfile(args.config):
        p.error(f'config file not found: {args.config}')
    for opt in ('batch_size', 'iters'):
        if getattr(args, opt) < 1:
            p.error(f'--{opt.replace("_", "-")} must be >= 1')
    if args.warmup < 0:
        p.error('--warmup must be >= 0')
    return args


def main(argv=None):
    args = parse_args(argv)
    shape = tuple(args.shape) * (2 if len(args.shape) == 1 else 1)
    results = segmentor_throughput(
        args.config,
        shape=shape,
        batch_size=args.batch_size,
        dtypes=args.dtype,
        iters=args.iters,
        warmup=args.warmup,
        cfg_options=args.cfg_options)
    print(f'config: {args.config}')
    print(f'input: {args.batch_size} x 3 x {shape[0]} x {shape[1]}, '
          f'{args.iters} timed batches after {args.warmup} warm-up')
    print('| dtype | images/s | ms/batch (median) | finite output |')
    print('|---|---|---|---|')
    for name, r in results.items():
        print(f'| {name} | {r["images_per_s"]:.2f} | '
              f'{r["ms_per_batch_median"]:.1f} | {r["output_finite"]} |')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, results=results), f,
                      indent=1)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
