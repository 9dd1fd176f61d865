"""Build a VVT backbone; print its stage shapes, parameters, forward time.

    python tools/vvt_info.py --arch small --shape 512 512
"""
import argparse

import torch
from analysis_tools.timing import time_calls
from mmseg.registry import MODELS

import mmseg_vvt  # noqa: F401  (registers VVT)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        '--arch',
        default='small',
        help='tiny | small | medium | large (default: small)')
    p.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=(512, 512),
        metavar=('H', 'W'),
        help='input size (default: 512 512)')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument(
        '--repeats',
        type=int,
        default=3,
        help='timed forward passes after one warm-up (median)')
    return p.parse_args()


def main():
    args = parse_args()
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
        print(f'  stage {i + 1}: {tuple(o.shape)}  (stride '
              f'{args.shape[0] / o.shape[2]:.0f})')
    print(f'forward (CPU, fp32, {torch.get_num_threads()} threads, median of '
          f'{args.repeats}): {timing["median_s"] * 1000:.0f} ms')


if __name__ == '__main__':
    main()
