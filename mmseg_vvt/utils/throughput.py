"""Inference throughput (images/s) of the segmentor in an mmseg config."""
import statistics
import time
from typing import Any, Dict, Optional, Sequence

import torch

from .complexity import _check_shape, build_segmentor

__all__ = ['DTYPES', 'segmentor_throughput']

# name -> autocast dtype (None: plain fp32, no autocast)
DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def _autocast(dtype_name: str, device: str):
    if dtype_name not in DTYPES:
        raise ValueError(f'dtype must be one of {sorted(DTYPES)}, got '
                         f'{dtype_name!r}')
    dtype = DTYPES[dtype_name]
    if dtype is None:
        return torch.autocast(device, enabled=False)
    return torch.autocast(device, dtype=dtype)


def segmentor_throughput(cfg_or_path: Any,
                         shape: Sequence[int] = (512, 512),
                         batch_size: int = 2,
                         dtypes: Sequence[str] = ('fp32', 'bf16'),
                         iters: int = 10,
                         warmup: int = 2,
                         cfg_options: Optional[dict] = None,
                         device: str = 'cpu',
                         model=None) -> Dict[str, Dict[str, Any]]:
    """Images/s of ``model(inputs, mode='tensor')`` (backbone, neck, decode
    head; eval mode, ``no_grad``) on a random normalised batch.

    Every dtype in ``dtypes`` runs the same model: ``fp32`` without autocast,
    ``bf16`` / ``fp16`` under ``torch.autocast(device, dtype)``. ``warmup``
    untimed batches, then ``iters`` timed ones. ``model`` may be passed
    pre-built (then ``cfg_or_path`` is only used when it is None).

    Returns ``{dtype: dict(images_per_s, ms_per_batch_median,
    ms_per_batch_samples, batch_size, shape, iters, output_finite)}``.
    """
    shape = _check_shape(shape)
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    if iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')
    if warmup < 0:
        raise ValueError(f'warmup must be >= 0, got {warmup}')
    dtypes = list(dtypes)
    if not dtypes:
        raise ValueError('dtypes is empty')
    for d in dtypes:
        if d not in DTYPES:
            raise ValueError(f'dtype must be one of {sorted(DTYPES)}, got '
                             f'{d!r}')
    if model is None:
        model = build_segmentor(cfg_or_path, cfg_options)
    model.to(device)
    model.eval()  # (some backbones' train() do not return self)
    inputs = torch.randn(batch_size, 3, *shape, device=device)
    results = {}
    for name in dtypes:
        samples = []
        finite = True
        with torch.no_grad(), _autocast(name, device):
            for i in range(warmup + iters):
                start = time.perf_counter()
                out = model(inputs, mode='tensor')
                if device != 'cpu':
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - start
                if i >= warmup:
                    samples.append(elapsed)
                finite = finite and bool(torch.isfinite(out).all())
                del out
        total = sum(samples)
        results[name] = dict(
            images_per_s=batch_size * len(samples) / total,
            ms_per_batch_median=statistics.median(samples) * 1e3,
            ms_per_batch_samples=[s * 1e3 for s in samples],
            batch_size=batch_size,
            shape=tuple(shape),
            iters=iters,
            output_finite=finite)
    return results
