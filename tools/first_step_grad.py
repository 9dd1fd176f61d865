#!/usr/bin/env python
"""The gradient of a config's first training step, and where it comes from.

Builds the config's model as training starts it (``init_weights``; no
pretrained file needed with ``--scratch``), takes the first batch of its
``train_dataloader`` (seeded as the runner seeds it), runs the loss and
its backward once and prints:

* the total gradient norm (what ``clip_grad`` sees) and the parameters
  with the largest gradients;
* the share of the batch's input pixels that the data preprocessor padded
  (they hold exactly ``pad_val`` after normalisation);
* for every LayerNorm of the backbone: how many of its input tokens have
  (nearly) zero variance, and how much its backward amplifies the gradient
  on those tokens (``|dL/dx| / |dL/dy|``; ~``1/sqrt(eps)`` for a constant
  vector, ~1 for a normal one).

Usage::

    python tools/first_step_grad.py configs/vvt_fpn_demo.py --scratch
    python tools/first_step_grad.py configs/vvt_fpn_demo.py --scratch \\
        --cfg-options model.data_preprocessor.pad_val=0

See docs/training.md ("Training without the ImageNet checkpoints").
"""
import argparse
import json
import sys

import torch
import torch.nn as nn
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner import Runner, set_random_seed
from mmseg.registry import MODELS

import mmseg_vvt  # noqa: F401  (registers VVT and the checked transforms)
from mmseg_vvt.datasets.checks import (DatasetNotFoundError, EmptyDatasetError,
                                       check_dataloader_datasets)
from mmseg_vvt.engine import CheckpointError
from mmseg_vvt.engine.runtime import replace_sync_bn
from mmseg_vvt.utils.cli import (BadInputError, CfgOptionsAction, load_config,
                                 nonnegative_int, positive_int)


def first_batch(cfg, batch_size=None, seed=0):
    """The first batch of ``cfg.train_dataloader`` (in this process)."""
    loader_cfg = cfg.train_dataloader.copy()
    loader_cfg.update(num_workers=0, persistent_workers=False)
    if batch_size is not None:
        loader_cfg.batch_size = batch_size
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    return next(iter(loader))


class _NormProbe:
    """Forward/backward hooks on one LayerNorm: its degenerate tokens and
    the backward's amplification on them."""

    def __init__(self, name, module):
        self.name = name
        self.eps = module.eps
        self.mask = None
        self.tokens = 0
        self.degenerate = 0
        self.gain = None
        self.handles = [
            module.register_forward_hook(self._forward),
            module.register_full_backward_hook(self._backward)
        ]

    def _forward(self, module, inputs, output):
        x = inputs[0].detach()
        var = x.float().var(dim=-1, unbiased=False)
        # variance far below eps: normalising divides by ~sqrt(eps)
        self.mask = var < 1e-2 * self.eps
        self.tokens = self.mask.numel()
        self.degenerate = int(self.mask.sum())

    def _backward(self, module, grad_input, grad_output):
        if self.mask is None or not self.degenerate or grad_input[0] is None:
            return
        gin = grad_input[0][self.mask].norm()
        gout = grad_output[0][self.mask].norm()
        if gout > 0:
            self.gain = float(gin / gout)

    def remove(self):
        for h in self.handles:
            h.remove()


def analyse(cfg, batch_size=None, seed=0, top=8):
    """Run one loss + backward of ``cfg`` on its first batch.

    Returns a dict: ``grad_norm`` (total L2 norm over all parameters),
    ``top`` (``[name, norm]`` of the largest), ``padded_fraction`` (share
    of input pixels the preprocessor padded), ``norms`` (per backbone
    LayerNorm: name, tokens, degenerate tokens, backward gain on them).
    """
    scope = cfg.get('default_scope', 'mmseg')
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        set_random_seed(seed)
        batch = first_batch(cfg, batch_size, seed)
        model_cfg = cfg.model.copy()
        replace_sync_bn(model_cfg)
        model = MODELS.build(model_cfg)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(batch, True)
    inputs = data['inputs']
    sizes = [s.img_shape for s in data['data_samples']]
    real = sum(h * w for h, w in sizes)
    padded = 1 - real / (inputs.shape[0] * inputs.shape[2] * inputs.shape[3])
    probes = [
        _NormProbe(name, m) for name, m in model.backbone.named_modules()
        if isinstance(m, nn.LayerNorm)
    ]
    try:
        losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
    finally:
        for p in probes:
            p.remove()
    norms = {
        n: p.grad.detach().float().norm()
        for n, p in model.named_parameters() if p.grad is not None
    }
    total = torch.stack(list(norms.values())).norm()
    ranked = sorted(norms.items(), key=lambda kv: -float(kv[1]))[:top]
    return dict(
        loss=float(loss.detach()),
        grad_norm=float(total),
        top=[[n, float(v)] for n, v in ranked],
        batch_size=int(inputs.shape[0]),
        input_size=list(inputs.shape[2:]),
        padded_fraction=float(padded),
        norms=[
            dict(
                name=p.name,
                tokens=p.tokens,
                degenerate=p.degenerate,
                gain=p.gain) for p in probes
        ])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Gradient norm of a config's first training step and "
        'where it comes from (LayerNorms fed constant tokens).')
    parser.add_argument('config')
    parser.add_argument(
        '--batch-size',
        type=positive_int,
        default=None,
        help='override train_dataloader.batch_size')
    parser.add_argument(
        '--seed',
        type=nonnegative_int,
        default=None,
        help="default: the config's randomness.seed, or 0")
    parser.add_argument(
        '--scratch',
        action='store_true',
        help='random initialisation (init_cfg=None): no '
        'pretrained file needed')
    parser.add_argument(
        '--json', action='store_true', help='print the result as JSON')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, as in train.py')
    args = parser.parse_args(argv)
    try:  # one error line for a config that cannot be used
        args.cfg = load_config(
            args.config,
            args.cfg_options,
            require=('model', 'train_dataloader'),
            data=('train_dataloader', ))
    except BadInputError as err:
        parser.error(str(err))
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = args.cfg
    if args.scratch:
        cfg.model.backbone.init_cfg = None
        cfg.model.pretrained = None
    seed = args.seed
    if seed is None:
        seed = (cfg.get('randomness') or {}).get('seed') or 0
    torch.manual_seed(seed)
    # the training data first, in one line naming the path
    try:
        check_dataloader_datasets(cfg, ['train_dataloader'])
    except (DatasetNotFoundError, EmptyDatasetError) as err:
        raise SystemExit(f'error: {err}')
    try:
        out = analyse(cfg, args.batch_size, seed)
    except (CheckpointError, FileNotFoundError) as err:
        # the config's pretrained weights: missing, unsafe, misfit
        hint = '' if args.scratch else (' (--scratch starts from a random '
                                        'initialisation, no weights needed)')
        raise SystemExit(f'error: {err}{hint}')
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"batch {out['batch_size']} at {out['input_size']}: "
          f"{100 * out['padded_fraction']:.1f}% of the input pixels padded")
    print(f"loss {out['loss']:.4f}, gradient norm {out['grad_norm']:.4g}")
    for name, value in out['top']:
        print(f'  {value:12.4g}  {name}')
    print('backbone LayerNorms with (near) zero-variance input tokens:')
    for n in out['norms']:
        if n['degenerate']:
            gain = 'n/a' if n['gain'] is None else f"{n['gain']:.4g}"
            print(f"  {n['name']}: {n['degenerate']}/{n['tokens']} tokens, "
                  f'backward gain on them {gain}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
