"""Where a benchmark model's step spends its time: ``torch.profiler`` over a
few steps after warm-up, the ops sorted by their time on the device (CUDA
kernels on a GPU, CPU time on CPU), one table per model.

The steps are :func:`analysis_tools.benchmark.make_step`'s (forward, or
forward + backward + AdamW step), run in the model's formulation
(``vvt-s-triton``: the Triton kernels). Writes
``profile_{mode}_{device}_{dtype}.md`` to ``--out-dir``.

``--functions`` times instead, without the profiler, the forward and the
backward of each of the project's autograd functions (the training
kernels: :mod:`mmseg_vvt.models.kernels.autograd`, and the Triton ones
when the model uses them) in as many steps, with their share of the step
(``profile_functions_...md``). On CUDA each timed call synchronises, which
takes the host's lead over the GPU away: read those shares with that in
mind.

Examples::

    python tools/profile_step.py --device cuda --dtype fp16 \\
        --models vvt-s vvt-s-triton swin-t --size 512 --batch-size 8
    python tools/profile_step.py --models vvt-test --size 64 --steps 1
"""
import argparse
import collections
import contextlib
import os
import os.path as osp
import sys
import time

from analysis_tools.benchmark import (BENCHMARK_MODELS, DEVICES, DTYPES, MODES,
                                      build_benchmark_model, check_model_names,
                                      device_label, formulation, machine_meta,
                                      make_step)

from mmseg_vvt.utils.cli import BadInputError, check_device, check_out_dir


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
    p.add_argument(
        '--functions',
        action='store_true',
        help='time the project\'s autograd functions without the profiler '
        'instead (see above)')
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
    try:  # one line, before any measuring: the device, the reports' folder
        check_device(args.device)
        check_out_dir(args.out_dir)
    except BadInputError as err:
        p.error(str(err))
    return args


def _model_step(name, args):
    """Benchmark model ``name``'s step on a random batch (see above)."""
    import torch
    model = build_benchmark_model(name).to(args.device)
    x = torch.randn(
        args.batch_size, 3, args.size, args.size, device=args.device)
    return make_step(model, x, args.mode, args.dtype)


def profile_model(name, args):
    """The profiler's table for model ``name``: its top ``args.rows`` ops
    by device time over ``args.steps`` steps, and the time per step under
    the profiler and, over as many steps just before, without it (the
    project's timer: CUDA events on a GPU, the wall clock on CPU)."""
    from analysis_tools.timing import time_call
    from torch.profiler import ProfilerActivity, profile
    cuda = args.device == 'cuda'
    step = _model_step(name, args)
    activities = [ProfilerActivity.CPU
                  ] + ([ProfilerActivity.CUDA] if cuda else [])

    def steps():
        for _ in range(args.steps):
            step()

    with formulation(name):
        for _ in range(args.warmup):
            step()
        # the same steps unprofiled: the profiler adds a cost per op, more
        # to a model of many small ops, so the tables are read against the
        # step's real time (docs/benchmark.md has measured figures)
        plain = time_call(steps, args.device) / args.steps
        with profile(activities=activities) as prof:
            wall = time_call(steps, args.device) / args.steps
    key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    table = prof.key_averages().table(sort_by=key, row_limit=args.rows)
    return table, wall, plain


def _autograd_functions():
    """The ``torch.autograd.Function`` classes of the training kernels'
    modules that are loaded (the Triton one only once a model used it)."""
    import torch
    names = ('mmseg_vvt.models.kernels.autograd',
             'mmseg_vvt.models.kernels.triton_attention')
    found = []
    for module in filter(None, map(sys.modules.get, names)):
        found += [
            obj for obj in vars(module).values() if isinstance(obj, type)
            and issubclass(obj, torch.autograd.Function)
            and obj.__module__ == module.__name__
        ]
    return found


@contextlib.contextmanager
def timed_functions(functions, device):
    """Inside the ``with`` block every call of ``functions``' ``forward``
    and ``backward`` adds its seconds to ``totals[(class name, phase)]``
    (autograd looks both up on the class at each call)."""
    import torch
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    totals = collections.defaultdict(float)
    originals = []

    def timed(fn, key):

        def call(*args):
            sync()
            start = time.perf_counter()
            result = fn(*args)
            sync()
            totals[key] += time.perf_counter() - start
            return result

        return staticmethod(call)

    for cls in functions:
        for phase in ('forward', 'backward'):
            original = cls.__dict__[phase]
            originals.append((cls, phase, original))
            setattr(cls, phase, timed(original.__func__,
                                      (cls.__name__, phase)))
    try:
        yield totals
    finally:
        for cls, phase, original in originals:
            setattr(cls, phase, original)


def time_functions(name, args):
    """A markdown table: each autograd function's forward and backward
    time per step over ``args.steps`` unprofiled steps, and its share of
    the step."""
    from analysis_tools.timing import time_call
    step = _model_step(name, args)

    def steps():
        for _ in range(args.steps):
            step()

    with formulation(name):
        for _ in range(max(args.warmup, 1)):  # loads the kernels' modules
            step()
        with timed_functions(_autograd_functions(), args.device) as totals:
            wall = time_call(steps, args.device) / args.steps
    rows = collections.defaultdict(dict)
    for (cls, phase), seconds in totals.items():
        rows[cls][phase] = seconds / args.steps
    lines = [
        '| function | forward (ms / step) | backward (ms / step) | '
        'share of the step |', '|---|---|---|---|'
    ]
    ordered = sorted(rows.items(), key=lambda kv: -sum(kv[1].values()))
    for cls, t in ordered:
        lines.append(f'| {cls} | {t.get("forward", 0) * 1e3:.1f} | '
                     f'{t.get("backward", 0) * 1e3:.1f} | '
                     f'{sum(t.values()) / wall:.0%} |')
    if not rows:
        lines.append('| (none: the model calls none of them) | | | |')
    timed = sum(sum(t.values()) for t in rows.values())
    lines.append(f'| everything else | | | {1 - timed / wall:.0%} |')
    return '\n'.join(lines), wall


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    kind = 'profile_functions' if args.functions else 'profile'
    out = osp.join(args.out_dir,
                   f'{kind}_{args.mode}_{args.device}_{args.dtype}.md')
    allocator = ''
    if args.device == 'cpu' and args.mode == 'train':
        # what tools/train.py runs CPU training with
        from mmseg_vvt.engine.allocator import keep_freed_cpu_memory
        try:
            allocator = f'- CPU allocator: {keep_freed_cpu_memory()[1]}\n'
        except ValueError as err:  # a bad MMSEG_VVT_CPU_ALLOCATOR
            raise SystemExit(f'error: {err}')
    import torch
    meta = machine_meta(args.device)
    meta['torch_threads'] = torch.get_num_threads()
    header = (f'- {meta["date_utc"]}, commit `{meta["git_commit"]}`\n'
              f'- {device_label(meta)}\n{allocator}'
              f'- load average at start: '
              f'{", ".join(f"{x:.2f}" for x in meta["load_avg_at_start"])}'
              f'\n- command: `tools/profile_step.py '
              f'{" ".join(sys.argv[1:] if argv is None else argv)}`\n\n')
    with open(out, 'w') as f:
        f.write(header)
        for name in args.models:
            title = (f'## {name}: {args.mode}, {args.size}x{args.size}, '
                     f'batch {args.batch_size}, {args.dtype} on {args.device}')
            if args.functions:
                table, wall = time_functions(name, args)
                text = (f'{title}; {wall * 1e3:.1f} ms per step with the '
                        f'functions timed\n\n{table}\n\n')
            else:
                table, wall, plain = profile_model(name, args)
                text = (f'{title}; {wall * 1e3:.1f} ms per step under the '
                        f'profiler, {plain * 1e3:.1f} ms without\n\n'
                        f'```\n{table}\n```\n\n')
            print(text, flush=True)
            f.write(text)
            f.flush()
    print(f'written: {out}')


if __name__ == '__main__':
    main()
