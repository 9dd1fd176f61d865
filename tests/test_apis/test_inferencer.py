"""VVTSegInferencer keeps mmseg's MMSegInferencer interface on a config
whose test pipeline uses the checked loaders."""
import cv2
import numpy as np

from mmseg_vvt.apis import VVTSegInferencer


def test_mmseg_call_interface_on_paths_and_16bit(tiny_config, tmp_path):
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (21, 17, 3), np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    cv2.imwrite(str(tmp_path / 'a16.png'), img.astype(np.uint16) * 257)
    inferencer = VVTSegInferencer(tiny_config, None, device='cpu')
    assert inferencer.pipeline.transforms[0].__class__.__name__ == \
        'CheckedInferencerLoader'
    out = inferencer([str(tmp_path / 'a.png'),
                      str(tmp_path / 'a16.png')],
                     return_vis=True)
    a, a16 = out['predictions']
    assert a.shape == (21, 17)
    np.testing.assert_array_equal(a, a16)
    assert out['visualization'][0].shape == (21, 17, 3)
