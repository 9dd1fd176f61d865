"""Segment image files with a trained (or downloaded) segmentor.

For every input image this writes

* ``OUT_DIR/labels/<name>.png``: the predicted class index of every pixel,
  single channel, at the image's own size (uint8; uint16 for models with
  more than 255 classes);
* ``OUT_DIR/overlays/<name>.png``: the prediction drawn over the image in
  the dataset's palette (mmseg's ``SegLocalVisualizer``).

Both are written only when both succeeded. The work is done by
``mmseg_vvt.apis.VVTSegInferencer``, a subclass of mmseg's
``MMSegInferencer``.

Examples::

    python tools/inference.py CONFIG CHECKPOINT demo.jpg --out-dir out
    python tools/inference.py CONFIG CHECKPOINT photos/ 'more/**/*.png' \\
        --out-dir out --batch-size 4 --mode slide --crop-size 512 512

Exit status: 0 when every image was written, 1 when some failed (each is
reported by path as it happens, and again in a summary at the end), 2 for
bad arguments or refused work (nothing written): a config that cannot be
read, an unusable --device or --out-dir, missing inputs, outputs that exist,
a checkpoint that is unsafe or does not fit the model (unless
--allow-partial-checkpoint).
"""
import argparse
import pickle
import sys
from pathlib import Path

import torch

from mmseg_vvt.utils.cli import (check_device, check_out_dir, load_config,
                                 positive_int)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Predict label maps and overlays for images with an '
        'mmseg segmentor (VVT or any other).',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Inputs are converted to 3-channel BGR uint8 as mmseg\'s '
        'LoadImageFromFile would give: gray is replicated to 3 channels, '
        'alpha is dropped, 16-bit is scaled linearly (v/257), float must be '
        'in [0, 1]. See docs/inference.md.')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        'inputs',
        nargs='+',
        metavar='INPUT',
        help='image file, folder (its image files, not recursive) or glob '
        "pattern (quote it; '**' recurses)")
    parser.add_argument(
        '--out-dir', required=True, help='folder for labels/ and overlays/')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=1,
        help='images per forward pass (default 1)')
    parser.add_argument(
        '--device',
        default=None,
        help="'cpu', 'cuda' or 'cuda:N' (default: cuda if available)")
    parser.add_argument(
        '--mode',
        choices=['whole', 'slide'],
        default=None,
        help="'whole': the whole (resized) image in one pass; 'slide': "
        'overlapping windows. Default: the config\'s model.test_cfg')
    parser.add_argument(
        '--crop-size',
        type=positive_int,
        nargs='+',
        default=None,
        metavar='N',
        help='slide window H [W] (default: from the config)')
    parser.add_argument(
        '--stride',
        type=positive_int,
        nargs='+',
        default=None,
        metavar='N',
        help='slide stride H [W] (default: 2/3 of window)')
    parser.add_argument(
        '--no-resize',
        action='store_true',
        help='drop the Resize steps of the test pipeline and run at each '
        "image's native resolution")
    parser.add_argument(
        '--opacity',
        type=float,
        default=None,
        help='overlay opacity in (0, 1] (default 0.5)')
    parser.add_argument(
        '--with-labels',
        action='store_true',
        help='write class names onto the overlays')
    parser.add_argument(
        '--no-overlay', action='store_true', help='write only the label PNGs')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace existing output files')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='load a checkpoint that does not fit the model (missing, '
        'unexpected or mis-shaped keys; logged) instead of refusing it')
    args = parser.parse_args(argv)
    if args.no_overlay and args.with_labels:
        # the class names are drawn on the overlay: without one they would
        # be dropped silently
        parser.error('--with-labels writes class names onto the overlays; '
                     'it cannot be combined with --no-overlay')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.no_overlay and args.opacity is not None:
        parser.error('--opacity sets the overlays; it cannot be combined '
                     'with --no-overlay')
    if args.opacity is None:
        args.opacity = 0.5
    if not 0 < args.opacity <= 1:
        parser.error(f'--opacity must be in (0, 1], got {args.opacity}')
    for name in ('crop_size', 'stride'):
        val = getattr(args, name)
        if val is not None and len(val) not in (1, 2):
            parser.error(f'--{name.replace("_", "-")} takes 1 or 2 integers')
        if val is not None and args.mode == 'whole':
            parser.error(f'--{name.replace("_", "-")} only applies to '
                         '--mode slide')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg_vvt.apis import VVTSegInferencer, expand_inputs, plan_outputs

    # all checks that can refuse the job run before the model is built
    # (BadInputError, from the checks of mmseg_vvt.utils.cli, is a
    # ValueError)
    try:
        device = check_device(
            args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        cfg = load_config(args.config)
        if Path(args.checkpoint).is_dir():
            raise FileNotFoundError(
                f'checkpoint {args.checkpoint} is a folder; expected a '
                'checkpoint file')
        if not Path(args.checkpoint).is_file():
            raise FileNotFoundError(
                f'checkpoint {args.checkpoint} does not exist')
        images, ignored = expand_inputs(args.inputs)
        check_out_dir(args.out_dir, '--out-dir')
        plans = plan_outputs(
            images,
            args.out_dir,
            overlay=not args.no_overlay,
            overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    for path in ignored:
        print(
            f'note: ignoring {path} (not an image file suffix)',
            file=sys.stderr)

    try:
        inferencer = VVTSegInferencer(
            cfg,
            args.checkpoint,
            device=device,
            mode=args.mode,
            crop_size=args.crop_size,
            stride=args.stride,
            no_resize=args.no_resize,
            allow_partial=args.allow_partial_checkpoint)
    except (ValueError, pickle.UnpicklingError) as err:
        # bad mode/window settings, a refused (unsafe, damaged or misfit)
        # checkpoint
        print(f'error: {err}', file=sys.stderr)
        return 2
    if inferencer.partial_load:
        # the log has named what did not fit; stderr carries the warning
        print(
            'warning: partial load (--allow-partial-checkpoint): the '
            'weights that did not fit (logged above) keep their initial '
            'values',
            file=sys.stderr)
    tc = inferencer.model.test_cfg
    mode_desc = tc.get('mode', 'whole')
    if mode_desc == 'slide':
        mode_desc += f' (window {tuple(tc.crop_size)}, stride ' \
                     f'{tuple(tc.stride)})'
    print(f'{len(plans)} image(s), device {device}, {mode_desc} inference, '
          f'classes/palette from {inferencer.meta_source}')

    summary = inferencer.run(
        plans,
        batch_size=args.batch_size,
        opacity=args.opacity,
        with_labels=args.with_labels)
    print(f'wrote {len(summary.written)} of {len(plans)} image(s) to '
          f'{args.out_dir}')
    if summary.failed:
        print(f'{len(summary.failed)} image(s) failed:', file=sys.stderr)
        for path, reason in summary.failed:
            print(f'  {path}: {reason}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
