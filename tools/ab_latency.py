"""A/B: VVT backbone latency of two source trees, on this machine: the
forward pass (eval, no_grad) or, with ``--train``, a training step's
forward and backward (train mode, loss: the sum of the outputs' means).

For a change that must not slow the model down (e.g. code moved behind the
kernel dispatch): check out the old commit in a git worktree and compare it
with the current tree. Each round runs one fresh process per tree, in turn
(A, B, A, B, ...), so drifts in the machine's speed hit both alike; each
process imports ``mmseg_vvt`` from its tree (``PYTHONPATH``; checked),
builds the backbone with the same seed, runs one warm-up pass and keeps the
best of ``--repeats`` passes. The summary is the median over rounds per
tree and their ratio (B / A: below 1, B is faster).

Example::

    git worktree add /tmp/old 7294526
    python tools/ab_latency.py /tmp/old . --size 1024 --rounds 6
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

from mmseg_vvt.utils.cli import (BadInputError, check_out_file, check_vvt_arch,
                                 nonnegative_int)

WORKER = r'''
import json, sys, time, torch
import mmseg_vvt
from mmseg_vvt.models.backbones import VVT
arch, size, repeats, threads, train = sys.argv[1:6]
if int(threads) > 0:
    torch.set_num_threads(int(threads))
torch.manual_seed(0)
model = VVT(arch=json.loads(arch) if arch.startswith('{') else arch)
model.train(train == 'train')
x = torch.randn(1, 3, int(size), int(size))


def once():
    if train == 'train':
        sum(o.mean() for o in model(x)).backward()
        model.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            model(x)


once()
times = []
for _ in range(int(repeats)):
    t = time.perf_counter()
    once()
    times.append(time.perf_counter() - t)
print(json.dumps(dict(file=mmseg_vvt.__file__, times=times)))
'''


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Latency of the VVT backbone (forward, or --train), tree '
        'A against tree B, in alternating fresh processes')
    p.add_argument('tree_a', help='source tree A (holds mmseg_vvt/)')
    p.add_argument('tree_b', help='source tree B')
    p.add_argument(
        '--arch',
        default='small',
        help='preset name or a JSON dict (default small)')
    p.add_argument('--size', type=int, default=1024, help='input H = W')
    p.add_argument(
        '--repeats', type=int, default=5, help='timed passes per process')
    p.add_argument('--rounds', type=int, default=3, help='A, B pairs')
    p.add_argument(
        '--threads',
        type=nonnegative_int,
        default=0,
        help='torch threads (0: default)')
    p.add_argument(
        '--train',
        action='store_true',
        help='time forward + backward in train mode')
    p.add_argument('--out', help='also write the results to this JSON file')
    p.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing --out file')
    args = p.parse_args(argv)
    for name in ('tree_a', 'tree_b'):
        tree = getattr(args, name)
        if not osp.isfile(osp.join(tree, 'mmseg_vvt', '__init__.py')):
            p.error(f'{name} {tree!r} has no mmseg_vvt/__init__.py: '
                    f'expected a checkout of this project')
    for opt in ('size', 'repeats', 'rounds'):
        if getattr(args, opt) < 1:
            p.error(f'--{opt} must be >= 1, got {getattr(args, opt)}')
    # before any round runs: the arch (with this checkout's presets; the
    # trees' workers build it) and where the results go
    try:
        arch = args.arch
        if arch.lstrip().startswith('{'):
            try:
                arch = json.loads(arch)
            except json.JSONDecodeError as err:
                raise BadInputError(f'--arch is not valid JSON: {err}')
        check_vvt_arch(arch)
        if args.out:
            check_out_file(args.out, overwrite=args.overwrite)
    except BadInputError as err:
        p.error(str(err))
    if args.overwrite and not args.out:
        p.error('--overwrite replaces the --out file; there is no --out')
    return args


def run_once(tree, args):
    """Best forward time (s) of one fresh process importing ``tree``."""
    tree = osp.abspath(tree)
    env = dict(os.environ, PYTHONPATH=tree)
    proc = subprocess.run([
        sys.executable, '-c', WORKER, args.arch,
        str(args.size),
        str(args.repeats),
        str(args.threads), 'train' if args.train else 'eval'
    ],
                          cwd=tree,
                          env=env,
                          capture_output=True,
                          text=True)
    if proc.returncode:
        raise RuntimeError(f'the worker for {tree} failed:\n'
                           f'{proc.stderr[-3000:]}')
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    if not osp.abspath(reply['file']).startswith(tree + os.sep):
        raise RuntimeError(f'the worker for {tree} imported mmseg_vvt from '
                           f'{reply["file"]}, not from that tree')
    return min(reply['times'])


def main(argv=None):
    args = parse_args(argv)
    best = dict(a=[], b=[])
    for r in range(args.rounds):
        for key in ('a', 'b'):
            best[key].append(run_once(getattr(args, f'tree_{key}'), args))
        print(
            f'round {r + 1}/{args.rounds}: A {best["a"][-1] * 1e3:.0f} ms, '
            f'B {best["b"][-1] * 1e3:.0f} ms',
            flush=True)
    med = {k: statistics.median(v) for k, v in best.items()}
    result = dict(
        tree_a=osp.abspath(args.tree_a),
        tree_b=osp.abspath(args.tree_b),
        arch=args.arch,
        mode='train' if args.train else 'forward',
        size=args.size,
        repeats=args.repeats,
        best_per_round_s=best,
        median_s=med,
        ratio_b_over_a=med['b'] / med['a'])
    print(f'{result["mode"]}, {args.size}x{args.size}, arch {args.arch}: '
          f'median of '
          f'{args.rounds} rounds A {med["a"] * 1e3:.0f} ms, B '
          f'{med["b"] * 1e3:.0f} ms, B / A {result["ratio_b_over_a"]:.3f}')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
