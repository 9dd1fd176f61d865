"""Checkpoints that inference must refuse: load_segmentor and
tools/inference.py on damaged files and on checkpoints of another model."""
import pytest
import torch
from ckpt_helpers import write_truncated
from tool_modules import load_tool

from mmseg_vvt.apis import load_segmentor
from mmseg_vvt.engine import CheckpointMismatchError, CorruptCheckpointError


@pytest.fixture
def saved(tiny_config, tmp_path):
    """(config, checkpoint of the config's model, the model)."""
    torch.manual_seed(0)
    model, _ = load_segmentor(tiny_config, None)
    path = tmp_path / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return tiny_config, str(path), model


def test_fitting_checkpoint_loads(saved):
    cfg, path, model = saved
    loaded, _ = load_segmentor(cfg, path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_checkpoint_of_another_model_is_refused_unless_asked(saved, tmp_path):
    cfg, path, model = saved
    ckpt = torch.load(path, weights_only=True)
    del ckpt['state_dict']['decode_head.conv_seg.weight']
    ckpt['state_dict']['decode_head.extra'] = torch.zeros(1)
    other = str(tmp_path / 'other.pth')
    torch.save(ckpt, other)
    with pytest.raises(CheckpointMismatchError) as info:
        load_segmentor(cfg, other)
    msg = str(info.value)
    assert other in msg and 'decode_head.conv_seg.weight' in msg
    assert '1 unexpected keys (decode_head.extra)' in msg
    loaded, _ = load_segmentor(cfg, other, allow_partial=True)
    assert torch.equal(loaded.state_dict()['decode_head.conv_seg.bias'],
                       model.state_dict()['decode_head.conv_seg.bias'])


def test_damaged_checkpoint_is_one_line(saved, tmp_path, capsys):
    cfg, path, _ = saved
    half = write_truncated(path, tmp_path / 'half.pth')
    with pytest.raises(CorruptCheckpointError, match='truncated'):
        load_segmentor(cfg, half)
    # the tool prints it as one line and exits non-zero
    image = tmp_path / 'img.png'
    import cv2
    import numpy as np
    cv2.imwrite(str(image), np.zeros((20, 20, 3), np.uint8))
    code = load_tool('inference').main(
        [str(cfg), half,
         str(image), '--out-dir',
         str(tmp_path / 'out')])
    assert code != 0
    err = capsys.readouterr().err
    (line, ) = [ln for ln in err.splitlines() if ln.startswith('error:')]
    assert half in line and 'bytes' in line and 'truncated' in line
    assert 'Traceback' not in err


def test_inferencer_says_whether_a_load_was_partial(saved, tmp_path):
    """``partial_load``: None for a checkpoint that fits (asked for a
    partial load or not), what did not fit after a partial load."""
    from mmseg_vvt.apis import VVTSegInferencer
    cfg, path, _ = saved
    assert VVTSegInferencer(cfg, path).partial_load is None
    assert VVTSegInferencer(cfg, path, allow_partial=True).partial_load \
        is None
    ckpt = torch.load(path, weights_only=True)
    ckpt['state_dict']['decode_head.extra'] = torch.zeros(1)
    other = str(tmp_path / 'other.pth')
    torch.save(ckpt, other)
    misfit = VVTSegInferencer(cfg, other, allow_partial=True).partial_load
    assert other in misfit and '1 unexpected keys (decode_head.extra)' in \
        misfit
    assert '--allow-partial-checkpoint' not in misfit  # it was asked for
    # the common fine-tuning case: only the classifiers' shapes differ,
    # whose refusal words its advice otherwise
    ckpt = torch.load(path, weights_only=True)
    for key in ('decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'):
        ckpt['state_dict'][key] = torch.cat([ckpt['state_dict'][key]] * 2)
    classes = str(tmp_path / 'classes.pth')
    torch.save(ckpt, classes)
    with pytest.raises(CheckpointMismatchError, match='classifiers'):
        VVTSegInferencer(cfg, classes)
    misfit = VVTSegInferencer(cfg, classes, allow_partial=True).partial_load
    assert classes in misfit and '2 shapes differ' in misfit
    assert 'partial' not in misfit and 'classifiers' not in misfit
