"""mmseg's own Python API (``init_model``, ``inference_model``,
``show_result_pyplot``) on a config whose test pipeline uses the checked
loaders, as the repository's ADE20K configs do."""
import cv2
import numpy as np
import torch


def test_mmseg_inference_model_runs_the_checked_pipeline(
        tiny_config, tmp_path):
    # mmseg drops only a step named exactly 'LoadAnnotations'; the checked
    # label loader met the image without labels (KeyError: 'seg_map_path')
    from mmseg.apis import inference_model, init_model, show_result_pyplot
    meta = dict(
        dataset_meta=dict(
            classes=('a', 'b', 'c'),
            palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]]))
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save(
        dict(
            state_dict=init_model(tiny_config, device='cpu').state_dict(),
            meta=meta), ckpt)
    model = init_model(tiny_config, ckpt, device='cpu')
    assert model.dataset_meta['classes'] == ('a', 'b', 'c')
    img = np.random.RandomState(0).randint(0, 256, (21, 17, 3), np.uint8)
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, img)
    result = inference_model(model, path)
    assert tuple(result.pred_sem_seg.data.shape) == (1, 21, 17)
    assert 'gt_sem_seg' not in result
    out_file = str(tmp_path / 'drawn.png')
    drawn = show_result_pyplot(
        model, path, result, show=False, out_file=out_file)
    assert drawn.shape == (21, 17, 3)
    assert cv2.imread(out_file).shape == (21, 17, 3)
    # an array (mmseg swaps the first step for LoadImageFromNDArray)
    from_array = inference_model(model, img)
    np.testing.assert_array_equal(from_array.pred_sem_seg.data,
                                  result.pred_sem_seg.data)
