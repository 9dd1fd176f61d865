"""Build a VVT backbone; print its stage shapes, parameters, forward time.

    python tools/vvt_info.py --arch small --shape 512 512
"""
import argparse
import sys

import torch
from analysis_tools.timing import time_calls
from mmseg.registry import MODELS

import mmseg_vvt  # noqa: F401  (registers VVT)
from mmseg_vvt.models.backbones.vvt import VVT
from mmseg_vvt.utils.cli import positive_int


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        '--arch',
        default='small',
        choices=sorted(VVT.arch_zoo),
        help='tiny | small | medium | large (or t, s, m, l; default: small)')
    p.add_argument(
        '--shape',
        type=positive_int,
        nargs=2,
        default=(512, 512),
        metavar=('H', 'W'),
        help='input size (default: 512 512)')
    p.add_argument('--batch-size', type=positive_int, default=1)
    p.add_argument(
        '--repeats',
        type=positive_int,
        default=3,
        help='timed forward passes after one warm-up (median)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model = MODELS.build(dict(type='VVT', arch=args.arch)).eval()
    model.init_weights()
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(args.batch_size, 3, *args.shape)
    with torch.no_grad():
        outs = model(x)  # the stage shapes (and the warm-up)
        timing = time_calls(
            lambda: model(x), 'cpu', repeats=args.repeats, warmup=0)
    print(f'VVT-{args.arch}: {params / 1e6:.2f}M backbone parameters')
    print(f'input {tuple(x.shape)}')
    for i, o in enumerate(outs):
        # the patch embeddings' strides (4, then 2 per stage); a map's size
        # is the input's divided by it, rounded up
        print(f'  stage {i + 1}: {tuple(o.shape)}  (stride {4 * 2**i})')
    if any(s % 32 for s in args.shape):
        print(f'  (H, W = {args.shape[0]}, {args.shape[1]} are not '
              'multiples of 32: the maps are rounded up)')
    print(f'forward (CPU, fp32, {torch.get_num_threads()} threads, median of '
          f'{args.repeats}): {timing["median_s"] * 1000:.0f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
