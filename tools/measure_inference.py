"""Time and peak memory of one inference, whole-image or sliding-window (CPU).

Runs ``mmseg.apis.inference_model`` on a random H x W image at its native
resolution after a small warm-up call; peak memory is the process's
``VmHWM`` from a fresh mark. Prints one JSON line. Run each mode in its own
process::

    python tools/measure_inference.py CONFIG --mode whole --shape 2048 2048
    python tools/measure_inference.py CONFIG --mode slide --shape 2048 2048 \
        --crop-size 512 512 --stride 341 341
"""
import argparse
import json
import os.path as osp
import pickle

from analysis_tools.inference_cost import measure_inference

from mmseg_vvt.apis.inference import set_test_mode
from mmseg_vvt.engine import CheckpointError
from mmseg_vvt.utils.cli import BadInputError, load_config, positive_int


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--mode', choices=['whole', 'slide'], required=True)
    parser.add_argument(
        '--shape',
        type=positive_int,
        nargs=2,
        default=(2048, 2048),
        metavar=('H', 'W'))
    parser.add_argument(
        '--crop-size', type=positive_int, nargs=2, default=None)
    parser.add_argument('--stride', type=positive_int, nargs=2, default=None)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--no-warmup', action='store_true')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='load a checkpoint that does not fit the model (missing, '
        'unexpected or mis-shaped keys; logged) instead of refusing it')
    args = parser.parse_args(argv)
    # one error line, before the model is built: the config, the window
    # settings for the mode, the checkpoint's path
    try:
        set_test_mode(
            load_config(args.config), args.mode, args.crop_size, args.stride)
    except (BadInputError, ValueError) as err:
        parser.error(str(err))
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        parser.error(f'--checkpoint {args.checkpoint}: ' + (
            'is a folder' if osp.isdir(args.checkpoint) else 'does not exist'))
    try:
        res = measure_inference(
            args.config,
            args.mode,
            args.shape,
            args.crop_size,
            args.stride,
            args.checkpoint,
            warmup=not args.no_warmup,
            allow_partial=args.allow_partial_checkpoint)
    except (CheckpointError, pickle.UnpicklingError) as err:
        # unsafe, damaged or another model's checkpoint: refused, in one line
        parser.exit(2, f'error: {err}\n')
    print(json.dumps(res))
    return res


if __name__ == '__main__':
    main()
