"""Convert an authors' ImageNet VVT checkpoint into an mmseg backbone
checkpoint.

    python tools/convert_vvt_checkpoint.py vvt_small.pth \
        checkpoints/vvt_small_backbone.pth

The output holds ``state_dict`` (backbone keys only, classifier dropped) and
``meta`` (arch, source); point a config's
``backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)`` at it.
"""
import argparse
import io
import os.path as osp
import sys

import torch

from mmseg_vvt.engine import CheckpointError, atomic_write, safe_torch_load
from mmseg_vvt.models.utils import vvt_convert
from mmseg_vvt.utils.cli import BadInputError, check_out_file


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('src', help='checkpoint as published by the authors')
    p.add_argument('dst', help='where to write the backbone checkpoint')
    p.add_argument(
        '--force', action='store_true', help='overwrite dst if it exists')
    args = p.parse_args(argv)
    # before the source is read: a dst that cannot be written
    if args.dst.endswith(('/', osp.sep)):
        p.error(f'dst {args.dst} names a folder; give the file to write')
    if osp.isdir(args.src):
        p.error(f'src {args.src} is a folder; expected a checkpoint file')
    if osp.exists(args.dst) and osp.exists(args.src) and osp.samefile(
            args.src, args.dst):
        # --force would replace the published file with the conversion
        p.error(f'dst {args.dst} is the source file; give another path')
    try:
        check_out_file(
            args.dst,
            flag='dst',
            overwrite=args.force,
            overwrite_flag='--force')
    except BadInputError as err:
        p.error(str(err))
    return args


def load_published(path):
    """The checkpoint through mmseg_vvt's one ``weights_only`` loader and
    allow-list (the same as ``init_cfg=dict(type='Pretrained')``; it admits
    the ``argparse.Namespace`` the authors' training script saves)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    return safe_torch_load(path, map_location='cpu')


def main(argv=None):
    args = parse_args(argv)
    try:
        state_dict, arch = vvt_convert(
            load_published(args.src), source=args.src)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        # one line naming the file, not a traceback
        sys.exit(f'error: {err}')
    buffer = io.BytesIO()
    torch.save(
        dict(
            state_dict=state_dict,
            meta=dict(
                arch=arch,
                source=osp.basename(args.src),
                converted_by='mmseg_vvt')), buffer)
    # a killed conversion leaves no truncated file under the output name
    atomic_write(buffer.getvalue(), args.dst)
    n = sum(v.numel() for v in state_dict.values())
    print(f'VVT-{arch}: {len(state_dict)} tensors, {n / 1e6:.2f}M parameters '
          f'-> {args.dst}')


if __name__ == '__main__':
    main()
