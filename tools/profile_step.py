"""Where a benchmark model's step spends its time: ``torch.profiler`` over a
few steps after warm-up, the ops sorted by their time on the device (CUDA
kernels on a GPU, CPU time on CPU), one table per model.

The steps are :func:`analysis_tools.benchmark.make_step`'s (forward, or
forward + backward + AdamW step), run in the model's formulation
(``vvt-s-triton``: the Triton kernels). Writes
``profile_{mode}_{device}_{dtype}.md`` to ``--out-dir``.

Examples::

    python tools/profile_step.py --device cuda --dtype fp16 \\
        --models vvt-s vvt-s-triton swin-t --size 512 --batch-size 8
    python tools/profile_step.py --models vvt-test --size 64 --steps 1
"""
import argparse
import os
import os.path as osp

from analysis_tools.benchmark import (BENCHMARK_MODELS, DEVICES, DTYPES, MODES,
                                      build_benchmark_model, check_model_names,
                                      formulation, make_step)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        '--models',
        nargs='+',
        default=['vvt-s', 'swin-t'],
        help=f'benchmark models, of: {", ".join(BENCHMARK_MODELS)}')
    p.add_argument('--mode', choices=MODES, default='train')
    p.add_argument('--device', choices=DEVICES, default='cpu')
    p.add_argument('--dtype', choices=sorted(DTYPES), default='fp32')
    p.add_argument('--size', type=int, default=512, help='input side')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--steps', type=int, default=3, help='steps profiled')
    p.add_argument('--rows', type=int, default=25, help='ops per table')
    p.add_argument('--out-dir', default='work_dirs/profile')
    args = p.parse_args(argv)
    try:
        check_model_names(args.models)
    except ValueError as e:
        p.error(str(e))
    for name in ('size', 'batch_size', 'steps', 'rows'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be at least 1, got '
                    f'{getattr(args, name)}')
    if args.warmup < 0:
        p.error(f'--warmup must be 0 or more, got {args.warmup}')
    return args


def profile_model(name, args):
    """The profiler's table for model ``name``: its top ``args.rows`` ops
    by device time over ``args.steps`` steps, and the time per step under
    the profiler and, over as many steps just before, without it (the
    project's timer: CUDA events on a GPU, the wall clock on CPU)."""
    import torch
    from analysis_tools.timing import time_call
    from torch.profiler import ProfilerActivity, profile
    cuda = args.device == 'cuda'
    model = build_benchmark_model(name).to(args.device)
    x = torch.randn(
        args.batch_size, 3, args.size, args.size, device=args.device)
    step = make_step(model, x, args.mode, args.dtype)
    activities = [ProfilerActivity.CPU
                  ] + ([ProfilerActivity.CUDA] if cuda else [])

    def steps():
        for _ in range(args.steps):
            step()

    with formulation(name):
        for _ in range(args.warmup):
            step()
        # the same steps unprofiled: the profiler's own cost per op can
        # dwarf small ops' (on CPU it more than doubled VVT-S's step), so
        # the tables are read against the step's real time
        plain = time_call(steps, args.device) / args.steps
        with profile(activities=activities) as prof:
            wall = time_call(steps, args.device) / args.steps
    key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    table = prof.key_averages().table(sort_by=key, row_limit=args.rows)
    return table, wall, plain


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    out = osp.join(args.out_dir,
                   f'profile_{args.mode}_{args.device}_{args.dtype}.md')
    with open(out, 'w') as f:
        for name in args.models:
            table, wall, plain = profile_model(name, args)
            text = (f'## {name}: {args.mode}, {args.size}x{args.size}, batch '
                    f'{args.batch_size}, {args.dtype} on {args.device}; '
                    f'{wall * 1e3:.1f} ms per step under the profiler, '
                    f'{plain * 1e3:.1f} ms without\n\n'
                    f'```\n{table}\n```\n\n')
            print(text, flush=True)
            f.write(text)
            f.flush()
    print(f'written: {out}')


if __name__ == '__main__':
    main()
