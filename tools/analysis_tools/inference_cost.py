"""Time and peak memory of one inference, whole-image or sliding-window.

Runs ``mmseg.apis.inference_model`` (the path ``tools/inference.py`` takes)
on a random ``H x W`` BGR image at its native resolution (the test
pipeline's Resize is dropped), after one untimed warm-up call on a small
256 x 256 image (first-call set-up costs stay out of the timing; the
allocations for the large image do not). Peak memory is the process's
``VmHWM`` after a fresh mark (``5`` is written to
``/proc/self/clear_refs`` just before the timed call), reported
both absolute and as the increase over the resident size at the mark (which
holds the model, the image and whatever the warm-up left allocated).

Run each mode in its own process (``tools/measure_inference.py``) for
numbers that do not depend on what ran before. Weights are random unless a
checkpoint is given (timing and memory do not depend on them).
"""
from typing import Optional, Sequence

import numpy as np
import torch


def measure_inference(config: str,
                      mode: str,
                      shape: Sequence[int] = (2048, 2048),
                      crop_size: Optional[Sequence[int]] = None,
                      stride: Optional[Sequence[int]] = None,
                      checkpoint: Optional[str] = None,
                      warmup: bool = True,
                      allow_partial: bool = False) -> dict:
    """Seconds and peak RSS of one ``inference_model`` call on CPU
    (``allow_partial``: load a checkpoint that does not fit the model)."""
    from mmseg.apis import inference_model

    from mmseg_vvt.apis.inference import load_segmentor
    from .memory import measure_peak_rss
    from .timing import time_call

    model, _ = load_segmentor(
        config,
        checkpoint,
        device='cpu',
        mode=mode,
        crop_size=crop_size,
        stride=stride,
        no_resize=True,
        allow_partial=allow_partial)
    img = np.random.RandomState(0).randint(0, 256, (*shape, 3), np.uint8)
    with torch.no_grad():
        if warmup:
            inference_model(model, img[:256, :256].copy())

        def run():
            result = []
            seconds = time_call(
                lambda: result.append(inference_model(model, img)))
            return result[0], seconds

        (result, seconds), mem = measure_peak_rss(run)
    tc = model.test_cfg
    return dict(
        config=str(config),
        mode=tc.get('mode', 'whole'),
        crop_size=list(tc.crop_size) if tc.get('mode') == 'slide' else None,
        stride=list(tc.stride) if tc.get('mode') == 'slide' else None,
        shape=list(shape),
        output_shape=list(result.pred_sem_seg.shape),
        seconds=seconds,
        peak_rss_bytes=int(mem['peak']),
        baseline_rss_bytes=int(mem['baseline']),
        peak_rss_mib=round(mem['peak'] / 2**20, 1),
        baseline_rss_mib=round(mem['baseline'] / 2**20, 1),
        peak_increase_mib=round(mem['extra'] / 2**20, 1),
        torch_threads=torch.get_num_threads(),
        torch_version=torch.__version__,
    )
