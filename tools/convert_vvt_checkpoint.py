"""Convert an authors' ImageNet VVT checkpoint into an mmseg backbone checkpoint.

    python tools/convert_vvt_checkpoint.py vvt_small.pth checkpoints/vvt_small_backbone.pth

The output holds ``state_dict`` (backbone keys only, classifier dropped) and
``meta`` (arch, source); point a config's
``backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)`` at it.
"""
import argparse

import os
import os.path as osp
import sys

import torch

from mmseg_vvt.models.utils import vvt_convert


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('src', help='checkpoint as published by the authors')
    p.add_argument('dst', help='where to write the backbone checkpoint')
    p.add_argument('--force', action='store_true',
                   help='overwrite dst if it exists')
    return p.parse_args(argv)


def load_published(path):
    """``torch.load`` with ``weights_only``; the authors' training script
    may also pickle its ``argparse.Namespace``, which is allowed too."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location='cpu', weights_only=True)


def main(argv=None):
    args = parse_args(argv)
    if osp.exists(args.dst) and not args.force:
        sys.exit(f'{args.dst} exists; pass --force to overwrite it')
    state_dict, arch = vvt_convert(load_published(args.src), source=args.src)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(
        dict(state_dict=state_dict,
             meta=dict(arch=arch, source=osp.basename(args.src),
                       converted_by='mmseg_vvt')), args.dst)
    n = sum(v.numel() for v in state_dict.values())
    print(f'VVT-{arch}: {len(state_dict)} tensors, {n / 1e6:.2f}M parameters '
          f'-> {args.dst}')


if __name__ == '__main__':
    main()
