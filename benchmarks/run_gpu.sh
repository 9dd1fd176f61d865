#!/usr/bin/env bash
# The GPU checks and measurements of docs/benchmark.md in one call (about 9
# minutes: 549 s in the recorded run on one H200): the kernel tests on CUDA
# tensors, backbone training step (with its profile and its op count under
# AMP) and forward, eager and torch.compile'd, and whole-segmentor training
# throughput, most wanted first. Every step
# has a time limit and the script stops starting steps when its own limit
# (BUDGET_S, default 540 s) would be passed, so an oversized step costs its
# rows, not the run. Results: $OUT (if set) or benchmarks/gpu/, as JSON and
# markdown, with the GPU, torch and CUDA versions named; summary.md has all.
#
# On a GPU machine without mmengine/mmcv/mmseg, first:
#     source .whl/device_env.sh
set -u
cd "$(dirname "$0")/.."
# the tools import mmseg_vvt from this checkout, installed or not
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
DEST=${OUT:-benchmarks/gpu}
BUDGET_S=${BUDGET_S:-540}
mkdir -p "$DEST"
start=$(date +%s)
status=0
log="$DEST/run_gpu.log"
: > "$log"

# step LIMIT_S NAME CMD...: run CMD with a time limit, unless the budget
# left is smaller than LIMIT_S / 2 (then it is skipped and said so)
step() {
    local limit=$1 name=$2
    shift 2
    local left=$(( BUDGET_S - ($(date +%s) - start) ))
    if (( left < limit / 2 )); then
        echo "SKIPPED $name: ${left} s of the budget left" | tee -a "$log"
        status=1
        return
    fi
    (( limit > left )) && limit=$left
    echo "== $name (limit ${limit} s)" | tee -a "$log"
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    if (( rc != 0 )); then
        echo "FAILED $name: exit $rc$( (( rc == 124 )) && echo ' (time limit)')" \
            | tee -a "$log"
        status=1
    fi
}

"$PY" - > "$DEST/environment.json" <<'PY'
import json, platform, torch
print(json.dumps(dict(
    gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    torch=torch.__version__, cuda=torch.version.cuda,
    cudnn=torch.backends.cudnn.version(), python=platform.python_version()),
    indent=1))
PY
cat "$DEST/environment.json"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv \
    >> "$log" 2>&1

BENCH_ANY=("$PY" tools/benchmark_scaling.py --device cuda --no-flops)
BENCH=("${BENCH_ANY[@]}" --out-dir "$DEST")
ALL=(--models vvt-s vvt-t vvt-s-reference swin-t mit-b2)
PAIR=(--models vvt-s swin-t)
# training also with the attention core in Triton kernels (opt-in so far)
TRAIN=(--models vvt-s vvt-s-triton swin-t)
# the kernels' tests on CUDA tensors, the Triton kernels compiled (the
# tests that take the device fixture; tests/conftest.py)
step 150 'kernel tests on CUDA' env MMSEG_VVT_TEST_DEVICE=cuda \
    "$PY" -m pytest -q -m 'on_device and not slow' \
    tests/test_models/test_kernels --junitxml "$DEST/tests_cuda.xml"
# inference with the Triton kernels (since 76f5791) beside the default
# whole-tensor kernels and Swin-T: batch 1, where launches bound the time
FWD=("${BENCH_ANY[@]}" --models vvt-s vvt-s-triton swin-t --resolutions 512
     2048 --repeats 10 --warmup 3 --out-dir "$DEST/forward_triton")
step 90 'forward fp32 512/2048, Triton inference' "${FWD[@]}"
step 90 'forward fp16 512/2048, Triton inference' "${FWD[@]}" --dtype fp16
# training steps, batch 8, median of 10 after 3 warm-ups
# (the Triton kernels compile on their first call: up to a minute more)
step 120 'train fp32 512 batch 8' "${BENCH[@]}" "${TRAIN[@]}" --mode train \
    --resolutions 512 --batch-size 8 --repeats 10 --warmup 3
step 120 'train AMP fp16 512 batch 8' "${BENCH[@]}" "${TRAIN[@]}" \
    --mode train --dtype fp16 --resolutions 512 --batch-size 8 \
    --repeats 10 --warmup 3
# where the AMP training step's time goes, op by op
step 90 'profile train AMP fp16 512 batch 8' "$PY" tools/profile_step.py \
    --device cuda --dtype fp16 "${TRAIN[@]}" --size 512 --batch-size 8 \
    --out-dir "$DEST"
# the ops that step launches, CUDA autocast's casts included (256x256,
# batch 2: the CPU proxies' size)
step 90 'ops per AMP step on CUDA' "$PY" tools/benchmark_scaling.py \
    --proxies --device cuda --dtype fp16 "${TRAIN[@]}" --out-dir "$DEST"

# whole segmentor, the project's configs (Swin-T in the same neck/heads)
# (the config first: --amp takes several values)
# (--overwrite: a rerun into benchmarks/gpu replaces the committed rows, as
# the scaling benchmark's reports are replaced)
TP=(--train --device cuda --shape 512 512 --batch-size 8 --iters 10
    --warmup 3 --overwrite --amp fp32 fp16)
FPN=configs/vvt/fpn_vvt-s_8xb2-80k_ade20k-512x512.py
UPER=configs/vvt/upernet_vvt-s_8xb2-160k_ade20k-512x512.py
step 60 'segmentor VVT-S + FPN' "$PY" tools/throughput.py "$FPN" \
    "${TP[@]}" --out "$DEST/train_fpn_vvt-s.json"
step 60 'segmentor Swin-T + FPN' "$PY" tools/throughput.py "$FPN" \
    "${TP[@]}" --backbone swin-t --out "$DEST/train_fpn_swin-t.json"
step 60 'segmentor VVT-S + UperNet' "$PY" tools/throughput.py "$UPER" \
    "${TP[@]}" --out "$DEST/train_upernet_vvt-s.json"
step 60 'segmentor Swin-T + UperNet' "$PY" tools/throughput.py "$UPER" \
    "${TP[@]}" --backbone swin-t --out "$DEST/train_upernet_swin-t.json"
step 90 'segmentor VVT-S (Triton kernels) + FPN' "$PY" tools/throughput.py \
    "$FPN" "${TP[@]}" --backbone vvt-s-triton \
    --out "$DEST/train_fpn_vvt-s-triton.json"

# the backbone forward: batch 1, median of 10 after 3 warm-ups
step 150 'forward fp32 512/1024/2048' "${BENCH[@]}" "${ALL[@]}" \
    --resolutions 512 1024 2048 --repeats 10 --warmup 3
step 60 'forward fp16 2048' "${BENCH[@]}" "${ALL[@]}" --dtype fp16 \
    --resolutions 2048 --repeats 10 --warmup 3

# compiled beside eager (a compile failure is that row's error)
step 120 'forward fp32 2048 compiled' "${BENCH[@]}" "${ALL[@]}" --compile \
    --resolutions 2048 --repeats 10 --warmup 3
step 90 'train fp32 512 batch 8 compiled' "${BENCH[@]}" "${PAIR[@]}" \
    --compile --mode train --resolutions 512 --batch-size 8 --repeats 10 \
    --warmup 3

# one page: the backbone tables, the segmentor rows, the proxies
# (a missing table is a failed step, reported above; only the summary's
# own Python failing fails this part)
{
    cat "$DEST"/forward_triton/scaling_*.md "$DEST"/scaling_*.md \
        2>/dev/null || true
    "$PY" - "$DEST" <<'PY' || status=1
import glob, json, os, sys
rows = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], 'train_*.json'))):
    data = json.load(open(path))
    for amp, r in data['train'].items():
        rows.append(f"| {os.path.basename(data['config'])} | "
                    f"{data['backbone'] or 'VVT-S'} | {amp} | "
                    f"{r['images_per_s']:.1f} | {r['ms_per_iter_median']:.1f}"
                    f" | {r['peak_mib'] / 1024:.1f} | {r['losses_finite']} |")
if rows:
    env = json.load(open(os.path.join(sys.argv[1], 'environment.json')))
    print(f"# Segmentor training, 512x512, batch 8 ({env['gpu']}, torch "
          f"{env['torch']}, CUDA {env['cuda']})\n")
    print('| config | backbone | precision | images/s | ms/iter | '
          'peak allocated (GiB) | finite losses |')
    print('|---|---|---|---|---|---|---|')
    print('\n'.join(rows) + '\n')
PY
    # (the name benchmark_scaling.py --proxies gives CUDA fp16 results)
    cat "$DEST/proxies_cuda_fp16.md" 2>/dev/null || true
} > "$DEST/summary.md"
cat "$DEST/summary.md"
echo "wall time $(( $(date +%s) - start )) s; results in $DEST" | tee -a "$log"
exit $status
