"""Using a trained VVT segmentor: batch inference on image files (on
mmseg's ``MMSegInferencer``) and collecting evaluation results into a
model-zoo table.

Nothing here registers models, so importing it is optional for configs
(it registers the inference loader ``CheckedInferencerLoader``).
"""
from .image_io import (IMG_EXTENSIONS, CheckedInferencerLoader, ImageReadError,
                       read_image_bgr, to_bgr_uint8)
from .inference import (InferenceSummary, OutputPlan, VVTSegInferencer,
                        drop_resize, expand_inputs, inference_pipeline,
                        label_dtype, load_segmentor, load_weights,
                        plan_outputs, resolve_dataset_meta, save_label,
                        set_test_mode)

__all__ = [
    'IMG_EXTENSIONS', 'CheckedInferencerLoader', 'ImageReadError',
    'read_image_bgr', 'to_bgr_uint8', 'InferenceSummary', 'OutputPlan',
    'VVTSegInferencer', 'drop_resize', 'expand_inputs', 'inference_pipeline',
    'label_dtype', 'load_segmentor', 'load_weights', 'plan_outputs',
    'resolve_dataset_meta', 'save_label', 'set_test_mode'
]
