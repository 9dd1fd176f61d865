"""Loading weights for inference (mmseg_vvt.apis.load_weights through
VVTSegInferencer / load_segmentor)."""
import pytest
import torch

from mmseg_vvt.apis import load_segmentor


def test_checkpoint_missing_a_key_is_refused_unless_partial(
        tiny_config, tmp_path):
    torch.manual_seed(0)
    model, _ = load_segmentor(tiny_config, None)
    state = model.state_dict()
    del state['decode_head.conv_seg.weight']
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': state, 'meta': {}}, path)
    with pytest.raises(RuntimeError, match='decode_head.conv_seg.weight'):
        load_segmentor(tiny_config, str(path))
    loaded, _ = load_segmentor(tiny_config, str(path), allow_partial=True)
    assert torch.equal(loaded.state_dict()['decode_head.conv_seg.bias'],
                       state['decode_head.conv_seg.bias'])


def test_missing_checkpoint_is_named(tiny_config, tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_segmentor(tiny_config, str(tmp_path / 'nope.pth'))
