"""Backbone scaling benchmark: params, GFLOPs, latency and peak memory of VVT
and its peers at several input resolutions (driver of
``tools/benchmark_scaling.py``).

How it measures, per resolution:

* every model runs in its **own worker process** (a one-process
  ``concurrent.futures.ProcessPoolExecutor`` with a spawn context that
  builds the model once and serves commands), so peak memory is that
  model's alone; the workers of one resolution stay alive together so
  repeats can be interleaved, and are ended before the next resolution;
* **peak memory**: the first pass in the fresh process, from a fresh mark
  (CPU: ``/proc/self/clear_refs`` then ``VmHWM``; CUDA:
  ``reset_peak_memory_stats`` then ``max_memory_allocated``; see
  :mod:`.memory`); reported as the extra over what was resident / allocated
  just before the pass (model and input already there) and as the peak;
* **GFLOPs**: mmengine's ``FlopAnalyzer`` with the package's product-op
  handles (``mmseg_vvt.utils.complexity``), forward pass in eval mode of
  the readable ("reference") formulation, 1 fused multiply-add = 1 FLOP;
  each model is traced in a worker of its own before the timing workers of
  that resolution start (the trace is the most memory-hungry step; a failed
  trace costs only the FLOP count);
* **latency** (:mod:`.timing`: wall clock on CPU, CUDA events on CUDA):
  after the memory pass and ``warmup`` passes, ``repeats`` timed rounds;
  every round runs each model once, in an order rotated round by round; the
  median is reported (all samples are kept);
* ``mode='forward'``: ``model.eval()`` under ``torch.no_grad()``;
  ``mode='train'``: ``model.train()``, forward, ``backward()`` of the sum
  of the outputs' means and an AdamW step (gradients dropped after it);
* ``dtype`` ``fp32`` runs without autocast, ``fp16`` / ``bf16`` under
  ``torch.autocast(device, dtype)``; ``compile=True`` times
  ``torch.compile(model)`` (the compilation happens in the memory pass and
  the warm-up; a compile error is that cell's error, not the run's).

Random input, batch ``batch_size``, on ``device`` (cpu or cuda).
"""
import concurrent.futures as cf
import contextlib
import datetime
import gc
import json
import multiprocessing
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Dict, List, Optional, Sequence

from mmseg_vvt.testing import TINY_ARCH

__all__ = [
    'BENCHMARK_MODELS', 'DTYPES', 'build_benchmark_model', 'run_benchmark',
    'recount_flops', 'reference_formulation', 'render_markdown',
    'plot_results', 'write_outputs', 'output_stem', 'run_proxies',
    'render_proxies'
]

_REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# tiny VVT for plumbing checks (tests, --quick); not a published variant
TEST_ARCH = TINY_ARCH

# name -> how to build it. ``mmseg`` entries take the backbone settings from
# mmsegmentation's shipped ADE20K configs (checkpoint init dropped).
# ``vvt-reference`` is VVT run in its readable formulation. ``out_channels``
# (stage widths) lets tools/throughput.py swap a backbone into a config.
_VVT_WIDTHS = (96, 160, 320, 512)  # all four presets
BENCHMARK_MODELS: Dict[str, Dict[str, Any]] = {
    'vvt-t':
    dict(
        label='VVT-T',
        kind='vvt',
        kwargs=dict(arch='tiny'),
        out_channels=_VVT_WIDTHS),
    'vvt-s':
    dict(
        label='VVT-S',
        kind='vvt',
        kwargs=dict(arch='small'),
        out_channels=_VVT_WIDTHS),
    'vvt-m':
    dict(
        label='VVT-M',
        kind='vvt',
        kwargs=dict(arch='medium'),
        out_channels=_VVT_WIDTHS),
    'vvt-l':
    dict(
        label='VVT-L',
        kind='vvt',
        kwargs=dict(arch='large'),
        out_channels=_VVT_WIDTHS),
    'vvt-s-reference':
    dict(
        label='VVT-S straightforward',
        kind='vvt-reference',
        kwargs=dict(arch='small')),
    'vvt-s-triton':
    dict(
        label='VVT-S, Triton kernels',
        kind='vvt-triton',
        kwargs=dict(arch='small'),
        out_channels=_VVT_WIDTHS),
    'vvt-s-whole':
    dict(
        label='VVT-S, whole-tensor kernels',
        kind='vvt-whole',
        kwargs=dict(arch='small'),
        out_channels=_VVT_WIDTHS),
    'swin-t':
    dict(
        label='Swin-T',
        kind='mmseg',
        config='swin/swin-tiny-patch4-window7-in1k-pre_upernet_'
        '8xb2-160k_ade20k-512x512.py',
        out_channels=(96, 192, 384, 768)),
    'mit-b2':
    dict(
        label='MiT-B2',
        kind='mmseg',
        config='segformer/segformer_mit-b2_8xb2-160k_ade20k-512x512.py',
        out_channels=(64, 128, 320, 512)),
    'pcpvt-s':
    dict(
        label='Twins PCPVT-S',
        kind='mmseg',
        config='twins/twins_pcpvt-s_uperhead_8xb4-160k_ade20k-512x512.py'),
    'vvt-test':
    dict(label='VVT tiny test arch', kind='vvt', kwargs=dict(arch=TEST_ARCH)),
    'vvt-test-reference':
    dict(
        label='VVT tiny test arch, straightforward',
        kind='vvt-reference',
        kwargs=dict(arch=TEST_ARCH)),
    'vvt-test-triton':
    dict(
        label='VVT tiny test arch, Triton kernels',
        kind='vvt-triton',
        kwargs=dict(arch=TEST_ARCH)),
}
# model kind -> the implementation() it runs under
_FORMULATIONS = {
    'vvt-reference': 'reference',
    'vvt-triton': 'triton',
    'vvt-whole': 'whole'  # CUDA's inference kernels, on any device
}

DEFAULT_MODELS = ('vvt-t', 'vvt-s', 'vvt-s-reference', 'swin-t', 'mit-b2',
                  'pcpvt-s')
DEFAULT_RESOLUTIONS = (512, 1024, 2048)
MODES = ('forward', 'train')
DEVICES = ('cpu', 'cuda')
# name -> autocast dtype attribute of torch (None: fp32, no autocast)
DTYPES = {'fp32': None, 'fp16': 'float16', 'bf16': 'bfloat16'}


def check_model_names(names: Sequence[str]) -> List[str]:
    unknown = [n for n in names if n not in BENCHMARK_MODELS]
    if unknown:
        raise ValueError(f'unknown benchmark model(s) {unknown}; expected '
                         f'some of {sorted(BENCHMARK_MODELS)}')
    if len(set(names)) != len(names):
        raise ValueError(f'model names repeat in {list(names)}')
    return list(names)


def mmseg_config_path(rel_path: str) -> str:
    """Absolute path of a config shipped inside the mmseg package."""
    import mmseg
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', rel_path)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'mmseg config {rel_path!r} not found at {path}; is '
            f'mmsegmentation installed with its configs (mim layout)?')
    return path


def reference_formulation():
    """Context in which VVT runs its readable formulation."""
    from mmseg_vvt.models.kernels import implementation
    return implementation('reference')


def build_benchmark_model(name: str):
    """Build a benchmark model by name (random init, no checkpoint)."""
    check_model_names([name])
    spec = BENCHMARK_MODELS[name]
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_vvt  # noqa: F401  (registers VVT)
    init_default_scope('mmseg')
    if spec['kind'] in ('vvt', *_FORMULATIONS):
        # the same module, run under formulation(name)
        return MODELS.build(dict(type='VVT', **spec['kwargs']))
    if spec['kind'] == 'mmseg':
        return MODELS.build(backbone_cfg(name))
    raise ValueError(f'unknown model kind {spec["kind"]!r}')


def backbone_cfg(name: str) -> Dict[str, Any]:
    """The backbone config of benchmark model ``name`` (for mmseg's models,
    from its shipped config, checkpoint init dropped)."""
    check_model_names([name])
    spec = BENCHMARK_MODELS[name]
    if spec['kind'] != 'mmseg':
        return dict(type='VVT', **spec['kwargs'])
    from mmengine.config import Config
    cfg = Config.fromfile(mmseg_config_path(spec['config']))
    backbone = cfg.model.backbone.to_dict()
    backbone.pop('init_cfg', None)
    backbone.pop('pretrained', None)
    return backbone


def formulation(name: str):
    """The context model ``name`` runs in: ``implementation('reference')``,
    ``('triton')`` or ``('whole')`` for those kinds, else a no-op."""
    impl = _FORMULATIONS.get(BENCHMARK_MODELS[name]['kind'])
    if impl is None:
        return contextlib.nullcontext()
    from mmseg_vvt.models.kernels import implementation
    return implementation(impl)


def autocast(dtype: str, device: str):
    """``torch.autocast`` for a dtype name (fp32: autocast disabled)."""
    import torch
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {sorted(DTYPES)}, got '
                         f'{dtype!r}')
    if DTYPES[dtype] is None:
        return torch.autocast(device, enabled=False)
    return torch.autocast(device, dtype=getattr(torch, DTYPES[dtype]))


# --------------------------------------------------------------------------
# worker process


def make_step(model,
              x,
              mode: str,
              dtype: str = 'fp32',
              compile: bool = False) -> Callable[[], None]:
    """One benchmark step of ``model`` on ``x`` (see the module
    docstring); the model is put in eval / train mode here."""
    import torch
    device = x.device.type
    if mode == 'forward':
        model.eval()
    else:
        model.train()
    run = torch.compile(model) if compile else model
    if mode == 'forward':

        def step():
            with torch.no_grad(), autocast(dtype, device):
                run(x)

        return step
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    # fp16 gradients underflow without loss scaling (what AMP training does)
    scaler = torch.amp.GradScaler(device, enabled=dtype == 'fp16')

    def step():
        with autocast(dtype, device):
            out = run(x)
            outs = out if isinstance(out, (list, tuple)) else [out]
            loss = sum(o.float().mean() for o in outs)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        del out, outs, loss
        optimizer.zero_grad(set_to_none=True)

    return step


# state of the worker process (one model per process)
_W: Dict[str, Any] = {}


def _worker_init(spec: Dict[str, Any]) -> None:
    """Build the model and its step; an error is kept for ``hello``."""
    try:
        if spec.get('mem_limit_bytes'):
            lim = int(spec['mem_limit_bytes'])
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        device = spec.get('device', 'cpu')
        if BENCHMARK_MODELS[spec['model']]['kind'] == 'vvt-triton' and (
                device == 'cpu'):
            # Triton kernels run on CPU tensors only in its interpreter,
            # chosen when they are defined: before anything imports them
            os.environ['TRITON_INTERPRET'] = '1'
        allocator = None
        if device == 'cpu' and spec['mode'] == 'train':
            # what tools/train.py runs CPU training with
            from mmseg_vvt.engine.allocator import keep_freed_cpu_memory
            allocator = keep_freed_cpu_memory()[1]
        import torch
        if spec.get('threads'):
            torch.set_num_threads(int(spec['threads']))
        torch.manual_seed(0)
        model = build_benchmark_model(spec['model']).to(device)
        res = int(spec['resolution'])
        x = torch.randn(
            int(spec.get('batch_size', 1)), 3, res, res, device=device)
        with formulation(spec['model']):
            step = make_step(model, x, spec['mode'], spec.get('dtype', 'fp32'),
                             spec.get('compile', False))

        def in_formulation():
            with formulation(spec['model']):
                step()

        _W.update(
            spec=spec,
            model=model,
            x=x,
            step=in_formulation,
            device=device,
            error=None,
            params=sum(p.numel() for p in model.parameters()),
            threads=torch.get_num_threads(),
            allocator=allocator)
    except BaseException as e:  # noqa: B902  reported by hello()
        _W.update(error=_short_error(e))


def _worker_call(cmd: str) -> Dict[str, Any]:
    """Commands: ``hello`` (build result), ``memory`` (first pass, peak
    from a fresh mark), ``time`` (one timed pass), ``flops``,
    ``proxies``. Replies carry ``ok``."""
    if _W.get('error'):
        return dict(ok=False, error=_W['error'])
    try:
        from .memory import measure_peak
        from .timing import time_call
        step, device = _W['step'], _W['device']
        if cmd == 'hello':
            return dict(
                ok=True,
                params=_W['params'],
                threads=_W['threads'],
                allocator=_W['allocator'])
        if cmd == 'memory':
            gc.collect()
            seconds, mem = measure_peak(lambda: time_call(step, device),
                                        device)
            return dict(ok=True, seconds=seconds, **mem)
        if cmd == 'time':
            return dict(ok=True, seconds=time_call(step, device))
        if cmd == 'flops':
            from mmseg_vvt.utils.complexity import backbone_complexity
            model, x = _W['model'], _W['x']
            was_training = model.training
            with reference_formulation():
                result = backbone_complexity(
                    model, tuple(x.shape[2:]), batch_size=x.shape[0])
            model.train(was_training)
            return dict(
                ok=True,
                flops=result['flops'],
                by_operator=result['by_operator'],
                unsupported_ops=result['unsupported_ops'])
        if cmd == 'proxies':
            from .proxies import inference_proxies, training_step_proxies
            spec = _W['spec']
            count = (
                inference_proxies
                if spec['mode'] == 'forward' else training_step_proxies)
            skipped = contextlib.nullcontext()
            if spec.get('skip_triton_interpreter'):
                from .proxies import triton_interpreter_skipped
                skipped = triton_interpreter_skipped()
            with formulation(spec['model']), skipped:
                result = count(
                    _W['model'],
                    _W['x'],
                    forward_context=lambda: autocast(
                        spec.get('dtype', 'fp32'), _W['device']))
            return dict(ok=True, **result)
        return dict(ok=False, error=f'unknown command {cmd!r}')
    except Exception as e:  # noqa: B902  the parent records it
        return dict(ok=False, error=_short_error(e))


def _short_error(e: BaseException, limit: int = 600) -> str:
    # compiler errors run to pages; the head names the failure
    text = ' '.join(f'{type(e).__name__}: {e}'.split())  # one line
    return text if len(text) <= limit else text[:limit] + ' [...]'


class _Worker:
    """Parent-side handle of one worker process: a one-process pool whose
    process holds the model between commands."""

    def __init__(self, spec: Dict[str, Any]):
        self.pool = cf.ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context('spawn'),
            initializer=_worker_init,
            initargs=(spec, ))
        self.dead: Optional[str] = None
        # workers start (import torch, build the model) side by side
        self._hello = self.pool.submit(_worker_call, 'hello')

    def hello(self) -> Dict[str, Any]:
        return self._result(self._hello)

    def ask(self, cmd: str) -> Dict[str, Any]:
        return self._result(self.submit(cmd))

    def submit(self, cmd: str) -> Optional[cf.Future]:
        if self.dead:
            return None
        try:
            return self.pool.submit(_worker_call, cmd)
        except BrokenProcessPool:
            return self._result(None)

    def _result(self, future) -> Dict[str, Any]:
        if self.dead:
            return dict(ok=False, error=self.dead)
        try:
            if future is None:
                raise BrokenProcessPool
            return future.result()
        except BrokenProcessPool:
            codes = [p.exitcode for p in self.pool._processes.values()]
            why = 'worker process died'
            code = next((c for c in codes if c is not None), None)
            if code is not None:
                why += f' with exit code {code}'
                if code == -9:
                    why += ' (killed by signal 9, likely out of memory)'
            self.dead = why
            return dict(ok=False, error=why)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def _ask_fresh_worker(spec: Dict[str, Any], cmd: str) -> Dict[str, Any]:
    """Start a worker for ``spec``, ask it ``cmd`` once and close it; the
    reply is the worker's, or its start-up error."""
    w = _Worker(spec)
    try:
        reply = w.hello()
        if reply.get('ok'):
            reply = w.ask(cmd)
    finally:
        w.close()
    return reply


# --------------------------------------------------------------------------
# driver


def _stderr_progress(msg: str) -> None:
    stamp = datetime.datetime.now().strftime('%H:%M:%S')
    print(f'[{stamp}] {msg}', file=sys.stderr, flush=True)


def _git_commit() -> Optional[str]:
    # set when benchmarking an exported tree (``git archive``), not a checkout
    if os.environ.get('MMSEG_VVT_GIT_COMMIT'):
        return os.environ['MMSEG_VVT_GIT_COMMIT']
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                              cwd=_REPO_ROOT,
                              capture_output=True,
                              text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(
            ['git', 'status', '--porcelain', '--', 'mmseg_vvt'],
            cwd=_REPO_ROOT,
            capture_output=True,
            text=True).stdout.strip()
        return head + ('+uncommitted-changes' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def machine_meta(device: str = 'cpu') -> Dict[str, Any]:
    """Where and with what a run measured: date, commit, CPU, versions
    (mmengine's ``collect_env``) and, on CUDA, the GPU's name and memory,
    the CUDA runtime torch was built with and the driver's."""
    import mmengine
    import torch
    from mmengine.utils.dl_utils import collect_env
    env = collect_env()
    meta = dict(
        date_utc=datetime.datetime.now(
            datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        git_commit=_git_commit(),
        cpu=_cpu_name(),
        cpu_count=os.cpu_count(),
        load_avg_at_start=list(os.getloadavg()),
        python=platform.python_version(),
        torch=torch.__version__,
        mmengine=mmengine.__version__,
        device=device)
    try:
        import mmseg
        meta['mmseg'] = mmseg.__version__
    except ImportError:
        meta['mmseg'] = None
    if device == 'cuda':
        props = torch.cuda.get_device_properties(0)
        meta.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            nvidia_driver=env.get('NVIDIA Driver Version'))
    return meta


def device_label(meta: Dict[str, Any]) -> str:
    """One line naming what a run measured on."""
    if meta.get('device', 'cpu') == 'cuda':
        # gpu_memory_gb is GiB (2**30 bytes), the key kept for old reports
        return (f'GPU: {meta.get("gpu")} ({meta.get("gpu_memory_gb")} GiB), '
                f'CUDA {meta.get("cuda")}, driver '
                f'{meta.get("nvidia_driver")}, torch {meta["torch"]}')
    threads = meta.get('torch_threads')  # absent where none were timed
    return (f'CPU: {meta["cpu"]}, {meta["cpu_count"]} logical cores, torch '
            f'{meta["torch"]}' +
            (f' ({threads} threads)' if threads is not None else ''))


def _worker_spec(name,
                 res,
                 mode,
                 batch_size,
                 threads,
                 mem_limit_gb,
                 device='cpu',
                 dtype='fp32',
                 compile=False,
                 skip_triton_interpreter=False) -> Dict[str, Any]:
    """What a worker process measures (see :func:`_worker_call`)."""
    return dict(
        model=name,
        resolution=res,
        mode=mode,
        batch_size=batch_size,
        threads=threads,
        device=device,
        dtype=dtype,
        compile=compile,
        skip_triton_interpreter=skip_triton_interpreter,
        mem_limit_bytes=int(mem_limit_gb * 2**30) if mem_limit_gb else None)


def _count_flops_alone(models, res, mode, batch_size, threads, mem_limit_gb,
                       progress) -> Dict[str, Dict[str, Any]]:
    """FLOPs of each model at ``res``, each in a fresh CPU worker of its own
    (FLOPs do not depend on the device).

    The trace keeps a model's activations alive at once, so it is the most
    memory-hungry step (MiT-B2 / PCPVT-S at 2048x2048 need several times
    their 8.5 GB first pass). Run one at a time before the timing workers
    start, it has the machine's memory to itself, and a trace that fails
    (or is killed) costs only its FLOP count, not the model's latency.
    Returns ``{model: worker reply}``.
    """
    counts = {}
    for name in models:
        reply = _ask_fresh_worker(
            _worker_spec(name, res, mode, batch_size, threads, mem_limit_gb),
            'flops')
        counts[name] = reply
        if reply.get('ok'):
            progress(f'  {res}px {name}: {reply["flops"] / 1e9:.2f} GFLOPs')
        else:
            progress(f'  {res}px {name}: FLOP count FAILED: '
                     f'{reply["error"]}')
    return counts


def run_benchmark(
    models: Sequence[str] = DEFAULT_MODELS,
    resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
    mode: str = 'forward',
    repeats: int = 3,
    warmup: int = 1,
    batch_size: int = 1,
    budget_s: Optional[float] = None,
    flops: bool = True,
    threads: Optional[int] = None,
    mem_limit_gb: Optional[float] = None,
    device: str = 'cpu',
    dtype: str = 'fp32',
    compile: bool = False,
    progress: Callable[[str], None] = _stderr_progress,
    on_resolution_done: Optional[Callable[[Dict[str, Any]], None]] = None
) -> Dict[str, Any]:
    """Run the benchmark and return ``dict(meta=..., results=[...])`` (one
    result per model and resolution; a failed measurement is recorded in its
    ``errors`` and the run goes on). See the module docstring for method.

    ``on_resolution_done(partial)`` is called after each resolution with the
    results so far (``meta['complete']`` False until the last one), e.g. to
    write the reports incrementally so an interrupted run keeps them."""
    models = check_model_names(list(models))
    if not models:
        raise ValueError('no models to benchmark')
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    resolutions = list(resolutions)
    if not resolutions or any(not isinstance(r, int) or r < 32
                              for r in resolutions):
        raise ValueError(f'resolutions must be ints >= 32, got {resolutions}')
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    if warmup < 0:
        raise ValueError(f'warmup must be >= 0, got {warmup}')
    if budget_s is not None and budget_s <= 0:
        raise ValueError(f'budget_s must be > 0, got {budget_s}')
    if device not in DEVICES:
        raise ValueError(f'device must be one of {DEVICES}, got {device!r}')
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {sorted(DTYPES)}, got '
                         f'{dtype!r}')
    from .timing import device_type
    device_type(device)  # a clear error now, not one per worker

    meta = machine_meta(device)
    meta.update(
        mode=mode,
        batch_size=batch_size,
        dtype=dtype,
        compiled=bool(compile),
        optimizer_step='AdamW' if mode == 'train' else None,
        repeats=repeats,
        warmup=warmup,
        budget_s=budget_s,
        models={m: BENCHMARK_MODELS[m]['label']
                for m in models},
        resolutions=resolutions,
        mem_limit_gb=mem_limit_gb,
        command=' '.join(sys.argv))
    results = []
    n_cells = len(models) * len(resolutions)
    t_start = time.perf_counter()
    for ri, res in enumerate(resolutions):
        cell = {}
        workers = {}
        started = {}
        try:
            flop_counts = (
                _count_flops_alone(models, res, mode, batch_size, threads,
                                   mem_limit_gb, progress) if flops else {})
            started = {}
            for mi, name in enumerate(models):
                progress(f'[{ri * len(models) + mi + 1}/{n_cells}] {res}px '
                         f'{name}: starting worker')
                started[name] = _Worker(
                    _worker_spec(name, res, mode, batch_size, threads,
                                 mem_limit_gb, device, dtype, compile))
            for name, w in started.items():
                rec = dict(
                    model=name,
                    label=BENCHMARK_MODELS[name]['label'],
                    resolution=res,
                    mode=mode,
                    params=None,
                    flops=None,
                    gflops=None,
                    latency_ms=None,
                    latency_samples_ms=[],
                    first_pass_ms=None,
                    mem_baseline_mb=None,
                    mem_peak_mb=None,
                    mem_extra_mb=None,
                    unsupported_ops=None,
                    errors=[])
                cell[name] = rec
                reply = w.hello()
                if not reply.get('ok'):
                    rec['errors'].append(f'build: {reply["error"]}')
                    progress(f'  {name}: FAILED to build: {reply["error"]}')
                    w.close()
                    continue
                rec['params'] = reply['params']
                meta.setdefault('torch_threads', reply['threads'])
                if reply.get('allocator'):
                    meta.setdefault('cpu_allocator', reply['allocator'])
                workers[name] = w
                if name in flop_counts:
                    count = flop_counts[name]
                    if count.get('ok'):
                        rec.update(
                            flops=count['flops'],
                            gflops=count['flops'] / 1e9,
                            flops_by_operator=count['by_operator'],
                            unsupported_ops=count['unsupported_ops'])
                    else:
                        rec['errors'].append(f'flops: {count["error"]}')

            if compile:
                # compile side by side (minutes each); the memory pass and
                # the timing below run one model at a time as usual
                progress(f'  {res}px compiling {len(workers)} model(s)')
                compiled = {n: w.submit('time') for n, w in workers.items()}
                for name, future in compiled.items():
                    reply = workers[name]._result(future)
                    if not reply.get('ok'):
                        cell[name]['errors'].append(
                            f'compile: {reply["error"]}')
                        progress(f'  {res}px {name}: compile FAILED: '
                                 f'{reply["error"]}')
            for name, w in workers.items():
                rec = cell[name]
                if rec['errors'] and compile:
                    continue  # a failed compile fails every pass
                reply = w.ask('memory')
                if reply.get('ok'):
                    mb = 2.0**20
                    rec.update(
                        first_pass_ms=reply['seconds'] * 1e3,
                        mem_baseline_mb=reply['baseline'] / mb,
                        mem_peak_mb=reply['peak'] / mb,
                        mem_extra_mb=reply['extra'] / mb)
                    progress(f'  {res}px {name}: first pass '
                             f'{reply["seconds"] * 1e3:.0f} ms, peak extra '
                             f'memory {reply["extra"] / mb:.0f} MiB')
                else:
                    rec['errors'].append(f'memory: {reply["error"]}')
                    progress(f'  {res}px {name}: FAILED: {reply["error"]}')

            order = [
                n for n in workers
                if not workers[n].dead and not (compile and cell[n]['errors'])
            ]
            for i in range(warmup):
                for name in order:
                    reply = workers[name].ask('time')
                    if not reply.get('ok'):
                        cell[name]['errors'].append(
                            f'warm-up: {reply["error"]}')
                progress(f'  {res}px warm-up round {i + 1}/{warmup} done')

            for r in range(repeats):
                k = r % max(len(order), 1)
                for name in order[k:] + order[:k]:
                    rec = cell[name]
                    w = workers[name]
                    if w.dead:
                        continue
                    spent = sum(rec['latency_samples_ms']) / 1e3
                    if (budget_s is not None and rec['latency_samples_ms']
                            and spent >= budget_s):
                        continue
                    reply = w.ask('time')
                    if reply.get('ok'):
                        ms = reply['seconds'] * 1e3
                        rec['latency_samples_ms'].append(ms)
                        progress(f'  {res}px {name}: repeat {r + 1}/'
                                 f'{repeats} {ms:.1f} ms')
                    else:
                        rec['errors'].append(f'time: {reply["error"]}')
                        progress(f'  {res}px {name}: FAILED: '
                                 f'{reply["error"]}')
        finally:
            for w in started.values():
                w.close()
        for name in models:
            rec = cell[name]
            if rec['latency_samples_ms']:
                rec['latency_ms'] = statistics.median(
                    rec['latency_samples_ms'])
            rec['repeats'] = len(rec['latency_samples_ms'])
            results.append(rec)
        progress(f'{res}px done ({time.perf_counter() - t_start:.0f} s '
                 f'elapsed)')
        meta['wall_s'] = time.perf_counter() - t_start
        meta['complete'] = ri == len(resolutions) - 1
        if on_resolution_done is not None:
            done = resolutions[:ri + 1]
            partial_meta = dict(meta, resolutions=done)
            on_resolution_done(dict(meta=partial_meta, results=list(results)))
    return dict(meta=meta, results=results)


def recount_flops(
        data: Dict[str, Any],
        models: Optional[Sequence[str]] = None,
        progress: Callable[[str], None] = _stderr_progress) -> Dict[str, Any]:
    """Count the FLOPs of finished results again with the current code
    (e.g. after a counter fix), in a worker process per model and
    resolution; latency and memory are left as measured. ``models`` limits
    it to some models (default: all in ``data``). The recount is recorded in
    ``meta['flops_recount']``. Returns ``data``, updated in place."""
    results = data['results']
    names = list(data['meta']['models'])
    models = names if models is None else check_model_names(list(models))
    missing = [m for m in models if m not in names]
    if missing:
        raise ValueError(f'{missing} are not in these results (models: '
                         f'{names})')
    for rec in results:
        if rec['model'] not in models:
            continue
        res = rec['resolution']
        reply = _ask_fresh_worker(
            dict(
                model=rec['model'],
                resolution=res,
                mode='forward',
                batch_size=data['meta'].get('batch_size', 1)), 'flops')
        if not reply.get('ok'):
            rec['errors'].append(f'flops recount: {reply["error"]}')
            progress(f'{res}px {rec["model"]}: recount FAILED: '
                     f'{reply["error"]}')
            continue
        old = rec.get('gflops')
        rec.update(
            flops=reply['flops'],
            gflops=reply['flops'] / 1e9,
            flops_by_operator=reply['by_operator'],
            unsupported_ops=reply['unsupported_ops'])
        progress(f'{res}px {rec["model"]}: {rec["gflops"]:.2f} GFLOPs '
                 f'(was {_fmt(old, ".2f")})')
    data['meta']['flops_recount'] = dict(
        date_utc=datetime.datetime.now(
            datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        git_commit=_git_commit(),
        models=list(models),
        command=' '.join(sys.argv))
    return data


# --------------------------------------------------------------------------
# reports


def _lookup(results, model, res):
    for r in results:
        if r['model'] == model and r['resolution'] == res:
            return r
    return None


def _fmt(v, spec):
    return '—' if v is None else format(v, spec)


def _ratio(num, den, spec='.2f'):
    if num is None or den is None or den == 0:
        return '—'
    return f'{num / den:{spec}}×'


def render_markdown(data: Dict[str, Any],
                    reference: Optional[str] = 'vvt-s-reference',
                    peer: Optional[str] = 'swin-t') -> str:
    """Markdown report: settings, the main table (with speed-ups vs
    ``reference`` and ``peer`` and memory relative to ``peer``) and the
    growth of each model's cost from the smallest to the largest
    resolution."""
    meta, results = data['meta'], data['results']
    models = list(meta['models'])
    resolutions = list(meta['resolutions'])
    labels = meta['models']
    ref = reference if reference in models else None
    peer = peer if peer in models else None
    if meta['mode'] == 'forward':
        mode_txt = 'forward pass (eval, no_grad)'
    elif meta.get('optimizer_step'):
        mode_txt = (f'training step (forward + backward + '
                    f'{meta["optimizer_step"]} step)')
    else:  # results measured before the optimizer step was timed
        mode_txt = 'training step (forward + backward, no optimizer step)'
    dtype_txt = meta['dtype'] + (' autocast'
                                 if meta['dtype'] != 'fp32' else '')
    if meta.get('compiled'):
        dtype_txt += ', torch.compile'
    lines = [
        f'# Backbone scaling benchmark: {mode_txt}', '',
        f'- {meta["date_utc"]}, commit `{meta.get("git_commit")}`',
        f'- {device_label(meta)}, mmseg {meta.get("mmseg")}, mmengine '
        f'{meta["mmengine"]}',
        f'- batch {meta["batch_size"]}, {dtype_txt}, median of up to '
        f'{meta["repeats"]} interleaved timed repeats after '
        f'{meta["warmup"]} warm-up round(s)' +
        (f', at most {meta["budget_s"]:g} s of repeats per cell'
         if meta.get('budget_s') else ''), f'- load average at start: '
        f'{", ".join(f"{x:.2f}" for x in meta["load_avg_at_start"])}',
        f'- command: `{meta.get("command", "")}`', ''
    ]
    if meta.get('cpu_allocator'):
        lines.insert(-2, f'- CPU allocator: {meta["cpu_allocator"]}')
    if meta.get('flops_recount'):
        rc = meta['flops_recount']
        lines.insert(
            -1, f'- GFLOPs of {", ".join(rc["models"])} recounted '
            f'{rc["date_utc"]} at commit `{rc["git_commit"]}` '
            f'(`{rc["command"]}`)')
    if meta.get('complete') is False:
        lines[1:1] = [
            '', '**Partial results: the run was still going or '
            'was interrupted after the resolutions shown.**'
        ]
    cols = ['input', 'model', 'params (M)', 'GFLOPs', 'latency (ms)', 'n']
    if ref:
        cols.append(f'speed-up vs {labels[ref]}')
    if peer:
        cols.append(f'speed-up vs {labels[peer]}')
    cols += ['peak extra mem (MiB)', 'peak RSS (MiB)']
    if peer:
        cols.append(f'mem / {labels[peer]}')
    lines += ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    for res in resolutions:
        ref_r = _lookup(results, ref, res) if ref else None
        peer_r = _lookup(results, peer, res) if peer else None
        for m in models:
            r = _lookup(results, m, res)
            if r is None:
                continue
            lat = r['latency_ms']
            row = [
                f'{res}x{res}', labels[m],
                _fmt(r['params'] and r['params'] / 1e6, '.2f'),
                _fmt(r['gflops'], '.1f'),
                _fmt(lat, '.0f') if lat is None or lat >= 10 else _fmt(
                    lat, '.2f'),
                str(r.get('repeats', len(r['latency_samples_ms'])))
            ]
            if ref:
                row.append(_ratio(ref_r and ref_r['latency_ms'], lat))
            if peer:
                row.append(_ratio(peer_r and peer_r['latency_ms'], lat))
            row += [
                _fmt(r['mem_extra_mb'], '.0f'),
                _fmt(r['mem_peak_mb'], '.0f')
            ]
            if peer:
                row.append(
                    _ratio(r['mem_extra_mb'], peer_r
                           and peer_r['mem_extra_mb']))
            if r['errors']:
                row[1] += ' (failed: see JSON)'
            lines.append('| ' + ' | '.join(row) + ' |')
    lines += [
        '', 'Speed-up = the other model\'s median latency / this model\'s '
        '(above 1 = this model is faster). Peak extra memory = the peak '
        'resident memory during the first pass in a fresh process minus the '
        'resident memory just before it (model and input loaded), from '
        '`/proc/self/clear_refs` + `VmHWM`' +
        (' (on CUDA: `max_memory_allocated` after '
         '`reset_peak_memory_stats` minus `memory_allocated` before; '
         'the "peak RSS" column is then the peak allocated)'
         if meta.get('device') == 'cuda' else '') +
        '. GFLOPs: mmengine FlopAnalyzer, '
        'forward pass, one multiply-add = 1 FLOP, attention products '
        'included (mmseg_vvt.utils.complexity).'
    ]
    if len(resolutions) > 1:
        lo, hi = min(resolutions), max(resolutions)
        lines += [
            '', f'## Growth from {lo}x{lo} to {hi}x{hi} '
            f'(pixels ×{(hi / lo) ** 2:g})', '',
            '| model | GFLOPs | latency | peak extra memory |',
            '|---|---|---|---|'
        ]
        for m in models:
            a, b = _lookup(results, m, lo), _lookup(results, m, hi)
            if a is None or b is None:
                continue
            cells = [labels[m]] + [
                _ratio(b[k], a[k], '.1f')
                for k in ('gflops', 'latency_ms', 'mem_extra_mb')
            ]
            lines.append('| ' + ' | '.join(cells) + ' |')
    failed = [r for r in results if r['errors']]
    if failed:
        lines += ['', '## Failures', '']
        for r in failed:
            lines.append(f'- {r["resolution"]}px {labels[r["model"]]}: ' +
                         '; '.join(r['errors']))
    return '\n'.join(lines) + '\n'


def plot_results(data: Dict[str, Any], path: str) -> None:
    """PNG with GFLOPs, latency and peak extra memory against resolution
    (log-log axes, one line per model)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    meta, results = data['meta'], data['results']
    resolutions = sorted(meta['resolutions'])
    panels = [('gflops', 'GFLOPs'), ('latency_ms', 'latency (ms)'),
              ('mem_extra_mb', 'peak extra memory (MiB)')]
    measured = [(k, t) for k, t in panels
                if any(r[k] is not None for r in results)]
    panels = measured or panels  # e.g. no GFLOPs panel after --no-flops
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    axes = axes[0]
    for ax, (key, title) in zip(axes, panels):
        lowest = None
        for m in meta['models']:
            pts = [(r['resolution'], r[key]) for r in results
                   if r['model'] == m and r[key] is not None and r[key] > 0]
            pts.sort()
            if pts:
                ax.plot(*zip(*pts), marker='o', label=meta['models'][m])
                if pts[0][0] == resolutions[0]:
                    lowest = min(lowest or pts[0][1], pts[0][1])
        if lowest is None:
            ax.text(
                0.5,
                0.5,
                'not measured',
                ha='center',
                va='center',
                transform=ax.transAxes,
                color='grey')
        elif len(resolutions) > 1:
            # guide: cost proportional to the number of pixels
            lo = resolutions[0]
            ax.plot(
                resolutions, [lowest * (r / lo)**2 for r in resolutions],
                '--',
                color='grey',
                lw=1,
                label='∝ pixels')
        ax.set_xscale('log', base=2)
        ax.set_yscale('log')
        ax.set_xticks(resolutions)
        ax.set_xticklabels([f'{r}²' for r in resolutions])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1., 2., 5.)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel('input resolution')
        ax.set_title(title)
        ax.grid(True, which='both', alpha=0.3)
    for ax in axes:
        if ax.get_lines():
            ax.legend(fontsize=8)
            break
    mode = 'forward' if meta['mode'] == 'forward' else 'training step'
    where = (
        meta.get('gpu')
        if meta.get('device') == 'cuda' else f'{meta["cpu_count"]}-core CPU')
    fig.suptitle(f'Backbone scaling, {mode}, batch {meta["batch_size"]}, '
                 f'{meta["dtype"]}, {where} ({meta["date_utc"]})')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def output_stem(mode: str,
                device: str = 'cpu',
                dtype: str = 'fp32',
                compile: bool = False) -> str:
    """``scaling_{mode}`` for the CPU fp32 eager run (the name of the
    published CPU results), with ``_{device}_{dtype}[_compiled]`` added for
    any other setting so that runs do not overwrite each other."""
    stem = f'scaling_{mode}'
    if (device, dtype, compile) != ('cpu', 'fp32', False):
        stem += f'_{device}_{dtype}' + ('_compiled' if compile else '')
    return stem


def write_outputs(
        data: Dict[str, Any],
        out_dir: str,
        reference: Optional[str] = 'vvt-s-reference',
        peer: Optional[str] = 'swin-t',
        progress: Callable[[str], None] = _stderr_progress) -> Dict[str, str]:
    """Write ``<output_stem>.json/.md/.png`` to ``out_dir``; returns the
    paths. Existing files of the same name are replaced, with a notice."""
    os.makedirs(out_dir, exist_ok=True)
    meta = data['meta']
    stem = osp.join(
        out_dir,
        output_stem(meta['mode'], meta.get('device', 'cpu'),
                    meta.get('dtype', 'fp32'), meta.get('compiled', False)))
    paths = dict(json=stem + '.json', markdown=stem + '.md', png=stem + '.png')
    for p in paths.values():
        if osp.exists(p):
            progress(f'replacing existing {p}')
    with open(paths['json'], 'w') as f:
        json.dump(data, f, indent=1)
    with open(paths['markdown'], 'w') as f:
        f.write(render_markdown(data, reference=reference, peer=peer))
    plot_results(data, paths['png'])
    return paths


# --------------------------------------------------------------------------
# device-independent proxies of GPU cost


def run_proxies(models: Sequence[str] = ('vvt-s', 'swin-t'),
                resolution: int = 256,
                batch_size: int = 2,
                threads: Optional[int] = None,
                progress: Callable[[str], None] = _stderr_progress,
                dtype: str = 'fp32',
                device: str = 'cpu',
                mode: str = 'train',
                skip_triton_interpreter: bool = False) -> Dict[str, Any]:
    """Ops dispatched, bytes they move and bytes saved for backward in one
    training step
    (forward + backward, no optimizer step; fp32 or under autocast to
    ``dtype``, on ``device``: on CUDA, CUDA autocast's own casts; see
    :mod:`.proxies`) of each model, each in a fresh worker process; with
    ``mode='forward'``, ops dispatched, bytes moved and peak live bytes of
    one eval forward under no_grad instead. ``skip_triton_interpreter``: on
    CPU, Triton kernels are counted without being run
    (:func:`~.proxies.triton_interpreter_skipped`). Returns
    ``dict(meta=..., results=[...])``.
    """
    models = check_model_names(list(models))
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {sorted(DTYPES)}, got '
                         f'{dtype!r}')
    if device not in DEVICES:
        raise ValueError(f'device must be one of {list(DEVICES)}, got '
                         f'{device!r}')
    if mode not in MODES:
        raise ValueError(f'mode must be one of {list(MODES)}, got {mode!r}')
    if skip_triton_interpreter and device != 'cpu':
        raise ValueError('skip_triton_interpreter is for CPU tensors '
                         "(Triton's interpreter); got device "
                         f'{device!r}')
    meta = machine_meta(device)
    meta.update(
        resolution=resolution,
        batch_size=batch_size,
        dtype=dtype,
        mode=mode,
        step=('eval forward under no_grad' if mode == 'forward' else
              'forward + backward (no optimizer step)'),
        triton_kernels_run=not skip_triton_interpreter,
        command=' '.join(sys.argv))
    results = []
    for name in models:
        reply = _ask_fresh_worker(
            _worker_spec(
                name,
                resolution,
                mode,
                batch_size,
                threads,
                None,
                device=device,
                dtype=dtype,
                skip_triton_interpreter=skip_triton_interpreter), 'proxies')
        rec = dict(
            model=name,
            label=BENCHMARK_MODELS[name]['label'],
            ops=None,
            moved_mib=None,
            errors=[])
        rec['peak_mib' if mode == 'forward' else 'saved_mib'] = None
        if reply.get('ok'):
            top = list(reply['ops_by_name'].items())[:20]
            top_bytes = list(reply['bytes_moved_by_name'].items())[:20]
            rec.update(
                ops=reply['ops'],
                top_ops=dict(top),
                moved_mib=reply['bytes_moved'] / 2**20,
                top_moved_mib={
                    k: v / 2**20
                    for k, v in top_bytes
                })
            if mode == 'forward':
                rec.update(
                    peak_bytes=reply['peak_bytes'],
                    peak_mib=reply['peak_bytes'] / 2**20)
                progress(f'{name}: {rec["ops"]} ops, '
                         f'{rec["moved_mib"]:.0f} MiB moved, '
                         f'{rec["peak_mib"]:.0f} MiB live at the peak')
            else:
                rec.update(
                    saved_bytes=reply['saved_bytes'],
                    saved_mib=reply['saved_bytes'] / 2**20,
                    saved_tensors=reply['saved_tensors'])
                progress(f'{name}: {rec["ops"]} ops, '
                         f'{rec["moved_mib"]:.0f} MiB moved, '
                         f'{rec["saved_mib"]:.0f} MiB saved for backward')
        else:
            rec['errors'].append(reply['error'])
            progress(f'{name}: FAILED: {reply["error"]}')
        results.append(rec)
    return dict(meta=meta, results=results)


def _precision(dtype: str) -> str:
    return dtype if dtype == 'fp32' else f'{dtype} autocast'


def proxies_stem(dtype: str = 'fp32',
                 device: str = 'cpu',
                 mode: str = 'train') -> str:
    """Where the proxies of a precision, device and mode are written:
    ``proxies`` (a training step, fp32 on CPU), ``proxies_bf16``,
    ``proxies_cuda_fp16``, ``proxies_forward``..."""
    return 'proxies' + ('' if mode == 'train' else f'_{mode}') + (
        '' if device == 'cpu' else f'_{device}') + ('' if dtype == 'fp32' else
                                                    f'_{dtype}')


def render_proxies(data: Dict[str, Any],
                   peer: Optional[str] = 'swin-t') -> str:
    """Markdown table of :func:`run_proxies`' results (with the ratio to
    ``peer`` when it was measured)."""
    from prettytable import PrettyTable, TableStyle
    meta, results = data['meta'], data['results']
    forward = meta.get('mode', 'train') == 'forward'
    # (key, column, its ratio's column, what it counts)
    if forward:
        mem = ('peak_mib', 'peak live (MiB)', 'peak',
               'peak live: the most bytes of tensors made in the forward '
               'alive at once')
        what, per = 'one inference forward', 'ops per forward'
    else:
        mem = ('saved_mib', 'saved for backward (MiB)', 'saved',
               'saved: distinct storages packed by autograd for backward')
        what, per = 'one training step', 'ops per step'
    peer_r = next((r for r in results if r['model'] == peer), None)
    cols = ['model', per, 'moved (MiB)', mem[1]]
    if peer_r:
        cols += [f'{k} / {peer_r["label"]}' for k in ('ops', 'moved', mem[2])]
    table = PrettyTable(cols)
    table.set_style(TableStyle.MARKDOWN)
    table.align = 'l'
    for r in results:
        row = [
            r['label'] + (' (failed: see JSON)' if r['errors'] else ''),
            _fmt(r['ops'], 'd'),
            _fmt(r.get('moved_mib'), '.0f'),
            _fmt(r.get(mem[0]), '.0f')
        ]
        if peer_r:
            row += [
                _ratio(r.get(k), peer_r.get(k))
                for k in ('ops', 'moved_mib', mem[0])
            ]
        table.add_row(row)
    res = meta['resolution']
    skipped = [] if meta.get('triton_kernels_run', True) else [
        '- Triton kernels counted, not run (`--skip-triton-interpreter`: '
        'their outputs allocated, left unset: the same ops and bytes moved, '
        'and live bytes as a GPU holds them)'
    ]
    return '\n'.join([
        '# Device-independent proxies of GPU cost', '',
        f'- {meta["date_utc"]}, commit `{meta.get("git_commit")}`, torch '
        f'{meta["torch"]}', f'- {what} ({meta["step"]}), {res}x{res}, batch '
        f'{meta["batch_size"]}, {_precision(meta.get("dtype", "fp32"))}',
        f'- {device_label(meta)}',
        '- ops: ATen ops dispatched (views, `detach` and ops that only '
        'alias an input, such as `_unsafe_view`, not counted); moved: bytes '
        'the ops read and write, each input read and each output written '
        'once; ' + mem[3], *skipped, '',
        table.get_string(), ''
    ])
