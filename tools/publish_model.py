"""Prepare a trained checkpoint for release (mmseg's
``tools/misc/publish_model.py``, read safely).

    python tools/publish_model.py work_dirs/fpn_vvt-s/iter_80000.pth \
        release/fpn_vvt-s_8xb2-80k_ade20k-512x512.pth

writes ``release/fpn_vvt-s_8xb2-80k_ade20k-512x512-SHA8.pth``, SHA8 being the
first 8 hex digits of the file's SHA-256 (the model zoo's naming). mmseg's
tool stops at the runner's own checkpoints under torch >= 2.6: it does not
import mmseg_vvt, so ``weights_only`` refuses mmengine's ``HistoryBuffer``.
This one reads through mmseg_vvt's allow-list and keeps ``state_dict`` (the
weights; EMA's, if the run saved them there) and ``meta`` (``dataset_meta``
names the classes for inference). The training state (optimizer, parameter
schedulers, message hub, ...) is dropped and listed: the published file
holds only tensors and plain values, which torch's ``weights_only`` loads
without the allow-list.
"""
import argparse
import hashlib
import io
import os.path as osp
import sys

import torch

from mmseg_vvt.engine import CheckpointError, atomic_write, safe_torch_load
from mmseg_vvt.utils.cli import BadInputError, check_out_file

#: what a published checkpoint keeps
KEPT = ('meta', 'state_dict')


def parse_args(argv=None):
    # the docstring's first paragraph (its first line ends mid-sentence)
    p = argparse.ArgumentParser(
        description=' '.join(__doc__.split('\n\n')[0].split()))
    p.add_argument('in_file', help='a checkpoint the runner saved')
    p.add_argument(
        'out_file',
        help='output path; the hash is inserted before .pth: '
        'OUT-SHA8.pth')
    p.add_argument(
        '--force',
        action='store_true',
        help='replace the output file if it exists')
    args = p.parse_args(argv)
    if not args.out_file.endswith('.pth'):
        p.error(f'out_file {args.out_file} must end in .pth')
    if osp.isdir(args.in_file):
        p.error(f'in_file {args.in_file} is a folder; expected a checkpoint '
                'file')
    return args


def published_name(out_file: str, data: bytes) -> str:
    """``out_file`` with the first 8 hex digits of ``data``'s SHA-256
    before its ``.pth``."""
    sha = hashlib.sha256(data).hexdigest()
    return f'{out_file[:-len(".pth")]}-{sha[:8]}.pth'


#: what torch's ``weights_only`` loads without an allow-list
PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _not_plain(obj, where: str):
    """The first place in ``obj`` (dicts, lists, tuples) holding something
    not :data:`PLAIN`, with its type; None if all is plain."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None if isinstance(obj, PLAIN) else (
            f'{where} ({type(obj).__module__}.{type(obj).__qualname__})')
    for key, value in items:
        found = _not_plain(value, f'{where}[{key!r}]')
        if found:
            return found
    return None


def publish(checkpoint, source: str):
    """The release part of ``checkpoint`` and the names of the keys
    dropped.

    Args:
        checkpoint: A loaded runner checkpoint.
        source (str): Its name, for messages.

    Raises:
        CheckpointError: It holds no ``state_dict``, or keeps something a
            plain ``weights_only`` load refuses (naming where).
    """
    if not isinstance(checkpoint, dict) or not isinstance(
            checkpoint.get('state_dict'), dict):
        what = (f'keys {sorted(map(str, checkpoint))}' if isinstance(
            checkpoint, dict) else type(checkpoint).__name__)
        raise CheckpointError(
            f'{source}: expected a checkpoint the runner saved (a dict with '
            f'state_dict), got {what}')
    kept = {k: checkpoint[k] for k in KEPT if k in checkpoint}
    found = _not_plain(kept, 'checkpoint')
    if found:
        raise CheckpointError(
            f'{source}: {found} is not a tensor or a plain value, which '
            "torch's weights_only loads without mmseg_vvt's allow-list; "
            'remove it from the checkpoint first')
    return kept, sorted(str(k) for k in checkpoint if k not in KEPT)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.in_file):
        sys.exit(f'error: checkpoint not found: {args.in_file}')
    try:
        kept, dropped = publish(
            safe_torch_load(args.in_file, map_location='cpu'), args.in_file)
    except CheckpointError as err:
        sys.exit(f'error: {err}')
    buffer = io.BytesIO()
    torch.save(kept, buffer)
    data = buffer.getvalue()
    final = published_name(args.out_file, data)
    try:
        check_out_file(
            final,
            flag='output',
            overwrite=args.force,
            overwrite_flag='--force')
    except BadInputError as err:
        sys.exit(f'error: {err}')
    # a killed run leaves no truncated file under the published name
    atomic_write(data, final)
    print(f'{args.in_file} -> {final} ({len(data) / 2**20:.1f} MiB; kept '
          f'{", ".join(kept)}; dropped {", ".join(dropped) or "nothing"})')
    return final


if __name__ == '__main__':
    main()
