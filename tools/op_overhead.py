"""Host time per call of the Triton attention's ops (``mmseg_vvt::``),
against the same ops registered with ``torch.library.custom_op``.

A GPU training step of VVT-S is host-bound (docs/benchmark.md): the Python
and dispatch time of every op counts whether or not the GPU is busy. This
measures that time without a GPU and without running a kernel: each op is
called on meta tensors, where it dispatches to its fake (shapes only).
Once as :mod:`mmseg_vvt.models.kernels.triton_attention` defines it
(``torch.library.Library``), once through a ``torch.library.custom_op``
twin whose fake calls the first: the difference is what custom_op's
layers add to a call. Interleaved, best of ``--rounds`` rounds of
``--calls`` calls. Needs triton (not a GPU).

Example::

    python tools/op_overhead.py --calls 2000 --rounds 7
"""
import argparse
import functools
import time

import torch

from mmseg_vvt.utils.cli import positive_int

# VVT-S's first stage at 512x512, batch 8: 8 images, 128x128 tokens, one
# 64-wide head (shapes do not change the host time on meta tensors)
B, N, H, D = 8, 128 * 128, 1, 64


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    # a count of 0 would print inf / nan timings with exit status 0
    p.add_argument(
        '--calls', type=positive_int, default=2000, help='calls per round')
    p.add_argument('--rounds', type=positive_int, default=7, help='best of')
    p.add_argument(
        '--threads',
        type=positive_int,
        default=1,
        help='torch threads (default 1: host time, not parallel work)')
    return p.parse_args(argv)


def op_calls():
    """``{name: (op, args)}``: each Triton op with meta arguments of a
    training step's shapes, q, k and v from one GEMM."""
    from mmseg_vvt.models.kernels import triton_attention as ta
    meta = dict(device='meta')
    hd, f32 = H * D, torch.float32
    qkv = torch.empty(B, N, 3 * hd, **meta)
    w = torch.empty(N, 4, **meta)
    kvs = torch.empty(B * H, 4 * D, D + 1, **meta)
    r = torch.empty(B * H, N, **meta)
    p = torch.empty(B, N, hd, **meta)
    gate = torch.empty(B, 1, hd, **meta)
    return {
        'vicinity_token_sums':
        (ta.token_sums, (qkv[...,
                             hd:2 * hd], qkv[...,
                                             2 * hd:], w, H, True, f32, 64)),
        'vicinity_queries': (ta.queries, (qkv[..., :hd], w, kvs, H)),
        'vicinity_queries_backward':
        (ta.queries_backward, (p, qkv[..., :hd], w, kvs, r, H, 3 * hd)),
        'vicinity_keys_backward':
        (ta.keys_backward, (qkv[..., hd:], w, kvs, kvs, H,
                            torch.empty(B, N, 3 * hd, **meta))),
        'gated_clamp': (ta.gated_clamp, (p, gate)),
        'gated_clamp_backward': (ta.gated_clamp_backward, (p, p, gate, 64)),
    }


@functools.lru_cache(maxsize=None)  # an op name is registered once
def custom_op_twin(name, op):
    """``op`` behind a ``torch.library.custom_op`` of the same schema
    (namespace ``op_overhead``): its fake calls ``op``."""
    schema = str(op._schema)
    schema = schema[schema.index('('):]
    mutates = tuple(a.name for a in op._schema.arguments
                    if a.alias_info is not None and a.alias_info.is_write)

    def never(*args):
        raise AssertionError('meta tensors only')

    twin = torch.library.custom_op(
        f'op_overhead::{name}', never, mutates_args=mutates, schema=schema)
    twin.register_fake(lambda *args: op(*args))
    return twin


def best_us(fn, args, calls, rounds):
    """Microseconds per call: the best round."""
    best = float('inf')
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn(*args)
        best = min(best, time.perf_counter() - t)
    return best / calls * 1e6


def measure(calls=2000, rounds=7):
    """``[(name, us per call as defined, us via its custom_op twin)]``."""
    rows = []
    for name, (op, args) in op_calls().items():
        fns = [op, custom_op_twin(name, op)]
        for fn in fns:  # warm-up
            fn(*args)
        times = [float('inf')] * len(fns)
        for _ in range(rounds):  # interleaved: drifts hit both
            for i, fn in enumerate(fns):
                times[i] = min(times[i], best_us(fn, args, calls, 1))
        rows.append((name, *times))
    return rows


def render(rows):
    """A markdown table; "added" is what custom_op's layers cost a call
    (the twin runs the op itself inside)."""
    lines = [
        '| op | us per call | via a custom_op twin | added by custom_op |',
        '|---|---|---|---|'
    ]
    for name, ours, twin in rows:
        lines.append(
            f'| {name} | {ours:.1f} | {twin:.1f} | {twin - ours:.1f} |')
    added = sum(twin - ours for _, ours, twin in rows)
    lines.append(f'\nOne block\'s training step calls each op once and '
                 f'token_sums twice: custom_op would add about '
                 f'{added + rows[0][2] - rows[0][1]:.0f} us of host time '
                 'per block.')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        print(render(measure(args.calls, args.rounds)))
    finally:
        torch.set_num_threads(threads)


if __name__ == '__main__':
    main()
