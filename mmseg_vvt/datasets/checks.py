"""Check, before a run starts, that the datasets of its dataloaders exist
and are not empty.

mmengine builds the datasets only when a loop starts, after the model, and
an image folder that exists but holds no images gives a dataset of length
0: mmengine's ``InfiniteSampler`` (mmseg's training sampler) then loops
forever without yielding an index, so training hangs silently. A missing
folder fails later with a bare ``FileNotFoundError`` from deep inside the
dataset code (or, for the label folder, only when the first sample loads).

:func:`check_dataloader_datasets` builds each dataset the runner will use
(listing the files is all it costs; the pipeline is not run) and raises

* :class:`DatasetNotFoundError` naming the data root, image or label
  directory, or annotation file that does not exist;
* :class:`EmptyDatasetError` naming the dataset's data root, image directory
  (and file suffix / annotation file) when it holds no samples.

``tools/train.py`` checks ``train_dataloader`` (and ``val_dataloader`` when
the config has a validation loop), ``tools/test.py`` ``test_dataloader``.
"""
import copy
import os.path as osp
from typing import Dict, Iterable, List, Optional

from mmengine.config import Config
from mmengine.registry import DATASETS, DefaultScope

__all__ = [
    'DatasetNotFoundError', 'EmptyDatasetError', 'check_dataloader_datasets',
    'runner_dataloader_keys'
]


class DatasetNotFoundError(FileNotFoundError):
    """A directory or file a dataset of the config reads does not exist."""


class EmptyDatasetError(RuntimeError):
    """A dataset of the config has no samples."""


def runner_dataloader_keys(cfg: Config, mode: str) -> List[str]:
    """The dataloader config keys whose datasets the runner builds.

    ``mode='train'``: ``train_dataloader``, plus ``val_dataloader`` when
    ``val_cfg``, ``val_dataloader`` and ``val_evaluator`` are all set (the
    runner then builds the validation loop before training starts).
    ``mode='test'``: ``test_dataloader``.
    """
    if mode == 'train':
        keys = ['train_dataloader']
        if all(
                cfg.get(k) is not None
                for k in ('val_cfg', 'val_dataloader', 'val_evaluator')):
            keys.append('val_dataloader')
        return keys
    if mode == 'test':
        return ['test_dataloader']
    raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")


def _is_local(path) -> bool:
    return isinstance(path, str) and '://' not in path


def _lazy(dataset_cfg):
    """A copy of ``dataset_cfg`` with ``lazy_init=True`` on the dataset and
    on the datasets inside wrappers (``dataset=`` / ``datasets=``)."""
    cfg = dict(dataset_cfg, lazy_init=True)
    if isinstance(cfg.get('dataset'), dict):
        cfg['dataset'] = _lazy(cfg['dataset'])
    if isinstance(cfg.get('datasets'), (list, tuple)):
        cfg['datasets'] = [
            _lazy(d) if isinstance(d, dict) else d for d in cfg['datasets']
        ]
    return cfg


def _build(dataset_cfg):
    """Build without loading the file list (``lazy_init``) where the
    dataset classes support it, so that missing paths can be named first."""
    cfg = copy.deepcopy(dataset_cfg)
    try:
        return DATASETS.build(_lazy(cfg))
    except TypeError as err:
        if 'lazy_init' not in str(err):
            raise
    return DATASETS.build(cfg)


def _leaves(dataset) -> Iterable:
    """The datasets inside dataset wrappers (Concat/Repeat/ClassBalanced)."""
    inner = getattr(dataset, 'datasets', None)
    if isinstance(inner, (list, tuple)):
        for d in inner:
            yield from _leaves(d)
        return
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        yield from _leaves(inner)
        return
    yield dataset


def _transforms(node) -> Iterable:
    """Every transform of a pipeline, also inside Compose / TestTimeAug."""
    subs = []
    for attr in ('transforms', 'subroutines'):
        value = getattr(node, attr, None)
        if isinstance(value, (list, tuple)):
            subs += list(value)
    if not subs:
        yield node
        return
    for sub in subs:
        yield from _transforms(sub)


def _loads_labels(dataset) -> bool:
    pipeline = getattr(dataset, 'pipeline', None)
    if pipeline is None:
        return False
    return any(
        type(t).__name__.endswith('LoadAnnotations')
        for t in _transforms(pipeline))


def _where(dataset) -> str:
    """data_root / img_path / suffix / ann_file of a (leaf) dataset."""
    parts = [f'data_root={getattr(dataset, "data_root", None)!r}']
    prefix = getattr(dataset, 'data_prefix', None) or {}
    for key, value in prefix.items():
        parts.append(f'{key}={value!r}')
    suffix = getattr(dataset, 'img_suffix', None)
    if suffix:
        parts.append(f'img_suffix={suffix!r}')
    ann_file = getattr(dataset, 'ann_file', None)
    if ann_file:
        parts.append(f'ann_file={ann_file!r}')
    return ', '.join(parts)


def _check_paths(dataset, key: str, wrapped: bool) -> None:
    name = type(dataset).__name__
    data_root = getattr(dataset, 'data_root', None)
    where = (f'the data_root of the dataset in {key}'
             if wrapped else f'--cfg-options {key}.dataset.data_root=PATH')
    hint = f' Put the data there, or point the config elsewhere ({where}).'
    if data_root and _is_local(data_root) and not osp.isdir(data_root):
        raise DatasetNotFoundError(
            f'{key}: the data_root {data_root!r} of the {name} does not exist '
            f'(expected a directory).{hint}')
    prefix = getattr(dataset, 'data_prefix', None) or {}
    ann_file = getattr(dataset, 'ann_file', None)
    for prefix_key, path in prefix.items():
        if prefix_key == 'seg_map_path' and not _loads_labels(dataset):
            continue  # label maps never read by this pipeline
        if path and _is_local(path) and not osp.isdir(path):
            what = {
                'img_path': 'image directory',
                'seg_map_path': 'label map directory'
            }.get(prefix_key, f'{prefix_key} directory')
            raise DatasetNotFoundError(
                f'{key}: the {what} {path!r} of the {name} does not exist '
                f'(data_root={data_root!r}, data_prefix.{prefix_key} = '
                f'{path!r}).{hint}')
    if ann_file and _is_local(ann_file) and not osp.exists(ann_file):
        raise DatasetNotFoundError(
            f'{key}: the ann_file {ann_file!r} of the {name} does not exist '
            f'(data_root={data_root!r}).{hint}')


def check_dataloader_datasets(cfg: Config,
                              keys: Iterable[str]) -> Dict[str, int]:
    """Build the dataset of each dataloader in ``keys`` and check it.

    Args:
        cfg: the full config (its ``default_scope`` is used to look the
            dataset and transform types up, as the runner does).
        keys: dataloader config keys, e.g. from
            :func:`runner_dataloader_keys`; keys that are unset are skipped.

    Returns:
        The number of samples of each checked dataset, by key.

    Raises:
        DatasetNotFoundError: a data root, image / label directory or
            annotation file that the dataset reads does not exist.
        EmptyDatasetError: a dataset has no samples.
    """
    sizes = {}
    scope: Optional[str] = cfg.get('default_scope', None)
    with DefaultScope.overwrite_default_scope(scope):
        for key in keys:
            loader = cfg.get(key)
            if loader is None:
                continue
            dataset_cfg = loader.get('dataset')
            if dataset_cfg is None:
                continue
            built = isinstance(dataset_cfg, dict)
            dataset = _build(dataset_cfg) if built else dataset_cfg
            leaves = list(_leaves(dataset))
            for leaf in leaves:
                _check_paths(leaf, key, wrapped=leaf is not dataset)
                # the list of samples is all this check needs; mmengine's
                # serialisation also fails on an empty list (with a numpy
                # error that names nothing)
                if built and not getattr(leaf, '_fully_initialized', True):
                    leaf.serialize_data = False
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
            size = len(dataset)
            if size == 0:
                where = '; '.join(_where(d) for d in leaves)
                why = ''
                if 'InfiniteSampler' in str(loader.get('sampler', '')):
                    why = (" (With no samples, mmengine's InfiniteSampler "
                           'never yields an index and the run would wait '
                           'forever.)')
                raise EmptyDatasetError(
                    f'{key}: the {type(dataset).__name__} has no samples '
                    f'({where}); expected at least one image file (with '
                    f'its img_suffix) under its img_path.{why}')
            sizes[key] = size
    return sizes
