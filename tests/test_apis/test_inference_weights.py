"""Loading weights for inference (mmseg_vvt.apis.load_weights through
VVTSegInferencer / load_segmentor)."""
import pytest

from mmseg_vvt.apis import load_segmentor


def test_missing_checkpoint_is_named(tiny_config, tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_segmentor(tiny_config, str(tmp_path / 'nope.pth'))
