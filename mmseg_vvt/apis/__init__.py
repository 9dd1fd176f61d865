"""Using a trained VVT segmentor: batch inference on image files and
collecting evaluation results into a model-zoo table.

Nothing here registers modules, so importing it is optional for configs.
"""
from .image_io import (IMG_EXTENSIONS, ImageReadError, read_image_bgr,
                       to_bgr_uint8)
from .inference import (InferenceSummary, OutputPlan, OverlayWriter,
                        drop_resize, expand_inputs, inference_pipeline,
                        label_dtype, load_segmentor, plan_outputs, predict,
                        resolve_dataset_meta, run_inference, save_label,
                        set_test_mode)

__all__ = [
    'IMG_EXTENSIONS', 'ImageReadError', 'read_image_bgr', 'to_bgr_uint8',
    'InferenceSummary', 'OutputPlan', 'OverlayWriter', 'drop_resize',
    'expand_inputs', 'inference_pipeline', 'label_dtype', 'load_segmentor',
    'plan_outputs', 'predict', 'resolve_dataset_meta', 'run_inference',
    'save_label', 'set_test_mode'
]
