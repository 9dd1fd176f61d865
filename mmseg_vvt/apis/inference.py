"""Batch inference on image files, on mmseg's ``MMSegInferencer``.

:class:`VVTSegInferencer` (a subclass of mmseg's inferencer) builds the
model, the test pipeline, the collate function and the visualizer; the
pieces around it are usable on their own, and ``tools/inference.py`` is the
command line front end that strings them together:

* :func:`expand_inputs`: image files, folders and globs -> list of files.
* :func:`plan_outputs`: the label / overlay file each input will produce,
  with collision and overwrite checks that run before any work is done.
* :func:`set_test_mode` / :func:`drop_resize`: switch a config's
  ``model.test_cfg`` between whole-image and sliding-window inference, run
  at native resolution.
* :func:`load_weights`: the one place inference loads a checkpoint.
* :func:`resolve_dataset_meta`: classes and palette from the checkpoint,
  the config or mmseg's dataset aliases.
* :meth:`VVTSegInferencer.run`: the whole loop, with batching, a progress
  bar, per-file error reporting and outputs that appear only complete.
"""
import copy
import functools
import glob
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.utils import ProgressBar
from mmseg.apis import MMSegInferencer
from mmseg.utils import ConfigType

from .image_io import IMG_EXTENSIONS, ImageReadError, read_image_bgr

LABEL_DIR = 'labels'
OVERLAY_DIR = 'overlays'


# --------------------------------------------------------------------------
# inputs and outputs
# --------------------------------------------------------------------------
def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMG_EXTENSIONS


def expand_inputs(
        inputs: Sequence[Union[str, Path]]) -> Tuple[List[Path], List[Path]]:
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
            if not files and not glob.has_magic(str(item)):
                raise FileNotFoundError(
                    f'input {str(item)!r} does not exist (expected an image '
                    'file, a folder, or a glob pattern)')
            if not files:
                raise FileNotFoundError(
                    f'input {str(item)!r}: the glob pattern matches no file')
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
        lines = [
            f'  {s}.png <- ' + ', '.join(map(str, p))
            for s, p in sorted(clashes.items())
        ]
        earlier = sorted({
            str(p.parent)
            for paths in clashes.values()
            for p in paths if p.parent.name in (LABEL_DIR, OVERLAY_DIR)
        })
        advice = 'run them with separate --out-dir'
        if earlier:  # another --out-dir would not part these
            advice += ('; inputs in ' + ', '.join(earlier) + ' look like an '
                       "earlier run's outputs (by their folder names): leave "
                       'those out of the inputs')
        raise ValueError(
            'several inputs would write the same output file (outputs are '
            'named after the input file name without its suffix); ' + advice +
            ':\n' + '\n'.join(lines))
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
        if not str(t.get('type', '')).split('.')[-1].startswith((
            'Resize', 'RandomResize'))
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
    """The test pipeline adapted to inference on paths and arrays.

    The first step must be an image loader (``LoadImageFromFile`` or a
    subclass, e.g. ``CheckedLoadImageFromFile``); it becomes
    :class:`CheckedInferencerLoader` (same arguments). Annotation loaders
    (mmcv's ``LoadAnnotations`` and subclasses: mmseg's,
    ``CheckedLoadAnnotations``) are dropped: there is no label map at
    inference. mmseg's own ``MMSegInferencer`` only knows the exact type
    names; configs that use subclasses need this.
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
    steps[0]['type'] = 'CheckedInferencerLoader'
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


def _fit_palette(classes: list,
                 palette: list,
                 base_classes=None) -> Tuple[list, Optional[str]]:
    """One colour per class, and a note when that is not ``palette`` as
    given (mmseg's visualizer refuses classes and palette of different
    lengths).

    Too few colours: the missing ones are generated. Too many: when
    ``palette`` is that of ``base_classes`` (a dataset's full class list,
    of which ``classes`` is a subset, as with ``metainfo=dict(classes=...)``)
    each class keeps its colour, as mmseg's datasets do; otherwise the
    whole palette is generated, since which colour goes with which class is
    unknown.
    """
    k, p = len(classes), len(palette)
    if p == k:
        return palette, None
    if p < k:
        note = (f'{k - p} of {k} colours generated' if p else 'generated')
        return palette + _generated_palette(k)[p:], note
    if base_classes is not None and len(base_classes) == p and all(
            c in base_classes for c in classes):
        index = {}
        for i, c in enumerate(base_classes):
            index.setdefault(c, i)
        return [palette[index[c]] for c in classes], \
            f'the dataset\'s colours of these {k} classes'
    return _generated_palette(k), f'generated ({p} colours for {k} classes)'


def resolve_dataset_meta(cfg: Config, checkpoint_meta: Optional[dict],
                         num_classes: int) -> Tuple[dict, str]:
    """Classes and palette for drawing, and where they came from.

    Order: the checkpoint's ``meta.dataset_meta`` (written by mmseg's
    runner), the test dataset of the config (its class ``METAINFO``
    updated by ``metainfo=``), an mmseg dataset alias with exactly
    ``num_classes`` classes, and finally generic names ``class_i``.

    The result always has ``num_classes`` classes (the model's decode head)
    and one colour per class: a class list that is shorter is completed
    with ``class_i`` names, a longer one cut (both with a warning); the
    palette is fitted by :func:`_fit_palette`. The returned source names
    these adjustments (``'...; palette: generated ...'``).
    """
    from mmseg.registry import DATASETS
    from mmseg.utils import dataset_aliases, get_classes, get_palette

    meta, source, base_classes = None, None, None
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
        override = dict(ds_cfg.get('metainfo') or {})
        if 'palette' not in override and info.get('classes'):
            # the palette is the dataset class's, for its own class list
            base_classes = list(info['classes'])
        info.update(override)
        if info.get('classes'):
            meta, source = info, f'config test dataset ({ds_type})'
    if meta is None:
        for name in dataset_aliases:
            if len(get_classes(name)) == num_classes:
                meta = dict(
                    classes=get_classes(name), palette=get_palette(name))
                source = f'mmseg dataset {name!r} (same number of classes)'
                break
    if meta is None:
        return dict(
            classes=[f'class_{i}' for i in range(num_classes)],
            palette=_generated_palette(num_classes)), 'generic class names'

    classes = list(meta['classes'])
    palette = [list(map(int, c)) for c in (meta.get('palette') or [])]
    palette, note = _fit_palette(classes, palette, base_classes)
    notes = [f'palette: {note}'] if note else []
    n = len(classes)
    if n < num_classes:
        warnings.warn(
            f'dataset meta from {source} has {n} classes but the model '
            f'predicts {num_classes}; using class_i names for the rest')
        classes += [f'class_{i}' for i in range(n, num_classes)]
        palette += _generated_palette(num_classes)[n:]
        notes.append(f'classes: {n} names, class_{n}.. added')
    elif n > num_classes:
        warnings.warn(
            f'dataset meta from {source} has {n} classes but the model '
            f'predicts {num_classes}; using the first {num_classes}')
        classes, palette = classes[:num_classes], palette[:num_classes]
        notes.append(f'classes: the first {num_classes} of {n}')
    return dict(classes=classes, palette=palette), '; '.join([source] + notes)


@dataclass
class InferenceSummary:
    written: List[OutputPlan] = field(default_factory=list)
    failed: List[Tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def load_weights(model,
                 checkpoint: Union[str, Path],
                 allow_partial: bool = False) -> dict:
    """Load ``checkpoint`` into ``model``: the one place inference loads
    weights.

    :func:`mmseg_vvt.engine.load_model_checkpoint` unpickles through the
    ``weights_only`` allow-list and, unless ``allow_partial``, refuses
    missing or unexpected keys and mismatched shapes, naming them.

    Returns:
        The loaded checkpoint (its ``meta`` may hold ``dataset_meta``).
    """
    from mmseg_vvt.engine import load_model_checkpoint

    if not Path(checkpoint).is_file() and '://' not in str(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
    ckpt = load_model_checkpoint(
        model,
        str(checkpoint),
        map_location='cpu',
        allow_partial=allow_partial)
    return ckpt if isinstance(ckpt, dict) else {}


def checkpoint_misfit(model,
                      checkpoint: dict,
                      source: Optional[str] = None) -> Optional[str]:
    """None when ``checkpoint``'s weights fit ``model`` (keys and shapes),
    else what does not fit: missing / unexpected keys, shapes that differ.

    For reporting a partial load after the fact; it compares again rather
    than calling ``check_checkpoint_fits(allow_partial=True)``, which would
    log the same summary a second time.
    """
    from mmseg_vvt.engine.checkpoint import (CheckpointMismatchError,
                                             check_checkpoint_fits)
    try:
        check_checkpoint_fits(model, checkpoint, source=source)
    except CheckpointMismatchError as err:
        # without the advice to ask for a partial load: it was asked for
        return err.summary
    return None


def _atomic_write(path: Path, write) -> Path:
    """``write(tmp)`` to a temporary name in ``path``'s folder; returns the
    temporary path (renamed into place by the caller)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # same suffix: cv2.imwrite picks the encoder from it
    tmp = path.with_name(f'.{path.stem}.{os.getpid()}.tmp{path.suffix}')
    try:
        write(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


class VVTSegInferencer(MMSegInferencer):
    """mmseg's ``MMSegInferencer`` for the project's configs and tools.

    What it adds to mmseg's:

    * the config's test mode can be switched (:func:`set_test_mode`) and
      its ``Resize`` dropped (:func:`drop_resize`) before the model is built;
    * the test pipeline may start with any ``LoadImageFromFile`` subclass
      (``CheckedLoadImageFromFile``) and load annotations with any
      ``LoadAnnotations`` subclass (:func:`inference_pipeline`); images are
      read by :class:`CheckedInferencerLoader` (gray, RGBA, 16-bit, float);
    * weights load through :func:`load_weights`; classes and palette come
      from :func:`resolve_dataset_meta` (``meta_source`` says from where);
      ``partial_load`` is None, or after an ``allow_partial`` load of a
      checkpoint that did not fit, what did not fit
      (:func:`checkpoint_misfit`);
    * :meth:`run` writes label PNGs and overlays for a list of
      :class:`OutputPlan`, reporting and skipping files that fail.

    ``inferencer(inputs, ...)`` works as mmseg's does.

    Args:
        model (str | Path | Config): The segmentor's config (file or
            object).
        weights (str, optional): Its checkpoint (path or URL); None: the
            config's initialisation (random weights). Default: None.
        device (str, optional): ``'cpu'``, ``'cuda'`` or ``'cuda:N'``; None:
            mmengine's choice (CUDA when available). Default: None.
        mode (str, optional): ``'whole'`` or ``'slide'`` inference; None: the
            config's ``test_cfg`` (:func:`set_test_mode`). Default: None.
        crop_size (int | tuple[int, int], optional): Sliding window; None:
            the config's (:func:`set_test_mode`). Default: None.
        stride (int | tuple[int, int], optional): Window stride; None: the
            config's, else two thirds of the window. Default: None.
        no_resize (bool): Drop the test pipeline's ``Resize``: predict at
            the image's own size (:func:`drop_resize`). Default: False.
        allow_partial (bool): Load a checkpoint that does not fit the model
            in part (logged) instead of refusing it. Default: False.
    """

    def __init__(self,
                 model: Union[str, Path, Config],
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 mode: Optional[str] = None,
                 crop_size=None,
                 stride=None,
                 no_resize: bool = False,
                 allow_partial: bool = False) -> None:
        import mmseg_vvt  # noqa: F401  (registers VVT without custom_imports)

        cfg = model if isinstance(model, Config) else Config.fromfile(
            str(model))
        cfg = set_test_mode(cfg, mode, crop_size, stride)
        if no_resize:
            cfg = drop_resize(cfg)
        # adapted here, so model.cfg also works with mmseg's inference_model
        cfg.test_pipeline = inference_pipeline(_test_pipeline(cfg))
        if cfg.get('visualizer') is None:
            cfg.visualizer = dict(type='SegLocalVisualizer')
        # the visualizer writes files only where it is told to
        cfg.visualizer.pop('vis_backends', None)
        cfg.visualizer.pop('save_dir', None)
        self._allow_partial = allow_partial
        self.meta_source = None
        self.partial_load = None
        super().__init__(
            cfg,
            str(weights) if weights is not None else None,
            device=device,
            scope=cfg.get('default_scope', 'mmseg'))
        self.visualizer.set_dataset_meta(**self.model.dataset_meta)

    def _init_collate(self, cfg: ConfigType) -> Callable:
        # mmengine looks the collate function up in the 'function' registry
        # of scope 'mmseg', which mmseg does not define: a WARNING ("may
        # cause unexpected failure") on every run, then mmengine's own
        # registry. Look there directly.
        from mmengine.dataset import pseudo_collate
        from mmengine.registry import FUNCTIONS
        loader = cfg.get('test_dataloader')
        collate = loader.get('collate_fn') if hasattr(loader, 'get') else None
        if collate is None:
            return pseudo_collate  # mmengine's default when none is set
        kwargs = dict(collate) if isinstance(collate, dict) else {}
        name = kwargs.pop('type', None) if isinstance(collate,
                                                      dict) else collate
        fn = FUNCTIONS.get(name) if isinstance(name, str) else name
        if not callable(fn):
            raise ValueError(
                f'test_dataloader.collate_fn {collate!r} is not a function '
                f'registered in mmengine (e.g. pseudo_collate)')
        # its other keys are arguments, as the Runner's dataloaders take them
        return functools.partial(fn, **kwargs) if kwargs else fn

    def _init_model(self,
                    cfg: ConfigType,
                    weights: Optional[str],
                    device: str = 'cpu'):
        from mmseg.registry import MODELS

        cfg.model.pop('pretrained', None)  # as mmengine's _init_model
        model = MODELS.build(cfg.model)
        model.cfg = cfg
        checkpoint = {}
        if weights is not None:
            allow = self._allow_partial or cfg.get('allow_partial_checkpoint',
                                                   False)
            checkpoint = load_weights(model, weights, allow)
            if allow:
                self.partial_load = checkpoint_misfit(model, checkpoint,
                                                      str(weights))
        model.dataset_meta, self.meta_source = resolve_dataset_meta(
            cfg, checkpoint.get('meta'), model.num_classes)
        model.to(device)
        model.eval()
        return model

    def _init_pipeline(self, cfg: ConfigType):
        from mmcv.transforms import Compose
        return Compose(cfg.test_pipeline)

    # -- files in, files out ------------------------------------------------
    def overlay(self,
                image_bgr: np.ndarray,
                pred,
                opacity: float = 0.5,
                with_labels: bool = False) -> np.ndarray:
        """The prediction drawn over the image (BGR uint8), by mmseg's
        ``visualize`` (``SegLocalVisualizer``)."""
        if not 0 < opacity <= 1:
            raise ValueError(f'opacity must be in (0, 1], got {opacity}')
        (vis, ) = self.visualize([np.ascontiguousarray(image_bgr[:, :, ::-1])],
                                 [pred],
                                 return_vis=True,
                                 opacity=opacity,
                                 with_labels=with_labels)
        return np.ascontiguousarray(vis[:, :, ::-1])

    def visualize(self, inputs, preds, **kwargs):
        """mmseg's ``visualize``, given each prediction's labels as numpy:
        the visualizer indexes its colour mask with ``labels == k``, and a
        one-element torch tensor (a 1x1 image) numpy takes as the integer
        index 1 (``IndexError``), on every route that draws (``overlay``,
        ``__call__`` with ``return_vis`` or ``out_dir``)."""
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample

        drawn = []
        for pred in preds:
            labels = pred.pred_sem_seg.data
            if isinstance(labels, torch.Tensor):
                pred = SegDataSample(metainfo=pred.metainfo)
                pred.pred_sem_seg = PixelData(data=labels.cpu().numpy())
            drawn.append(pred)
        return super().visualize(inputs, drawn, **kwargs)

    def write_outputs(self,
                      plan: OutputPlan,
                      image_bgr: np.ndarray,
                      pred,
                      opacity: float = 0.5,
                      with_labels: bool = False) -> None:
        """Write the label PNG (and the overlay) of one image: both are
        written under temporary names and renamed into place only when
        both succeeded, so a failure leaves no partial output."""
        num_classes = self.model.num_classes
        label = pred.pred_sem_seg.data.cpu().numpy()[0]
        done = []
        try:
            done.append((_atomic_write(
                plan.label,
                lambda tmp: save_label(label, tmp, num_classes)), plan.label))
            if plan.overlay is not None:
                vis = self.overlay(image_bgr, pred, opacity, with_labels)
                done.append((_atomic_write(plan.overlay,
                                           lambda tmp: _imwrite(tmp, vis)),
                             plan.overlay))
        except BaseException:
            for tmp, _ in done:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in done:
            os.replace(tmp, final)

    def run(self,
            plans: Sequence[OutputPlan],
            batch_size: int = 1,
            opacity: float = 0.5,
            with_labels: bool = False,
            progress: Optional[bool] = None,
            err_stream=None) -> InferenceSummary:
        """Predict every planned image and write its outputs.

        A file that cannot be read, or whose prediction or outputs fail, is
        reported on ``err_stream`` with its path and the reason, recorded in
        the summary, and leaves no output; the loop goes on with the rest.
        ``batch_size`` images are read at a time; equally sized ones (after
        the test pipeline) share a forward pass, since mmseg's data
        preprocessor cannot stack different sizes at test time.
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        if not 0 < opacity <= 1:
            raise ValueError(f'opacity must be in (0, 1], got {opacity}')
        err_stream = err_stream or sys.stderr
        summary = InferenceSummary()
        show = len(plans) > 1 if progress is None else progress
        bar = ProgressBar(len(plans)) if show else None

        def fail(plan, reason):
            summary.failed.append((plan.image, reason))
            print(
                f'\nERROR: skipped {plan.image}: {reason}',
                file=err_stream,
                flush=True)
            if bar:
                bar.update()

        for start in range(0, len(plans), batch_size):
            batch = []
            for plan in plans[start:start + batch_size]:
                try:
                    img = read_image_bgr(plan.image)
                    data = self.pipeline(dict(img=img))
                except ImageReadError as err:
                    fail(plan, err.reason)
                    continue
                except Exception as err:
                    fail(
                        plan, 'test pipeline failed: '
                        f'{type(err).__name__}: {err}')
                    continue
                batch.append((plan, img, data))
            for run in _equal_size_runs(batch, key=lambda item: item[2]):
                try:
                    preds = self.forward(
                        self.collate_fn([data for _, _, data in run]))
                except Exception as err:  # report, go on with the next run
                    for plan, _, _ in run:
                        fail(plan,
                             f'inference failed: {type(err).__name__}: {err}')
                    continue
                for (plan, img, _), pred in zip(run, preds):
                    try:
                        self.write_outputs(plan, img, pred, opacity,
                                           with_labels)
                    except Exception as err:
                        fail(
                            plan, 'writing outputs failed: '
                            f'{type(err).__name__}: {err}')
                        continue
                    summary.written.append(plan)
                    if bar:
                        bar.update()
        if bar:
            bar.file.write('\n')
        return summary


def _equal_size_runs(items: Sequence, key) -> List[list]:
    """Consecutive items whose packed inputs (``key(item)['inputs']``) have
    the same shape."""
    runs: List[list] = []
    for item in items:
        shape = tuple(key(item)['inputs'].shape)
        if runs and tuple(key(runs[-1][0])['inputs'].shape) == shape:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def load_segmentor(config: Union[str, Path, Config],
                   checkpoint: Optional[str],
                   device: str = 'cpu',
                   mode: Optional[str] = None,
                   crop_size=None,
                   stride=None,
                   no_resize: bool = False,
                   allow_partial: bool = False):
    """The model of a :class:`VVTSegInferencer`: ``(model, meta_source)``.

    ``model.dataset_meta`` holds ``classes`` and ``palette``, ``model.cfg``
    the config actually used; ``mmseg.apis.inference_model`` runs it.

    Args:
        config (str | Path | Config): As ``model`` of
            :class:`VVTSegInferencer`.
        checkpoint (str, optional): As its ``weights``.
        device (str): As its ``device``. Default: ``'cpu'``.
        mode (str, optional): As its ``mode``. Default: None.
        crop_size (int | tuple[int, int], optional): As its ``crop_size``.
            Default: None.
        stride (int | tuple[int, int], optional): As its ``stride``.
            Default: None.
        no_resize (bool): As its ``no_resize``. Default: False.
        allow_partial (bool): As its ``allow_partial``. Default: False.
    """
    inferencer = VVTSegInferencer(
        config,
        checkpoint,
        device=device,
        mode=mode,
        crop_size=crop_size,
        stride=stride,
        no_resize=no_resize,
        allow_partial=allow_partial)
    return inferencer.model, inferencer.meta_source


def label_dtype(num_classes: int):
    """uint8 label maps for up to 255 classes, uint16 beyond (index 255 is
    mmseg's ignore index in 8-bit label files, so a 256th class would be read
    back as 'ignore')."""
    return np.uint8 if num_classes <= 255 else np.uint16


def _imwrite(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise OSError(f'could not write {path}')


def save_label(label: np.ndarray, path: Union[str, Path],
               num_classes: int) -> None:
    """Write class indices as a single-channel PNG (see :func:`label_dtype`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.asarray(label)
    if label.ndim == 3 and label.shape[0] == 1:
        label = label[0]
    _imwrite(path, label.astype(label_dtype(num_classes)))
