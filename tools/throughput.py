"""Throughput (images/s) of the segmentor in a config: inference in fp32 and
under autocast, or (``--train``) training with peak memory, CPU or CUDA.

Inference times ``model(inputs, mode='tensor')`` (backbone + neck + decode
head, eval, no_grad) on a random batch after warm-up batches. ``--train``
times ``model.train_step`` (what mmengine's runner calls: preprocessing,
forward with the losses, backward, the config's optimizer step), in fp32
or with ``--amp fp16|bf16``. The model is randomly initialised (speed does
not depend on the weights).

Examples::

    python tools/throughput.py configs/vvt/CONFIG.py --shape 512 512 \
        --batch-size 2 --dtype fp32 bf16 --iters 10
    # training, batch 8, AMP fp16 on a GPU; Swin-T in the same neck/heads
    python tools/throughput.py configs/vvt/CONFIG.py --train --device cuda \
        --batch-size 8 --amp fp16 --backbone swin-t
"""
import argparse
import json
import sys
from pathlib import Path

from analysis_tools.benchmark import BENCHMARK_MODELS
from analysis_tools.throughput import (DTYPES, segmentor_throughput,
                                       segmentor_train_throughput)

from mmseg_vvt.utils.cli import (BadInputError, CfgOptionsAction,
                                 check_optimizer_constructor, check_out_file,
                                 load_config, nonnegative_int, positive_int)

# the benchmark models with stage widths the neck and heads can take
SWAPPABLE = sorted(k for k, v in BENCHMARK_MODELS.items()
                   if 'out_channels' in v)


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
    p.add_argument('--batch-size', type=positive_int, default=2)
    p.add_argument(
        '--dtype',
        nargs='+',
        default=None,
        choices=sorted(DTYPES),
        help='inference: fp32 (no autocast) and/or autocast '
        'dtypes (default fp32 bf16)')
    p.add_argument(
        '--train',
        action='store_true',
        help='time training iterations instead of inference')
    p.add_argument(
        '--amp',
        nargs='+',
        choices=['fp32', 'fp16', 'bf16'],
        default=['fp32'],
        help='--train: fp32 and/or mixed precision (CUDA: '
        'AmpOptimWrapper), one fresh model each (default fp32)')
    p.add_argument(
        '--backbone',
        default=None,
        choices=SWAPPABLE,
        help='swap in this backbone of tools/benchmark_scaling.py '
        '(e.g. swin-t), the neck and heads kept')
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    p.add_argument(
        '--iters',
        type=positive_int,
        default=10,
        help='timed batches per dtype (default 10)')
    p.add_argument(
        '--warmup',
        type=nonnegative_int,
        default=2,
        help='untimed batches / iterations first (default 2)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config entries, key=value')
    p.add_argument('--out', help='also write the results to this JSON file')
    p.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing --out file')
    args = p.parse_args(argv)
    if len(args.shape) not in (1, 2):
        p.error(f'--shape takes H W or one size, got {args.shape}')
    if args.amp != ['fp32'] and not args.train:
        p.error('--amp is for --train; inference takes --dtype')
    # each flag times one kind of run: refused elsewhere, not ignored
    if args.train and args.dtype is not None:
        p.error('--dtype is for inference; --train takes --amp')
    if args.dtype is None:
        args.dtype = ['fp32', 'bf16']
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            p.error(f'--device cuda: torch {torch.__version__} sees no CUDA '
                    f'GPU here')
    # before any model is built: the config, and where the results go
    if args.overwrite and not args.out:
        p.error('--overwrite replaces the --out file; there is no --out')
    try:
        args.cfg = load_config(args.config, args.cfg_options)
        if args.train and 'optim_wrapper' not in args.cfg:
            raise BadInputError(f'--train: config {args.config} has no '
                                'optim_wrapper to train with')
        if args.train:
            check_optimizer_constructor(args.cfg, f'config {args.config}')
        if args.out:
            check_out_file(args.out, overwrite=args.overwrite)
    except BadInputError as err:
        p.error(str(err))
    return args


def train_main(args, shape):
    allocator = None
    if args.device == 'cpu':
        # what tools/train.py runs CPU training with
        from mmseg_vvt.engine.allocator import keep_freed_cpu_memory
        try:
            allocator = keep_freed_cpu_memory()[1]
        except ValueError as err:  # a bad MMSEG_VVT_CPU_ALLOCATOR
            raise SystemExit(f'error: {err}')
    results = {}
    for amp in args.amp:
        results[amp] = segmentor_train_throughput(
            args.cfg,
            shape=shape,
            batch_size=args.batch_size,
            amp=None if amp == 'fp32' else amp,
            iters=args.iters,
            warmup=args.warmup,
            device=args.device,
            backbone=args.backbone)
        if args.device == 'cuda':
            import torch
            torch.cuda.empty_cache()  # the next setting starts clean
    print(f'config: {args.config}' +
          (f' with backbone {args.backbone}' if args.backbone else ''))
    fed = next(iter(results.values()))['batch_shape']
    padded = '' if fed == shape else \
        f' (padded to {fed[0]} x {fed[1]} by the data preprocessor)'
    print(f'training on {args.device}: {args.batch_size} x 3 x {shape[0]} x '
          f'{shape[1]}{padded}, {args.iters} timed iterations after '
          f'{args.warmup} warm-up')
    if allocator:
        print(f'CPU allocator: {allocator}')
    print('| precision | images/s | ms/iter (median) | peak memory (MiB) | '
          'finite losses |')
    print('|---|---|---|---|---|')
    for amp, r in results.items():
        print(f'| {amp} ({r["optim_wrapper"]}) | {r["images_per_s"]:.2f} | '
              f'{r["ms_per_iter_median"]:.1f} | {r["peak_mib"]:.0f} '
              f'({r["memory"]}) | {r["losses_finite"]} |')
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(
                dict(
                    config=args.config,
                    backbone=args.backbone,
                    cpu_allocator=allocator,
                    train=results),
                f,
                indent=1)
        print(f'wrote {args.out}')
    return 0 if all(r['losses_finite'] for r in results.values()) else 1


def main(argv=None):
    args = parse_args(argv)
    shape = tuple(args.shape) * (2 if len(args.shape) == 1 else 1)
    if args.train:
        return train_main(args, shape)
    results = segmentor_throughput(
        args.cfg,
        shape=shape,
        batch_size=args.batch_size,
        dtypes=args.dtype,
        iters=args.iters,
        warmup=args.warmup,
        device=args.device,
        backbone=args.backbone)
    print(f'config: {args.config}' +
          (f' with backbone {args.backbone}' if args.backbone else ''))
    print(f'input: {args.batch_size} x 3 x {shape[0]} x {shape[1]}, '
          f'{args.iters} timed batches after {args.warmup} warm-up')
    print('| dtype | images/s | ms/batch (median) | finite output |')
    print('|---|---|---|---|')
    for name, r in results.items():
        print(f'| {name} | {r["images_per_s"]:.2f} | '
              f'{r["ms_per_batch_median"]:.1f} | {r["output_finite"]} |')
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(
                dict(
                    config=args.config,
                    backbone=args.backbone,
                    results=results),
                f,
                indent=1)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
