"""Batch inference on image files, built on mmseg's ``init_model`` /
``inference_model``.

The pieces are usable on their own; ``tools/inference.py`` is the command
line front end that strings them together:

* :func:`expand_inputs`: image files, folders and globs -> list of files.
* :func:`plan_outputs`: the label / overlay file each input will produce,
  with collision and overwrite checks that run before any work is done.
* :func:`set_test_mode`: switch a config's ``model.test_cfg`` between
  whole-image and sliding-window inference.
* :func:`load_segmentor`: ``mmseg.apis.init_model`` + checkpoint + dataset
  meta (classes and palette) from the checkpoint, the config or mmseg's
  dataset aliases.
* :func:`predict`: ``mmseg.apis.inference_model`` on BGR uint8 arrays.
* :func:`save_label` / :class:`OverlayWriter`: the two output files.
* :func:`run_inference`: the whole loop, with batching, a progress bar and
  per-file error reporting.
"""
import copy
import glob
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

from ..engine.checkpoint import load_model_checkpoint
from .image_io import IMG_EXTENSIONS, ImageReadError, read_image_bgr

LABEL_DIR = 'labels'
OVERLAY_DIR = 'overlays'


# --------------------------------------------------------------------------
# inputs and outputs
# --------------------------------------------------------------------------
def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMG_EXTENSIONS


def expand_inputs(inputs: Sequence[Union[str, Path]]
                  ) -> Tuple[List[Path], List[Path]]:
    """Expand image files, folders and glob patterns into image paths.

    * an existing file is taken as given (whatever its suffix);
    * a folder contributes its files (not recursively) whose suffix is in
      :data:`IMG_EXTENSIONS`; other files in it are returned as ``ignored``;
    * anything else is treated as a glob pattern (``**`` allowed) and must
      match at least one file; matched files are filtered like a folder's.

    Duplicates (same resolved path) are kept once, in first-seen order.

    Returns:
        ``(images, ignored)``.

    Raises:
        FileNotFoundError: for an input that is neither a file, a folder,
            nor a glob matching any file, or when nothing at all remains.
    """
    images: List[Path] = []
    ignored: List[Path] = []
    seen = set()

    def add(path: Path):
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            images.append(path)

    for item in inputs:
        path = Path(item)
        if path.is_file():
            add(path)
        elif path.is_dir():
            for child in sorted(path.iterdir()):
                if not child.is_file():
                    continue
                if _is_image_name(child):
                    add(child)
                else:
                    ignored.append(child)
        else:
            matches = sorted(glob.glob(str(item), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                raise FileNotFoundError(
                    f'input {str(item)!r} is not an image file, a folder, or '
                    'a glob pattern matching any file')
            for f in files:
                if _is_image_name(f):
                    add(f)
                else:
                    ignored.append(f)
    if not images:
        raise FileNotFoundError(
            'no image files found in the inputs ' +
            ', '.join(repr(str(i)) for i in inputs) +
            f' (image suffixes: {", ".join(IMG_EXTENSIONS)})')
    return images, ignored


@dataclass
class OutputPlan:
    """Where the outputs of one input image go."""
    image: Path
    label: Path
    overlay: Optional[Path]


def plan_outputs(images: Sequence[Path],
                 out_dir: Union[str, Path],
                 overlay: bool = True,
                 overwrite: bool = False) -> List[OutputPlan]:
    """Map each image to ``OUT/labels/<stem>.png`` and
    ``OUT/overlays/<stem>.png``.

    Raises:
        ValueError: if two inputs would write the same output (same file
            stem), naming them.
        FileExistsError: if outputs exist and ``overwrite`` is False, naming
            the existing files. Nothing has been written at that point.
    """
    out_dir = Path(out_dir)
    plans = []
    by_stem: Dict[str, List[Path]] = {}
    for img in images:
        by_stem.setdefault(img.stem, []).append(img)
        plans.append(
            OutputPlan(
                image=img,
                label=out_dir / LABEL_DIR / f'{img.stem}.png',
                overlay=(out_dir / OVERLAY_DIR /
                         f'{img.stem}.png') if overlay else None))
    clashes = {s: p for s, p in by_stem.items() if len(p) > 1}
    if clashes:
        lines = [f'  {s}.png <- ' + ', '.join(map(str, p))
                 for s, p in sorted(clashes.items())]
        raise ValueError(
            'several inputs would write the same output file (outputs are '
            'named after the input file name without its suffix); run them '
            'with separate --out-dir:\n' + '\n'.join(lines))
    if not overwrite:
        existing = [
            str(p) for plan in plans for p in (plan.label, plan.overlay)
            if p is not None and p.exists()
        ]
        if existing:
            shown = existing[:20]
            more = len(existing) - len(shown)
            raise FileExistsError(
                f'{len(existing)} output file(s) already exist; refusing to '
                'overwrite them (pass --overwrite to replace them):\n' +
                '\n'.join(f'  {p}' for p in shown) +
                (f'\n  ... and {more} more' if more else ''))
    return plans


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------
def _pair(value, name) -> Tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return (value[0], value[0])
    if len(value) != 2:
        raise ValueError(f'{name} must be one or two integers (H W), got '
                         f'{value}')
    return value


def set_test_mode(cfg: Config,
                  mode: Optional[str],
                  crop_size=None,
                  stride=None) -> Config:
    """Return a copy of ``cfg`` whose ``model.test_cfg`` uses ``mode``.

    Args:
        cfg: the model config.
        mode: ``'whole'``, ``'slide'`` or None (keep the config's own
            ``test_cfg``; ``crop_size``/``stride`` then still override it if
            it is in slide mode).
        crop_size: sliding window ``(h, w)`` (or one int). Defaults to the
            config's slide ``crop_size``, else its top-level ``crop_size``,
            else ``model.data_preprocessor.size``.
        stride: window stride ``(h, w)``. Defaults to the config's slide
            ``stride``, else two thirds of the window (mmseg's usual
            512 -> 341).
    """
    if mode not in (None, 'whole', 'slide'):
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    cfg = copy.deepcopy(cfg)
    test_cfg = ConfigDict(cfg.model.get('test_cfg') or {})
    current = test_cfg.get('mode', 'whole')
    target = mode or current
    if target == 'whole':
        if crop_size is not None or stride is not None:
            raise ValueError('--crop-size/--stride only apply to slide mode')
        test_cfg.mode = 'whole'
        test_cfg.pop('crop_size', None)
        test_cfg.pop('stride', None)
    else:
        if crop_size is None:
            crop_size = test_cfg.get('crop_size') if current == 'slide' \
                else None
        if crop_size is None:
            crop_size = cfg.get('crop_size')
        if crop_size is None:
            crop_size = cfg.model.get('data_preprocessor', {}).get('size')
        if crop_size is None:
            raise ValueError(
                'slide mode needs a window size: the config has no slide '
                'test_cfg, no crop_size and no data_preprocessor.size; pass '
                '--crop-size H W')
        crop_size = _pair(crop_size, 'crop_size')
        if stride is None and current == 'slide' and \
                test_cfg.get('stride') is not None:
            stride = test_cfg.stride
        if stride is None:
            stride = tuple(max(1, c * 2 // 3) for c in crop_size)
        stride = _pair(stride, 'stride')
        if min(crop_size) < 1 or min(stride) < 1:
            raise ValueError(f'crop_size {crop_size} and stride {stride} '
                             'must be positive')
        if stride[0] > crop_size[0] or stride[1] > crop_size[1]:
            raise ValueError(
                f'stride {stride} larger than the window {crop_size} would '
                'leave pixels unpredicted')
        test_cfg.mode = 'slide'
        test_cfg.crop_size = crop_size
        test_cfg.stride = stride
    cfg.model.test_cfg = test_cfg
    return cfg


def drop_resize(cfg: Config) -> Config:
    """Return a copy of ``cfg`` whose test pipeline has no resizing step, so
    the network runs at each image's native resolution."""
    cfg = copy.deepcopy(cfg)
    pipeline = _test_pipeline(cfg)
    cfg.test_pipeline = [
        t for t in pipeline
        if not str(t.get('type', '')).split('.')[-1].startswith(
            ('Resize', 'RandomResize'))
    ]
    return cfg


def _transform_class(step: dict):
    """The registered class of a pipeline step, or None if unknown."""
    from mmseg.registry import TRANSFORMS
    t = step.get('type')
    if not isinstance(t, str):
        return t if isinstance(t, type) else None
    try:
        return TRANSFORMS.get(t)
    except Exception:  # an unknown type fails later, when the step is built
        return None


def inference_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """The test pipeline adapted to in-memory BGR uint8 images.

    The first step must be an image loader (``LoadImageFromFile`` or a
    subclass, e.g. ``CheckedLoadImageFromFile``); it becomes mmseg's
    ``LoadImageFromNDArray`` (same arguments). Annotation loaders (mmcv's
    ``LoadAnnotations`` and subclasses: mmseg's, ``CheckedLoadAnnotations``)
    are dropped: there is no label map at inference. mmseg's own
    ``inference_model`` only knows the exact type names; configs that use
    subclasses need this.
    """
    from mmcv.transforms import LoadAnnotations, LoadImageFromFile

    steps = [copy.deepcopy(dict(t)) for t in pipeline]
    if not steps:
        raise ValueError('the test pipeline is empty')
    first = _transform_class(steps[0])
    if not (isinstance(first, type) and issubclass(first, LoadImageFromFile)):
        raise ValueError(
            'the first step of the test pipeline must load the image (a '
            f"LoadImageFromFile), got {steps[0].get('type')!r}")
    steps[0]['type'] = 'LoadImageFromNDArray'
    kept = [steps[0]]
    for step in steps[1:]:
        cls = _transform_class(step)
        is_ann = isinstance(cls, type) and issubclass(cls, LoadAnnotations)
        if not is_ann and 'LoadAnnotations' not in str(step.get('type')):
            kept.append(step)
    return kept


def _test_pipeline(cfg: Config) -> list:
    if cfg.get('test_pipeline') is not None:
        return cfg.test_pipeline
    try:
        return cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        raise ValueError(
            'the config defines neither `test_pipeline` nor '
            '`test_dataloader.dataset.pipeline`; inference needs one (e.g. '
            "[dict(type='LoadImageFromFile'), dict(type='PackSegInputs')])")


def _generated_palette(n: int) -> List[List[int]]:
    """A fixed, reproducible palette of ``n`` colours (seeded RNG)."""
    rng = np.random.RandomState(42)
    return rng.randint(0, 256, size=(n, 3)).tolist()


def resolve_dataset_meta(cfg: Config, checkpoint_meta: Optional[dict],
                         num_classes: int) -> Tuple[dict, str]:
    """Classes and palette for drawing, and where they came from.

    Order: the checkpoint's ``meta.dataset_meta`` (written by mmseg's
    runner), the test dataset of the config (its class ``METAINFO``
    updated by ``metainfo=``), an mmseg dataset alias with exactly
    ``num_classes`` classes, and finally generic names ``class_i``. Missing
    palette entries are filled from a fixed seeded palette.
    """
    from mmseg.registry import DATASETS
    from mmseg.utils import dataset_aliases, get_classes, get_palette

    meta, source = None, None
    ckpt_meta = (checkpoint_meta or {}).get('dataset_meta')
    if ckpt_meta and ckpt_meta.get('classes'):
        meta, source = dict(ckpt_meta), 'checkpoint meta'
    if meta is None:
        ds_cfg = cfg.get('test_dataloader', {}) or {}
        ds_cfg = ds_cfg.get('dataset', {}) or {}
        ds_type = ds_cfg.get('type')
        info = {}
        if isinstance(ds_type, str):
            ds_cls = DATASETS.get(ds_type)
            info = dict(getattr(ds_cls, 'METAINFO', {}) or {})
        info.update(ds_cfg.get('metainfo') or {})
        if info.get('classes'):
            meta, source = info, f'config test dataset ({ds_type})'
    if meta is None:
        for name in dataset_aliases:
            if len(get_classes(name)) == num_classes:
                meta = dict(classes=get_classes(name),
                            palette=get_palette(name))
                source = f'mmseg dataset {name!r} (same number of classes)'
                break
    if meta is None:
        meta = dict(classes=[f'class_{i}' for i in range(num_classes)])
        source = 'generic class names'

    classes = list(meta['classes'])
    if len(classes) != num_classes:
        warnings.warn(
            f'dataset meta from {source} has {len(classes)} classes but the '
            f'model predicts {num_classes}; using class_i names for the rest')
        classes += [f'class_{i}' for i in range(len(classes), num_classes)]
    palette = [list(map(int, c)) for c in (meta.get('palette') or [])]
    if len(palette) < len(classes):
        palette += _generated_palette(len(classes))[len(palette):]
    return dict(classes=classes, palette=palette), source


def load_segmentor(config: Union[str, Path, Config],
                   checkpoint: Optional[str],
                   device: str = 'cpu',
                   mode: Optional[str] = None,
                   crop_size=None,
                   stride=None,
                   no_resize: bool = False,
                   allow_partial: bool = False):
    """Build a segmentor with mmseg's ``init_model`` and load weights.

    ``init_model`` is called without a checkpoint and the checkpoint is then
    loaded with ``mmseg_vvt.engine.load_model_checkpoint`` (mmengine's
    ``load_checkpoint``, what ``init_model`` does inside, refusing a
    checkpoint that does not fit the model unless ``allow_partial`` or the
    config's ``allow_partial_checkpoint``), so that the dataset meta can
    come from the config when the checkpoint carries none (``init_model``
    would fall back to Cityscapes).

    Returns:
        ``(model, meta_source)``; ``model.dataset_meta`` holds ``classes``
        and ``palette``, ``model.cfg`` the config actually used.
    """
    from mmseg.apis import init_model

    import mmseg_vvt  # noqa: F401  (registers VVT even without custom_imports)

    cfg = config if isinstance(config, Config) else Config.fromfile(
        str(config))
    cfg = set_test_mode(cfg, mode, crop_size, stride)
    if no_resize:
        cfg = drop_resize(cfg)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.test_pipeline = inference_pipeline(_test_pipeline(cfg))
    model = init_model(cfg, None, device=device)
    ckpt_meta = None
    if checkpoint is not None:
        if not Path(checkpoint).is_file() and '://' not in str(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
        # refuses a checkpoint that does not fit the model (keys, shapes)
        ckpt = load_model_checkpoint(
            model, str(checkpoint), map_location='cpu',
            allow_partial=allow_partial
            or cfg.get('allow_partial_checkpoint', False))
        ckpt_meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    num_classes = model.decode_head.num_classes
    model.dataset_meta, source = resolve_dataset_meta(cfg, ckpt_meta,
                                                      num_classes)
    model.eval()
    return model, source


def predict(model, images: Sequence[np.ndarray]):
    """Run ``mmseg.apis.inference_model`` on BGR uint8 arrays.

    Images of different sizes are split into runs of equal size, since
    mmseg's data preprocessor only stacks equal sizes at test time.

    Returns:
        list of ``SegDataSample`` (``pred_sem_seg`` and ``seg_logits`` at
        each image's original size), in input order.
    """
    from mmseg.apis import inference_model

    results = []
    start = 0
    while start < len(images):
        end = start + 1
        while end < len(images) and \
                images[end].shape == images[start].shape:
            end += 1
        results.extend(inference_model(model, list(images[start:end])))
        start = end
    return results


def label_dtype(num_classes: int):
    """uint8 label maps for up to 255 classes, uint16 beyond (index 255 is
    mmseg's ignore index in 8-bit label files, so a 256th class would be read
    back as 'ignore')."""
    return np.uint8 if num_classes <= 255 else np.uint16


def save_label(label: np.ndarray, path: Union[str, Path],
               num_classes: int) -> None:
    """Write class indices as a single-channel PNG (see :func:`label_dtype`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.asarray(label)
    if label.ndim == 3 and label.shape[0] == 1:
        label = label[0]
    if not cv2.imwrite(str(path), label.astype(label_dtype(num_classes))):
        raise OSError(f'could not write {path}')


class OverlayWriter:
    """Draws predictions over the image with mmseg's ``SegLocalVisualizer``.
    """

    _count = 0

    def __init__(self, dataset_meta: dict, opacity: float = 0.5,
                 with_labels: bool = False):
        from mmseg.visualization import SegLocalVisualizer
        if not 0 < opacity <= 1:
            raise ValueError(f'opacity must be in (0, 1], got {opacity}')
        OverlayWriter._count += 1
        self.visualizer = SegLocalVisualizer(
            name=f'mmseg_vvt_overlay_{os.getpid()}_{OverlayWriter._count}',
            alpha=opacity)
        self.visualizer.dataset_meta = dict(
            classes=dataset_meta['classes'], palette=dataset_meta['palette'])
        self.with_labels = with_labels

    def write(self, image_bgr: np.ndarray, data_sample,
              path: Union[str, Path]) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the visualizer takes RGB and writes BGR via mmcv.imwrite
        self.visualizer.add_datasample(
            path.stem,
            np.ascontiguousarray(image_bgr[:, :, ::-1]),
            data_sample=data_sample,
            draw_gt=False,
            draw_pred=True,
            show=False,
            out_file=str(path),
            with_labels=self.with_labels)
        if not path.is_file():
            raise OSError(f'could not write {path}')


# --------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------
@dataclass
class InferenceSummary:
    written: List[OutputPlan] = field(default_factory=list)
    failed: List[Tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _report(msg: str, stream) -> None:
    print(msg, file=stream, flush=True)


def run_inference(model,
                  plans: Sequence[OutputPlan],
                  batch_size: int = 1,
                  opacity: float = 0.5,
                  with_labels: bool = False,
                  progress: Optional[bool] = None,
                  err_stream=None) -> InferenceSummary:
    """Predict every planned image and write its outputs.

    A file that cannot be read (or whose batch fails) is reported on
    ``err_stream`` with its path and the reason, recorded in the summary,
    and the loop goes on with the rest.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    err_stream = err_stream or sys.stderr
    num_classes = model.decode_head.num_classes
    writer = OverlayWriter(model.dataset_meta, opacity, with_labels) \
        if any(p.overlay is not None for p in plans) else None
    summary = InferenceSummary()
    show = len(plans) > 1 if progress is None else progress
    bar = ProgressBar(len(plans)) if show else None

    def fail(plan, reason):
        summary.failed.append((plan.image, reason))
        _report(f'\nERROR: skipped {plan.image}: {reason}', err_stream)

    for start in range(0, len(plans), batch_size):
        batch = []
        for plan in plans[start:start + batch_size]:
            try:
                batch.append((plan, read_image_bgr(plan.image)))
            except ImageReadError as err:
                fail(plan, err.reason)
                if bar:
                    bar.update()
        if not batch:
            continue
        try:
            samples = predict(model, [img for _, img in batch])
        except Exception as err:  # report, keep going with the next batch
            for plan, _ in batch:
                fail(plan, f'inference failed: {type(err).__name__}: {err}')
                if bar:
                    bar.update()
            continue
        for (plan, img), sample in zip(batch, samples):
            try:
                label = sample.pred_sem_seg.data.cpu().numpy()[0]
                save_label(label, plan.label, num_classes)
                if writer is not None:
                    writer.write(img, sample, plan.overlay)
                summary.written.append(plan)
            except Exception as err:
                fail(plan, f'writing outputs failed: {type(err).__name__}: '
                     f'{err}')
            if bar:
                bar.update()
    if bar:
        bar.file.write('\n')
    return summary
