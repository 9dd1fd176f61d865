"""Throughput of the segmentor in an mmseg config: inference images/s
(eval, ``no_grad``) and training images/s with peak memory (the runner's
own per-iteration call, ``model.train_step(data, optim_wrapper)``)."""
import contextlib
import statistics
from typing import Any, Dict, Optional, Sequence

import torch

from mmseg_vvt.utils.complexity import _check_shape, _load_cfg, build_segmentor
from .benchmark import (BENCHMARK_MODELS, DTYPES, autocast, backbone_cfg,
                        formulation)
from .memory import measure_peak
from .timing import device_type, time_call

__all__ = [
    'DTYPES', 'segmentor_throughput', 'segmentor_train_throughput',
    'swap_backbone'
]


def _formulation(backbone: Optional[str]):
    # a backbone such as vvt-s-triton runs under its implementation()
    return formulation(backbone) if backbone else contextlib.nullcontext()


def _check_common(shape, batch_size, iters, warmup):
    shape = _check_shape(shape)
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    if iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')
    if warmup < 0:
        raise ValueError(f'warmup must be >= 0, got {warmup}')
    return shape


def segmentor_throughput(
        cfg_or_path: Any,
        shape: Sequence[int] = (512, 512),
        batch_size: int = 2,
        dtypes: Sequence[str] = ('fp32', 'bf16'),
        iters: int = 10,
        warmup: int = 2,
        cfg_options: Optional[dict] = None,
        device: str = 'cpu',
        model=None,
        backbone: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """Images/s of ``model(inputs, mode='tensor')`` (backbone, neck, decode
    head; eval mode, ``no_grad``) on a random normalised batch.

    Every dtype in ``dtypes`` runs the same model: ``fp32`` without autocast,
    ``bf16`` / ``fp16`` under ``torch.autocast(device, dtype)``. ``warmup``
    untimed batches, then ``iters`` timed ones. ``model`` may be passed
    pre-built (then ``cfg_or_path`` is only used when it is None).
    ``backbone`` swaps in another backbone (:func:`swap_backbone`).

    Returns ``{dtype: dict(images_per_s, ms_per_batch_median,
    ms_per_batch_samples, batch_size, shape, iters, output_finite)}``.
    """
    shape = _check_common(shape, batch_size, iters, warmup)
    device_type(device)
    dtypes = list(dtypes)
    if not dtypes:
        raise ValueError('dtypes is empty')
    for d in dtypes:
        if d not in DTYPES:
            raise ValueError(f'dtype must be one of {sorted(DTYPES)}, got '
                             f'{d!r}')
    if model is None:
        cfg = _load_cfg(cfg_or_path, cfg_options)
        if backbone is not None:
            swap_backbone(cfg, backbone)
        model = build_segmentor(cfg)
    elif backbone is not None:
        raise ValueError('backbone is swapped into a config; a pre-built '
                         'model cannot take it')
    model.to(device)
    model.eval()  # (some backbones' train() do not return self)
    inputs = torch.randn(batch_size, 3, *shape, device=device)
    results = {}
    for name in dtypes:
        samples = []
        finite = []

        def run():
            out = model(inputs, mode='tensor')
            finite.append(bool(torch.isfinite(out).all()))

        with _formulation(backbone), torch.no_grad(), autocast(
                name,
                torch.device(device).type):
            for i in range(warmup + iters):
                seconds = time_call(run, device)
                if i >= warmup:
                    samples.append(seconds)
        total = sum(samples)
        results[name] = dict(
            images_per_s=batch_size * len(samples) / total,
            ms_per_batch_median=statistics.median(samples) * 1e3,
            ms_per_batch_samples=[s * 1e3 for s in samples],
            batch_size=batch_size,
            shape=tuple(shape),
            iters=iters,
            output_finite=all(finite))
    return results


def swap_backbone(cfg, name: str):
    """Put benchmark model ``name``'s backbone (e.g. mmseg's Swin-T) into a
    segmentor config, with the neck / heads' input widths set to its stage
    widths: the same neck and heads on another backbone."""
    spec = BENCHMARK_MODELS.get(name)
    if spec is None or 'out_channels' not in spec:
        known = sorted(k for k, v in BENCHMARK_MODELS.items()
                       if 'out_channels' in v)
        raise ValueError(f'backbone {name!r} cannot be swapped in; '
                         f'expected one of {known}')
    backbone = backbone_cfg(name)
    widths = list(spec['out_channels'])
    model = cfg.model
    model.backbone = backbone
    model.pop('pretrained', None)
    neck = model.get('neck')
    if neck is not None:
        neck.in_channels = widths  # the heads read the neck's outputs
        return cfg
    heads = []
    for key in ('decode_head', 'auxiliary_head'):
        # a cascade (OCRNet, PointRend) or several auxiliary heads: a list
        head = model.get(key)
        heads += head if isinstance(head, (list, tuple)) else [head]
    for head in heads:
        if head is None:
            continue
        index = head.get('in_index', -1)
        head.in_channels = ([widths[i] for i in index] if isinstance(
            index, (list, tuple)) else widths[index])
    return cfg


def _train_batch(model, batch_size, shape, num_classes):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(
            torch.randint(0, 256, (3, *shape), generator=g, dtype=torch.uint8))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, *shape), generator=g))
        sample.set_metainfo(
            dict(
                img_shape=tuple(shape),
                ori_shape=tuple(shape),
                pad_shape=tuple(shape)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def segmentor_train_throughput(
        cfg_or_path: Any,
        shape: Sequence[int] = (512, 512),
        batch_size: int = 8,
        amp: Optional[str] = None,
        iters: int = 10,
        warmup: int = 3,
        cfg_options: Optional[dict] = None,
        device: str = 'cpu',
        backbone: Optional[str] = None) -> Dict[str, Any]:
    """Training images/s and peak memory of the segmentor in a config.

    Each iteration is ``model.train_step(data, optim_wrapper)``, what
    mmengine's runner calls: data preprocessing of a uint8 batch, forward
    with the decode (and auxiliary) head losses, backward and the config's
    optimizer step (``optim_wrapper`` built from the config). ``amp``
    ``'fp16'`` / ``'bf16'``: on CUDA the config's wrapper becomes
    ``AmpOptimWrapper`` (autocast, dynamic loss scaling); on CPU, where
    mmengine's ``AmpOptimWrapper`` refuses to run, the step runs under
    ``torch.autocast('cpu', dtype)`` without loss scaling. ``backbone``
    swaps in another backbone (:func:`swap_backbone`).

    ``warmup`` untimed iterations (optimizer state allocated), then
    ``iters`` timed ones; peak memory is over the timed iterations
    (``peak_mib``: peak allocated on CUDA / peak RSS on CPU, including the
    model and optimizer state; ``extra_mib``: above the start of the timed
    iterations). Returns a dict of the numbers and the settings.
    """
    from mmengine.optim import build_optim_wrapper
    shape = _check_common(shape, batch_size, iters, warmup)
    kind = device_type(device)
    if amp is not None and amp not in ('fp16', 'bf16'):
        raise ValueError(f'amp must be fp16, bf16 or None, got {amp!r}')
    cfg = _load_cfg(cfg_or_path, cfg_options)
    if backbone is not None:
        swap_backbone(cfg, backbone)
    if 'optim_wrapper' not in cfg:
        raise KeyError('the config has no `optim_wrapper` to train with')
    model = build_segmentor(cfg).to(device)
    model.train()
    # the preprocessor pads a training batch up to the config's crop size:
    # without this, --shape 96 96 would be timed at 512x512
    preprocessor = model.data_preprocessor
    if getattr(preprocessor, 'size', None) is not None:
        preprocessor.size = tuple(shape)
    wrapper_cfg = cfg.optim_wrapper.copy()
    if amp is not None and kind == 'cuda':
        wrapper_cfg.update(
            type='AmpOptimWrapper', dtype=DTYPES[amp], loss_scale='dynamic')
    optim_wrapper = build_optim_wrapper(model, wrapper_cfg)
    # EncoderDecoder's and CascadeEncoderDecoder's (its last head's) count
    num_classes = model.num_classes
    data = _train_batch(model, batch_size, shape, num_classes)
    # what the model is fed after padding (a size_divisor may still pad)
    batch_shape = tuple(preprocessor(data, True)['inputs'].shape[-2:])
    losses = []

    def step():
        with _formulation(backbone):
            if amp is not None and kind == 'cpu':
                with autocast(amp, 'cpu'):
                    log = model.train_step(data, optim_wrapper)
            else:
                log = model.train_step(data, optim_wrapper)
        losses.append(float(log['loss']))

    for _ in range(warmup):
        step()
    samples, mem = measure_peak(
        lambda: [time_call(step, device) for _ in range(iters)], device)
    return dict(
        images_per_s=batch_size * len(samples) / sum(samples),
        ms_per_iter_median=statistics.median(samples) * 1e3,
        ms_per_iter_samples=[s * 1e3 for s in samples],
        peak_mib=mem['peak'] / 2**20,
        extra_mib=mem['extra'] / 2**20,
        memory=('max_memory_allocated' if kind == 'cuda' else 'peak RSS'),
        batch_size=batch_size,
        shape=tuple(shape),
        batch_shape=batch_shape,
        amp=amp,
        optim_wrapper=type(optim_wrapper).__name__,
        iters=iters,
        warmup=warmup,
        device=device,
        backbone=backbone,
        losses_finite=all(
            map(lambda v: v == v and abs(v) != float('inf'), losses)))
