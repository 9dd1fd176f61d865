"""Collect ``tools/test.py`` result files into an mmseg model-zoo table.

``tools/test.py`` writes ``<work_dir>/eval_<timestamp>.json``::

    {"config": str, "checkpoint": str, "dataset": str,
     "metrics": {"aAcc": float, "mIoU": float, "mAcc": float},
     "per_class": [{"class": str, "IoU": float, "Acc": float}, ...],
     "timestamp": str,
     "checkpoint_iter": int | null, "checkpoint_epoch": int | null,
     "test": {"tta": bool, "partial_checkpoint": bool, "cfg_options": {}}}

:func:`collect_results` reads the newest such file of each work dir (or all
of them), loads the recorded config with mmengine's ``Config`` and returns a
markdown table with the columns of mmseg's model zoo: Method (decode head),
Backbone, Crop Size, Lr schd (iterations), Params, GFLOPs, mIoU, config.

A result tested with ``--tta`` goes into an ``mIoU(ms+flip)`` column, as in
mmseg's model zoo (its newest beside the newest single-scale one of the same
work dir, config and checkpoint). A result that is not the plain test of its
config is marked with a numbered note under the table: from a partially loaded
checkpoint, with ``--cfg-options``, or from a file without the ``test``
record (written before it existed: counted as single-scale).

Lr schd is how far the tested checkpoint was trained (the eval JSON's
``checkpoint_iter``; ``checkpoint_epoch`` for an epoch-based config): the
config's ``max_iters`` (``max_epochs``) when it got there, else the
iteration with the config's schedule beside it, ``2 (of 400)``. Where the
file does not say (a checkpoint without ``meta``, a file written before
``tools/test.py`` recorded it) the cell is the config's schedule with a
numbered note under the table saying so, ``400 (1)``.
"""
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config

EVAL_GLOB = 'eval_*.json'

#: decode head type -> method name used in mmseg's model zoo
METHOD_NAMES = {
    'FPNHead': 'Semantic FPN',
    'UPerHead': 'UPerNet',
    'FCNHead': 'FCN',
    'PSPHead': 'PSPNet',
    'ASPPHead': 'DeepLabV3',
    'DepthwiseSeparableASPPHead': 'DeepLabV3+',
    'SegformerHead': 'SegFormer',
    'OCRHead': 'OCRNet',
    'DAHead': 'DANet',
    'LightHamHead': 'SegNeXt',
    'SETRUPHead': 'SETR-Naive/PUP',
    'SETRMLAHead': 'SETR-MLA',
    'MaskFormerHead': 'MaskFormer',
    'Mask2FormerHead': 'Mask2Former',
}
#: VVT presets -> the paper's short names
VVT_NAMES = {
    **dict.fromkeys(('t', 'tiny'), 'VVT-T'),
    **dict.fromkeys(('s', 'small'), 'VVT-S'),
    **dict.fromkeys(('m', 'medium'), 'VVT-M'),
    **dict.fromkeys(('l', 'large'), 'VVT-L')
}
REQUIRED_KEYS = ('config', 'metrics')
#: optional keys of counts (int or null) a result file may have
PROGRESS_KEYS = ('checkpoint_iter', 'checkpoint_epoch')
UNKNOWN_PROGRESS_NOTE = (
    'Lr schd: the config\'s schedule; the iteration the tested checkpoint '
    'reached is unknown (the checkpoint has no meta.iter, or the eval JSON '
    'was written before tools/test.py recorded it)')


class ResultsError(Exception):
    """A work dir or result file that cannot be collected."""


@dataclass
class EvalResult:
    path: Path
    work_dir: Path
    data: dict

    @property
    def timestamp(self) -> str:
        return str(self.data.get('timestamp', ''))

    @property
    def tta(self) -> bool:
        """Tested with ``--tta`` (the ``mIoU(ms+flip)`` column)."""
        return bool((self.data.get('test') or {}).get('tta', False))

    @property
    def checkpoint_iter(self) -> Optional[int]:
        """The iteration the tested checkpoint reached; None: unknown."""
        return self.data.get('checkpoint_iter')

    @property
    def checkpoint_epoch(self) -> Optional[int]:
        """The epoch the tested checkpoint reached; None: unknown."""
        return self.data.get('checkpoint_epoch')

    def notes(self) -> List[str]:
        """What sets this result apart from the plain test of its config,
        one sentence each (empty for a plain test)."""
        test = self.data.get('test')
        if not isinstance(test, dict):
            return [
                'from an eval JSON without the "test" record (written '
                'before tools/test.py recorded --tta and partial loads): '
                'counted as single-scale'
            ]
        notes = []
        if test.get('partial_checkpoint'):
            notes.append('from a partially loaded checkpoint '
                         '(--allow-partial-checkpoint): the weights that did '
                         'not fit the model kept their initial values')
        options = test.get('cfg_options') or {}
        if options:
            shown = ' '.join(f'{k}={v}' for k, v in options.items())
            notes.append(f'tested with --cfg-options {shown}')
        return notes


def find_eval_files(work_dir: Union[str, Path]) -> List[Path]:
    """The ``eval_*.json`` files of a work dir, oldest first (by name, which
    carries the timestamp).

    Raises:
        ResultsError: if the folder does not exist or holds no result file.
    """
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        raise ResultsError(f'work dir {work_dir} does not exist or is not a '
                           'folder')
    files = sorted(p for p in work_dir.glob(EVAL_GLOB) if p.is_file())
    if not files:
        raise ResultsError(
            f'work dir {work_dir} has no results ({EVAL_GLOB}); run '
            'tools/test.py CONFIG CHECKPOINT --work-dir '
            f'{work_dir} first')
    return files


def load_eval_file(path: Union[str, Path]) -> dict:
    """Read and validate one result JSON."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ResultsError(f'{path} is not valid JSON ({err})') from err
    if not isinstance(data, dict):
        raise ResultsError(f'{path}: expected a JSON object, got '
                           f'{type(data).__name__}')
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ResultsError(f'{path}: missing key(s) {missing}; expected the '
                           'format written by tools/test.py')
    if not isinstance(data['metrics'], dict) or 'mIoU' not in data['metrics']:
        raise ResultsError(f'{path}: "metrics" has no "mIoU"')
    if not isinstance(data.get('test', {}), dict):
        raise ResultsError(f'{path}: "test" is a '
                           f'{type(data["test"]).__name__}, expected an '
                           'object (tta, partial_checkpoint, cfg_options)')
    for key in PROGRESS_KEYS:
        value = data.get(key)
        # bool is an int in Python, but never a count
        if value is not None and (not isinstance(value, int)
                                  or isinstance(value, bool) or value < 0):
            raise ResultsError(f'{path}: "{key}" is {value!r}, expected a '
                               'count (an integer >= 0) or null')
    return data


def gather(work_dirs: Sequence[Union[str, Path]],
           all_results: bool = False,
           notes: Optional[Callable[[str], None]] = None) -> List[EvalResult]:
    """Result files of each work dir: the newest single-scale one and the
    newest ``--tta`` one, or all with ``all_results``. Older files that are
    left out are mentioned through ``notes`` (default: stderr)."""
    notes = notes or (lambda m: print(m, file=sys.stderr))
    results = []
    for wd in work_dirs:
        files = find_eval_files(wd)
        loaded = [EvalResult(f, Path(wd), load_eval_file(f)) for f in files]
        loaded.sort(key=lambda r: (r.timestamp, r.path.name))
        if not all_results:
            kept = []
            for tta in (False, True):
                kind = [r for r in loaded if r.tta == tta]
                for r in kind[:-1]:
                    notes(f'note: {wd}: using the newest '
                          f'{"--tta " if tta else ""}result '
                          f'{kind[-1].path.name}, not {r.path.name} '
                          '(pass --all to list every result)')
                kept += kind[-1:]
            loaded = sorted(kept, key=lambda r: (r.timestamp, r.path.name))
        results.extend(loaded)
    return results


def resolve_config_path(result: EvalResult) -> Path:
    """The config a result was made with: the recorded path as given (or
    relative to the work dir), else a config of that name dumped into the
    work dir by the runner."""
    recorded = Path(result.data['config'])
    candidates = [recorded]
    if not recorded.is_absolute():
        candidates.append(result.work_dir / recorded)
    candidates.append(result.work_dir / recorded.name)
    for c in candidates:
        if c.is_file():
            return c
    raise ResultsError(
        f'{result.path}: the recorded config {recorded} was not found (also '
        f'looked for {", ".join(str(c) for c in candidates[1:])})')


def _fmt_size(size) -> str:
    if size is None:
        return '-'
    if isinstance(size, int):
        size = (size, size)
    return 'x'.join(str(int(s)) for s in size)


def describe_config(cfg: Config) -> Dict[str, str]:
    """Method, backbone, crop size and schedule of a segmentor config."""
    model = cfg.model
    head = model.get('decode_head')
    if isinstance(head, (list, tuple)):
        head = head[-1]
    head_type = str((head or {}).get('type', '-')).split('.')[-1]
    method = METHOD_NAMES.get(head_type, head_type)

    bb = model.get('backbone') or {}
    bb_type = str(bb.get('type', '-')).split('.')[-1]
    if bb_type == 'VVT':
        arch = bb.get('arch', 'small')  # VVT's own default
        if isinstance(arch, str):
            backbone = VVT_NAMES.get(arch.lower(), f'VVT-{arch}')
        else:
            depths = '-'.join(str(d) for d in arch.get('depths', []))
            dims = '-'.join(str(d) for d in arch.get('embed_dims', []))
            backbone = f'VVT (custom: dims {dims}, depths {depths})'
    else:
        extra = bb.get('depth', bb.get('arch'))
        backbone = f'{bb_type}-{extra}' if isinstance(extra,
                                                      (int, str)) else bb_type

    crop = cfg.get('crop_size')
    if crop is None:
        crop = (model.get('data_preprocessor') or {}).get('size')

    train_cfg = cfg.get('train_cfg') or {}
    max_iters, max_epochs = None, None
    if train_cfg.get('max_iters') is not None:
        max_iters = int(train_cfg['max_iters'])
        schedule = str(max_iters)
    elif train_cfg.get('max_epochs') is not None:
        max_epochs = int(train_cfg['max_epochs'])
        schedule = f'{max_epochs} epochs'
    else:
        schedule = '-'
    return dict(
        method=method,
        backbone=backbone,
        crop=_fmt_size(crop),
        crop_size=crop,
        schedule=schedule,
        max_iters=max_iters,
        max_epochs=max_epochs)


def complexity(cfg_path: Path,
               shape: Tuple[int, int],
               flops: bool = True) -> Tuple[int, Optional[int]]:
    """``(params, flops)`` of the config's segmentor for one ``shape``
    image, from :func:`mmseg_vvt.utils.complexity.segmentor_complexity`
    (auxiliary head excluded). With ``flops=False`` only the parameters are
    counted and flops is None."""
    try:
        from mmseg_vvt.utils.complexity import (build_segmentor,
                                                segmentor_complexity)
    except ImportError as err:
        raise ResultsError(
            f'cannot count params/FLOPs: mmseg_vvt.utils.complexity is not '
            f'importable ({err}); pass --no-flops') from err
    if not flops:
        model = build_segmentor(str(cfg_path))
        if getattr(model, 'auxiliary_head', None) is not None:
            model.auxiliary_head = None
        return sum(p.numel() for p in model.parameters()), None
    res = segmentor_complexity(str(cfg_path), shape=tuple(shape))
    return int(res['params']), int(res['flops'])


def fmt_number(value: float) -> str:
    """Two decimals, or three significant digits below 1 (tiny test
    models would all read 0.01 otherwise)."""
    return f'{value:.2f}' if abs(value) >= 1 else f'{value:.3g}'


def _link(path: Path) -> str:
    return f'[{path.stem}]({path.as_posix()})'


def _marked(cell: str, cell_notes: Sequence[str], notes: List[str]) -> str:
    """``cell`` with the numbers of ``cell_notes`` (added to ``notes``, the
    table's, when new)."""
    marks = []
    for note in cell_notes:
        if note not in notes:
            notes.append(note)
        marks.append(f'({notes.index(note) + 1})')
    return ' '.join([cell] + marks)


def _miou(result: EvalResult, notes: List[str]) -> str:
    """The result's mIoU cell, with the numbers of its notes."""
    miou = result.data['metrics']['mIoU']
    cell = '-' if miou is None else f'{float(miou):.2f}'
    return _marked(cell, result.notes(), notes)


def schedule_cell(info: Dict, result: EvalResult, notes: List[str]) -> str:
    """The Lr schd cell: how far the tested checkpoint was trained, against
    the config's schedule (``info`` from :func:`describe_config`)."""
    if info['max_iters'] is not None:
        planned, reached, unit = info['max_iters'], result.checkpoint_iter, ''
    elif info['max_epochs'] is not None:
        planned, reached = info['max_epochs'], result.checkpoint_epoch
        unit = ' epochs'
    else:  # a config without a schedule: what the checkpoint says
        reached = result.checkpoint_iter
        return '-' if reached is None else str(reached)
    if reached is None:
        return _marked(f'{planned}{unit}', [UNKNOWN_PROGRESS_NOTE], notes)
    if reached == planned:
        return f'{planned}{unit}'
    return f'{reached}{unit} (of {planned})'


def build_rows(results: Sequence[EvalResult],
               flops: bool = True,
               flops_shape: Optional[Tuple[int, int]] = None,
               notes: Optional[List[str]] = None,
               merge: bool = False) -> List[Dict[str, str]]:
    """One table row (dict of formatted cells) per result, its mIoU under
    ``miou`` or, tested with ``--tta``, ``miou_ms``. With ``merge``, a
    single-scale and a ``--tta`` result of the same work dir, config,
    checkpoint and dataset share a row. The notes the mIoU cells refer to
    are appended to ``notes``."""
    notes = [] if notes is None else notes
    rows, row_of = [], {}
    cache: Dict[Tuple[str, Tuple[int, int], bool], Tuple[int, Optional[int]]]
    cache = {}
    for r in results:
        cfg_path = resolve_config_path(r)
        try:
            cfg = Config.fromfile(str(cfg_path))
        except Exception as err:
            raise ResultsError(f'{r.path}: cannot load config {cfg_path} '
                               f'({type(err).__name__}: {err})') from err
        info = describe_config(cfg)
        shape = flops_shape or info['crop_size'] or (512, 512)
        if isinstance(shape, int):
            shape = (shape, shape)
        shape = tuple(int(s) for s in shape)
        key = (str(cfg_path.resolve()), shape, flops)
        if key not in cache:
            cache[key] = complexity(cfg_path, shape, flops)
        params, n_flops = cache[key]
        column = 'miou_ms' if r.tta else 'miou'
        dataset = str(r.data.get('dataset', '-'))
        # one model: the same work dir, config, checkpoint and dataset
        same = (str(r.work_dir), key[0], r.data.get('checkpoint'), dataset)
        row = row_of.get(same) if merge else None
        if row is None or row[column] != '-':
            row = dict(
                method=info['method'],
                backbone=info['backbone'],
                crop=info['crop'],
                schedule=schedule_cell(info, r, notes),
                params=fmt_number(params / 1e6),
                gflops='-' if n_flops is None else fmt_number(n_flops / 1e9),
                miou='-',
                miou_ms='-',
                config=_link(Path(r.data['config'])),
                dataset=dataset,
            )
            rows.append(row)
            row_of[same] = row
        row[column] = _miou(r, notes)
    return rows


def markdown_table(
    rows: Sequence[Dict[str, str]],
    flops_shape: Optional[Tuple[int, int]] = None,
    notes: Sequence[str] = ()
) -> str:
    """Rows as a markdown table, ``notes`` numbered under it; a Dataset
    column is added when the rows come from more than one dataset, an
    mIoU(ms+flip) column when a row has a ``--tta`` result."""
    gflops_head = 'GFLOPs' if flops_shape is None else \
        f'GFLOPs ({_fmt_size(flops_shape)})'
    columns = [('Method', 'method'), ('Backbone', 'backbone'),
               ('Crop Size', 'crop'), ('Lr schd', 'schedule'),
               ('Params (M)', 'params'), (gflops_head, 'gflops'),
               ('mIoU', 'miou'), ('config', 'config')]
    if any(r.get('miou_ms', '-') != '-' for r in rows):
        columns.insert(-1, ('mIoU(ms+flip)', 'miou_ms'))
    if len({r['dataset'] for r in rows}) > 1:
        columns.insert(2, ('Dataset', 'dataset'))
    lines = [
        '| ' + ' | '.join(c for c, _ in columns) + ' |',
        '| ' + ' | '.join('---' for _ in columns) + ' |',
    ]
    for r in rows:
        lines.append('| ' + ' | '.join(
            str(r[k]).replace('|', '\\|') for _, k in columns) + ' |')
    if notes:
        lines.append('')
        lines += [f'- ({i}) {note}' for i, note in enumerate(notes, 1)]
    return '\n'.join(lines) + '\n'


def collect_results(work_dirs: Sequence[Union[str, Path]],
                    flops: bool = True,
                    all_results: bool = False,
                    flops_shape: Optional[Tuple[int, int]] = None,
                    notes: Optional[Callable[[str], None]] = None) -> str:
    """The markdown table for the results in ``work_dirs``.

    GFLOPs are counted for one image of the config's crop size unless
    ``flops_shape`` is given (then the column header names the shape).
    """
    if not work_dirs:
        raise ResultsError('no work dirs given')
    results = gather(work_dirs, all_results=all_results, notes=notes)
    marks: List[str] = []
    rows = build_rows(
        results,
        flops=flops,
        flops_shape=flops_shape,
        notes=marks,
        merge=not all_results)
    return markdown_table(rows, flops_shape, marks)
