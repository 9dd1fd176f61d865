"""Scaling benchmark of VVT against its peers across input resolutions.

Measures, per model and resolution: params, GFLOPs (mmengine's counter with
the attention products counted), latency (warm-up, interleaved repeats,
median; CUDA events on a GPU) and peak memory (each model in its own
process; peak RSS from a fresh mark on CPU, ``max_memory_allocated`` on
CUDA). Writes ``scaling_{mode}[_{device}_{dtype}[_compiled]].json``, ``.md``
(table with ratios vs the straightforward VVT-S and vs Swin-T) and ``.png``
(GFLOPs, latency and memory against resolution) to ``--out-dir``.
``--proxies`` instead prints the device-independent proxies of GPU cost
(ops dispatched and bytes saved for backward in one training step).

Examples::

    # full run (minutes to an hour on a small CPU)
    python tools/benchmark_scaling.py --resolutions 512 1024 2048
    # training step (forward + backward + AdamW step)
    python tools/benchmark_scaling.py --mode train --resolutions 512 1024
    # on a GPU, under fp16 autocast, compiled
    python tools/benchmark_scaling.py --device cuda --dtype fp16 --compile
    # ops per training step and bytes saved for backward (CPU, 256x256)
    python tools/benchmark_scaling.py --proxies --models vvt-s swin-t
    # the same under bf16 autocast (mixed precision's casts counted)
    python tools/benchmark_scaling.py --proxies --dtype bf16
    # CI-size plumbing check
    python tools/benchmark_scaling.py --quick --models vvt-test \
        vvt-test-reference --reference vvt-test-reference --out-dir /tmp/b
"""
import argparse
import json
import os
import os.path as osp
import sys

from analysis_tools.benchmark import (BENCHMARK_MODELS, DEFAULT_MODELS,
                                      DEFAULT_RESOLUTIONS, DEVICES, DTYPES,
                                      MODES, check_model_names, output_stem,
                                      proxies_stem, recount_flops,
                                      render_proxies, run_benchmark,
                                      run_proxies, write_outputs)

from mmseg_vvt.utils.cli import (BadInputError, check_out_dir, nonnegative_int,
                                 positive_float, positive_int)

QUICK = dict(resolutions=[64, 128], repeats=1, warmup=0)


def _mem_total_gb():
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemTotal:'):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def parse_args(argv=None):
    models_help = ', '.join(f'{k} ({v["label"]})'
                            for k, v in BENCHMARK_MODELS.items())
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        '--resolutions',
        type=positive_int,
        nargs='+',
        help=f'square input sizes (default {list(DEFAULT_RESOLUTIONS)}, '
        f'--quick: {QUICK["resolutions"]})')
    p.add_argument(
        '--models',
        nargs='+',
        default=None,
        help=f'models to run (default {" ".join(DEFAULT_MODELS)}); '
        f'known: {models_help}')
    p.add_argument(
        '--mode',
        choices=MODES,
        default=None,
        help='forward: eval forward under no_grad; train: '
        'forward + backward + AdamW step (default forward; with '
        '--proxies: train)')
    p.add_argument(
        '--device',
        choices=DEVICES,
        default='cpu',
        help='where to run (cuda: timed with CUDA events, peak '
        'from max_memory_allocated; default cpu)')
    p.add_argument(
        '--dtype',
        choices=sorted(DTYPES),
        default='fp32',
        help='fp32 (no autocast) or an autocast dtype '
        '(default fp32)')
    p.add_argument(
        '--compile',
        action='store_true',
        help='time torch.compile(model); a compile failure is '
        'reported in that model\'s row')
    p.add_argument(
        '--proxies',
        action='store_true',
        help='do not time: print the ops dispatched and bytes '
        'saved for backward in one training step (with --mode forward: '
        'the ops and peak live bytes of one inference forward) on '
        '--device, fp32 or under autocast to --dtype, --proxy-resolution, '
        '--batch-size 2 unless given, and write proxies.json/.md '
        '(proxies[_forward][_cuda][_{dtype}].* otherwise) to --out-dir')
    p.add_argument('--proxy-resolution', type=positive_int, default=256)
    p.add_argument(
        '--skip-triton-interpreter',
        action='store_true',
        help='with --proxies on CPU: count the Triton kernels\' ops and '
        'outputs without running them in Triton\'s interpreter (the same '
        'ops; an interpreted VVT-S forward at 2048x2048 takes over an '
        'hour)')
    p.add_argument(
        '--repeats',
        type=positive_int,
        help='timed repeats per model (interleaved; default 3, '
        '--quick: 1)')
    p.add_argument(
        '--warmup',
        type=nonnegative_int,
        help='warm-up rounds after the memory pass and the FLOP '
        'trace (default 1, --quick: 0)')
    p.add_argument(
        '--budget-s',
        type=positive_float,
        default=None,
        help='stop repeating a model at a resolution once its '
        'timed repeats add up to this many seconds (at least one '
        'repeat always runs); default: no limit')
    p.add_argument(
        '--batch-size',
        type=positive_int,
        default=None,
        help='default 1 (--proxies: 2)')
    p.add_argument(
        '--threads',
        type=positive_int,
        default=None,
        help='torch threads per worker (default: torch default)')
    p.add_argument(
        '--no-flops',
        action='store_true',
        help='skip the FLOP count (it costs one traced pass)')
    default_lim = _mem_total_gb()
    default_lim = round(default_lim * 0.8, 1) if default_lim else None
    p.add_argument(
        '--mem-limit-gb',
        type=float,
        default=default_lim,
        help='address-space limit per worker so an oversized '
        'case fails with an error instead of waking the OOM '
        f'killer (default 80%% of RAM: {default_lim}; 0 = none)')
    p.add_argument(
        '--reference',
        default='vvt-s-reference',
        help='model the speed-up column compares with')
    p.add_argument(
        '--peer',
        default='swin-t',
        help='model the second speed-up / memory column compares '
        'with')
    p.add_argument(
        '--recount-flops',
        metavar='JSON',
        help='do not benchmark: count the FLOPs of the results in '
        'JSON again with the current code (of --models if given, '
        'else all) and rewrite its reports in --out-dir')
    p.add_argument(
        '--quick', action='store_true', help=f'CI-size defaults: {QUICK}')
    p.add_argument(
        '--out-dir',
        default=None,
        help='default benchmarks/cpu, or benchmarks/gpu with '
        '--device cuda')
    args = p.parse_args(argv)
    if args.out_dir is None:
        args.out_dir = osp.join('benchmarks',
                                'gpu' if args.device == 'cuda' else 'cpu')
    if args.batch_size is None:
        args.batch_size = 2 if args.proxies else 1
    if args.mode is None:
        args.mode = 'train' if args.proxies else 'forward'
    defaults = QUICK if args.quick else dict(
        resolutions=list(DEFAULT_RESOLUTIONS), repeats=3, warmup=1)
    for key, val in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, val)
    if args.recount_flops and not osp.isfile(args.recount_flops):
        p.error(f'--recount-flops: no such file {args.recount_flops}')
    try:
        check_model_names(args.models or DEFAULT_MODELS)
    except ValueError as e:
        p.error(str(e))
    for opt in ('reference', 'peer'):
        name = getattr(args, opt)
        if name and name not in BENCHMARK_MODELS:
            p.error(f'--{opt} {name!r} is not a known model; expected one of '
                    f'{sorted(BENCHMARK_MODELS)}')
    if args.batch_size < 1:
        p.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.skip_triton_interpreter and not (args.proxies
                                             and args.device == 'cpu'):
        p.error('--skip-triton-interpreter counts --proxies on CPU only')
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            p.error(f'--device cuda: torch {torch.__version__} sees no CUDA '
                    f'GPU here')
    try:  # a file where the reports go: one line, before any measuring
        check_out_dir(args.out_dir)
    except BadInputError as err:
        p.error(str(err))
    return args


def proxies_main(args):
    stem = osp.join(args.out_dir,
                    proxies_stem(args.dtype, args.device, args.mode))
    for ext in ('.json', '.md'):  # said up front, as the timing mode does
        if osp.exists(stem + ext):
            print(f'will replace existing {stem + ext}', file=sys.stderr)
    data = run_proxies(
        args.models or ['vvt-s', 'swin-t'],
        resolution=args.proxy_resolution,
        batch_size=args.batch_size,
        threads=args.threads,
        dtype=args.dtype,
        device=args.device,
        mode=args.mode,
        skip_triton_interpreter=args.skip_triton_interpreter)
    md = render_proxies(data, peer=args.peer)
    print(md)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(stem + '.json', 'w') as f:
        json.dump(data, f, indent=1)
    with open(stem + '.md', 'w') as f:
        f.write(md)
    print(f'wrote {stem}.json and {stem}.md')
    return 1 if any(r['errors'] for r in data['results']) else 0


def main(argv=None):
    args = parse_args(argv)
    if args.proxies:
        return proxies_main(args)
    if args.recount_flops:
        with open(args.recount_flops) as f:
            data = json.load(f)
        try:
            recount_flops(data, models=args.models)
        except ValueError as e:
            print(f'error: {e}', file=sys.stderr)
            return 2
        paths = write_outputs(
            data, args.out_dir, reference=args.reference, peer=args.peer)
        for kind, path in paths.items():
            print(f'wrote {kind}: {path}')
        return 1 if any(r['errors'] for r in data['results']) else 0
    if args.models is None:
        args.models = list(DEFAULT_MODELS)
    stem = osp.join(
        args.out_dir,
        output_stem(args.mode, args.device, args.dtype, args.compile))
    for ext in ('.json', '.md', '.png'):
        if osp.exists(stem + ext):
            print(f'will replace existing {stem + ext}', file=sys.stderr)
    quiet = lambda msg: None  # noqa: E731  (replacements announced above)

    def write_partial(partial):
        if not partial['meta']['complete']:
            write_outputs(
                partial,
                args.out_dir,
                reference=args.reference,
                peer=args.peer,
                progress=quiet)
            print(
                f'partial results written to {args.out_dir}',
                file=sys.stderr,
                flush=True)

    data = run_benchmark(
        models=args.models,
        resolutions=args.resolutions,
        mode=args.mode,
        repeats=args.repeats,
        warmup=args.warmup,
        batch_size=args.batch_size,
        budget_s=args.budget_s,
        flops=not args.no_flops,
        threads=args.threads,
        mem_limit_gb=args.mem_limit_gb or None,
        device=args.device,
        dtype=args.dtype,
        compile=args.compile,
        on_resolution_done=write_partial)
    paths = write_outputs(
        data,
        args.out_dir,
        reference=args.reference,
        peer=args.peer,
        progress=quiet)
    with open(paths['markdown']) as f:
        print(f.read())
    for kind, path in paths.items():
        print(f'wrote {kind}: {path}')
    failed = [r for r in data['results'] if r['errors']]
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
