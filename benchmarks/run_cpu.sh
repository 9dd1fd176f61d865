#!/usr/bin/env bash
# The runs behind benchmarks/cpu/: forward pass of all six backbones at
# 512/1024/2048, then the training step (forward + backward + AdamW step)
# of VVT-T/S, the straightforward VVT-S and Swin-T at 512/1024, then the
# cost proxies (ops per training step, bytes moved and saved for backward,
# fp32 and bf16; ops, bytes moved and peak live bytes of CUDA's inference
# kernels at 512/1024/2048). About 20
# minutes on a 2-core Intel Xeon, twice that on a 2-core AMD EPYC; run it
# on a quiet machine (latency is wall-clock time). The committed files
# name the machine and commit of their run: scaling_forward.* is older
# than scaling_train.* and proxies.*.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-benchmarks/cpu}
# warm-up: the memory pass (and the FLOP trace) precede the timed repeats
"$PY" tools/benchmark_scaling.py --mode forward --resolutions 512 1024 2048 \
    --repeats 3 --warmup 0 --budget-s 25 --out-dir "$OUT"
forward=$?  # a failed measurement (exit 1) is in the table; go on
"$PY" tools/benchmark_scaling.py --mode train --resolutions 512 1024 \
    --models vvt-t vvt-s vvt-s-reference swin-t --no-flops \
    --repeats 3 --warmup 0 --budget-s 20 --out-dir "$OUT"
train=$?
# the Triton kernels counted, not interpreted (minutes instead of most of
# an hour; a test holds the two ways to the same counts)
"$PY" tools/benchmark_scaling.py --proxies --skip-triton-interpreter \
    --models vvt-s vvt-s-triton vvt-s-reference swin-t --out-dir "$OUT"
proxies=$?
"$PY" tools/benchmark_scaling.py --proxies --skip-triton-interpreter \
    --dtype bf16 --models vvt-s vvt-s-triton swin-t --out-dir "$OUT" \
    || proxies=1
# the kernels CUDA runs for inference (by default, and under
# implementation('triton')), on CPU
for res in 512 1024 2048; do
    for dt in fp32 bf16; do
        "$PY" tools/benchmark_scaling.py --proxies --mode forward \
            --models vvt-s-triton vvt-s-whole swin-t \
            --skip-triton-interpreter --batch-size 1 \
            --proxy-resolution "$res" --dtype "$dt" \
            --out-dir "$OUT/proxies_forward/$res" || proxies=1
    done
done
worst=$(( forward > train ? forward : train ))
exit $(( worst > proxies ? worst : proxies ))
