"""Turn the authors' ImageNet VVT checkpoints into mmseg backbone
checkpoints."""
import re
from typing import Dict, Tuple

import torch

from ..backbones.vvt import VVT, extract_backbone_state_dict

_BLOCK = re.compile(r'^block(\d)\.(\d+)\.')


def detect_vvt_arch(state_dict: Dict[str, torch.Tensor]) -> str:
    """Name the preset (tiny/small/medium/large) a backbone state dict is of.

    Depths come from the ``block{s}.{j}`` indices, widths from
    ``patch_embed{s}.proj.weight``, MLP ratios from ``fc1``, feature
    reduction from ``q_proj`` (heads leave no trace in shapes; the preset's
    are used).

    Raises:
        ValueError: if the keys match no preset.
    """
    depths = [0, 0, 0, 0]
    for key in state_dict:
        m = _BLOCK.match(key)
        if m and 1 <= int(m.group(1)) <= 4:
            s, j = int(m.group(1)) - 1, int(m.group(2))
            depths[s] = max(depths[s], j + 1)
    try:
        dims = [
            state_dict[f'patch_embed{s}.proj.weight'].shape[0]
            for s in range(1, 5)
        ]
        mlp = [
            state_dict[f'block{s}.0.mlp.fc1.weight'].shape[0] / dims[s - 1]
            for s in range(1, 5)
        ]
        fr = [
            dims[s - 1] / state_dict[f'block{s}.0.attn.q_proj.weight'].shape[0]
            for s in range(1, 5)
        ]
    except KeyError as e:
        raise ValueError(f'not a VVT backbone state dict: no key {e}') from e
    found = dict(depths=depths, embed_dims=dims, mlp_ratios=mlp, fr_ratios=fr)
    for name in ('tiny', 'small', 'medium', 'large'):
        preset = VVT.arch_zoo[name]
        if all(list(preset[k]) == list(v) for k, v in found.items()):
            return name
    raise ValueError(f'the checkpoint matches no VVT preset: {found}')


def vvt_convert(checkpoint, source='checkpoint') -> Tuple[dict, str]:
    """Backbone state dict and preset name of an authors' checkpoint.

    The published keys already are the backbone's module names; conversion
    selects the weights (plain dict, ``model`` or ``state_dict``), drops the
    classifier ``head.*`` and checks every key and shape against the preset.

    Raises:
        ValueError: on a missing, unexpected or mis-shaped key.
    """
    state_dict = extract_backbone_state_dict(checkpoint, source=source)
    try:
        arch = detect_vvt_arch(state_dict)
    except ValueError as err:
        hint = ''
        if any(k.startswith('backbone.') for k in state_dict):
            hint = ("; its keys start with 'backbone.', as an mmseg "
                    'segmentor checkpoint\'s do: that needs no conversion '
                    '(load_from, or the backbone\'s init_cfg=dict('
                    "type='Pretrained', checkpoint=..., prefix='backbone.'))")
        raise ValueError(f'{source}: {err}{hint}') from err
    own = VVT(arch=arch).state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise ValueError(f'{source}: not a complete VVT-{arch} checkpoint; '
                         f'missing keys {missing}, unexpected keys '
                         f'{unexpected}')
    for k, v in own.items():
        if tuple(v.shape) != tuple(state_dict[k].shape):
            raise ValueError(
                f'{source}: shape mismatch for {k!r}: checkpoint has '
                f'{tuple(state_dict[k].shape)}, VVT-{arch} expects '
                f'{tuple(v.shape)}')
    # a damaged download or a diverged run: converted, it would train from
    # NaN weights without a word
    bad = [
        k for k in own if state_dict[k].is_floating_point()
        and not torch.isfinite(state_dict[k]).all()
    ]
    if bad:
        raise ValueError(f'{source}: {len(bad)} tensor(s) hold NaN or inf '
                         f'values ({", ".join(bad[:3])}'
                         f'{", ..." if len(bad) > 3 else ""}); not converted')
    return {k: state_dict[k] for k in own}, arch
