# mmseg's ADE20K dataset settings (`mmseg::_base_/datasets/ade20k.py`) with
# the two loading transforms replaced by the checked ones of mmseg_vvt
# (mmseg_vvt/datasets/transforms.py; same arguments, plus the number of
# classes for the label loader): a corrupt image, a label map whose size
# differs from its image, or a label value that is not one of the 150
# classes stops the run with an error naming the file, instead of a bare
# decoder error, a shape mismatch or `Target ... is out of bounds` much
# later (or a silently shifted mIoU). The evaluator is mmseg's IoUMetric
# with the per-class IoU/Acc in its results (PerClassIoUMetric,
# mmseg_vvt/evaluation/), so they reach the logs' JSON and tools/test.py's
# eval_*.json. Everything else (transforms, their order and arguments,
# data_root, dataloaders) is mmseg's, read from the base file below.
#
# The checked transforms and the metric are registered by `import mmseg_vvt`:
# configs using this file must have
# `custom_imports = dict(imports=['mmseg_vvt'], ...)` (the VVT model base
# files set it; it is not set here because mmengine
# refuses the same key in two base files of one config).
_base_ = ['mmseg::_base_/datasets/ade20k.py']


def _checked(pipeline):
    """A copy of ``pipeline`` with the loading transforms swapped, also
    inside ``TestTimeAug``'s lists of transforms."""
    swap = {
        'LoadImageFromFile': 'CheckedLoadImageFromFile',
        'LoadAnnotations': 'CheckedLoadAnnotations',
    }
    out = []
    for step in pipeline:
        if isinstance(step, (list, tuple)):
            out.append(_checked(step))
            continue
        step = dict(step)
        if step.get('type') in swap:
            step['type'] = swap[step['type']]
        if step.get('type') == 'CheckedLoadAnnotations':
            step.setdefault('num_classes', 150)  # ADE20K's classes
        if 'transforms' in step:
            step['transforms'] = _checked(step['transforms'])
        out.append(step)
    return out


train_pipeline = _checked(_base_.train_pipeline)
test_pipeline = _checked(_base_.test_pipeline)
tta_pipeline = _checked(_base_.tta_pipeline)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
