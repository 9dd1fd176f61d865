"""benchmarks/run_gpu.sh, dry: every step it would run on a GPU machine.

No GPU here, so the steps themselves do not run. ``PY`` is replaced by a
shim that records each tool call (then parsed by that tool's own
``parse_args``, with CUDA reported present) and runs the script's inline
Python for real. A renamed flag, a wrong path or a step the script
no longer reaches fails here instead of on the next lent GPU.
"""
import importlib.util
import json
import os
import os.path as osp
import stat
import subprocess
import sys

import torch
from analysis_tools.benchmark import proxies_stem
from tool_modules import REPO

SHIM = '''#!{python}
import json, os, sys
args = sys.argv[1:]
if args[:1] == ['-']:  # the script's inline Python: run it
    sys.argv = args
    code = compile(sys.stdin.read(), '<stdin>', 'exec')
    exec(code, {{'__name__': '__main__'}})
    sys.exit(0)
with open(os.environ['SHIM_LOG'], 'a') as f:  # a tool: parsed by the test
    f.write(json.dumps(args) + '\\n')
with open(os.environ['SHIM_LOG'] + '.path', 'a') as f:
    f.write(os.environ.get('PYTHONPATH', '') + '\\n')
'''


def _parse(tool, argv):
    """``tool``'s own ``parse_args`` on ``argv``, as on a GPU machine."""
    spec = importlib.util.spec_from_file_location(
        'tool_under_test_' + osp.basename(tool)[:-3], osp.join(REPO, tool))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_args(argv)


def test_every_step_of_run_gpu_sh_parses(tmp_path, monkeypatch):
    shim = tmp_path / 'python'
    shim.write_text(SHIM.format(python=sys.executable))
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / 'calls.jsonl'
    out = tmp_path / 'out'
    # the proxies step's table, where benchmark_scaling.py writes it (the
    # shim runs no tool): summary.md must carry it
    out.mkdir()
    proxies_md = out / (proxies_stem('fp16', 'cuda') + '.md')
    proxies_md.write_text('| proxies table |\n')
    env = dict(os.environ, PY=str(shim), OUT=str(out), SHIM_LOG=str(log))
    env.pop('PYTHONPATH', None)  # as on a GPU machine, nothing installed
    proc = subprocess.run(['bash', 'benchmarks/run_gpu.sh'],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'FAILED' not in proc.stdout and 'SKIPPED' not in proc.stdout
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    # every tool finds mmseg_vvt in this checkout
    paths = (tmp_path / 'calls.jsonl.path').read_text().splitlines()
    assert len(paths) == len(calls)
    assert all(p.split(':')[0] == REPO for p in paths), paths
    # the kernel tests on CUDA tensors: those that take the device fixture
    tests = [c for c in calls if c[:2] == ['-m', 'pytest']]
    assert len(tests) == 1, calls
    _check_cuda_test_selection(tests[0][2:])
    calls = [c for c in calls if c not in tests]
    tools = [c[0] for c in calls]
    # 6 backbone tables (2 of them inference with the Triton kernels), 2
    # compiled, the op count; 5 segmentor rows
    assert tools.count('tools/benchmark_scaling.py') == 9, calls
    assert tools.count('tools/throughput.py') == 5, calls
    # the AMP training step profiled, op by op
    assert tools.count('tools/profile_step.py') == 1, calls
    # the Triton kernels are measured in the eager training and inference
    # rows, the profile and the op count
    triton = [c for c in calls if 'vvt-s-triton' in c]
    assert len(triton) == 7 and all('--compile' not in c
                                    for c in triton), triton
    assert all(c[c.index('--device') + 1] == 'cuda' for c in calls), calls
    # the AMP step's ops counted on the GPU, CUDA autocast's casts included
    (proxies, ) = [c for c in calls if '--proxies' in c]
    assert proxies[proxies.index('--dtype') + 1] == 'fp16', proxies
    # results land in $OUT, not in the repository
    for c in calls:
        if '--out-dir' in c:
            assert c[c.index('--out-dir') + 1] in (str(out),
                                                   str(out / 'forward_triton'))
        if '--out' in c:
            assert c[c.index('--out') + 1].startswith(str(out))
    env_json = json.loads((out / 'environment.json').read_text())
    assert env_json['torch'] and env_json['gpu'] is None  # no GPU here
    assert '| proxies table |' in (out / 'summary.md').read_text()
    # each tool accepts its arguments (argparse exits 2 naming a bad one)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.chdir(REPO)  # the script's paths are relative to it
    # a rerun into a folder with the earlier rows (benchmarks/gpu, the
    # default) replaces them: the tools' --out refusal does not stop it
    for c in calls:
        if '--out' in c:
            open(c[c.index('--out') + 1], 'w').close()
    for tool, *argv in calls:
        _parse(tool, argv)


def _check_cuda_test_selection(argv):
    """The tests run_gpu.sh runs on CUDA, collected here: the Triton
    kernels' and the training kernels' comparisons and the autocast
    training, none of them slow."""
    argv = [a for a in argv if a != '--junitxml' and not a.endswith('.xml')]
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '--collect-only', *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = [line for line in proc.stdout.splitlines() if '::' in line]
    for name in ('test_fused_core_equals_vicinity_core_where_clamps_bite',
                 'test_fused_gated_clamp_equals_gated_clamp',
                 'test_attention_gradients_equal_the_readable_formulation',
                 'test_block_training_path_equals_the_readable_block',
                 'test_block_with_stochastic_depth_under_autocast',
                 'test_backbone_training_under_autocast[',
                 'test_attention_inference_with_triton_on_the_device[',
                 'test_mlp_bands_on_the_device[',
                 'test_half_and_single_precision_round_once['):
        assert any(name in i for i in ids), (name, ids)
    # neither the slow tests nor those that need no device
    assert not any('at_512' in i or 'compiles_for_a_cuda_gpu' in i
                   for i in ids), ids
