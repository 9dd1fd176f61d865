# VVT-T + Semantic FPN on the synthetic demo set (tools/make_demo_data.py),
# sized to really learn in minutes on a 2-core CPU (docs/demo.md): no
# pretrained weights, 128x128 crops, narrow FPN, AdamW with warm-up. Run it
# with `python tools/run_demo.py` (data, training, mIoU vs. a constant
# baseline, and a picture), or with the usual `python tools/train.py` /
# `test.py`.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    './_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmseg_vvt', 'mmseg_vvt.datasets'], allow_failed_imports=False)

# --- data ----------------------------------------------------------------
# Written by `python tools/make_demo_data.py data/demo` (ADE20K layout,
# 160x160 images, label 0 = ignore, classes 1..6).
data_root = 'data/demo/ADEChallengeData2016'
# The first K ADE20K class names: mmseg's ADE20KDataset maps custom classes
# by name, so label k stays train id k-1 (see tools/make_demo_data.py).
classes = ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling')
num_classes = len(classes)
metainfo = dict(classes=classes)
img_scale = (640, 160)  # ADE20K's (2048, 512) scaled to the 160px images
crop_size = (128, 128)

# The standard ADE20K pipeline with the loading transforms that name the
# offending file on a corrupt image, a label map of the wrong size or a
# label value that is not one of the classes.
train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='CheckedLoadAnnotations', num_classes=num_classes),
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='CheckedLoadAnnotations', num_classes=num_classes),
    dict(type='PackSegInputs')
]
# `tools/test.py --tta`: mmseg's ADE20K multi-scale + flip pipeline (scales
# of the image's own size), with the same checked loaders
tta_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='CheckedLoadAnnotations', num_classes=num_classes)],
            [dict(type='PackSegInputs')],
        ])
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
# mmseg's IoUMetric that also returns the per-class IoU/Acc (mmseg_vvt)
val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# --- model ---------------------------------------------------------------
norm_cfg = dict(type='BN', requires_grad=True)  # one CPU process: plain BN
model = dict(
    pretrained=None,
    # Pad crops to 128x128 with -1 (after normalisation), not mmseg's 0:
    # from scratch, an all-zero padded patch meets zero conv biases and
    # chained LayerNorms divide its gradient by sqrt(eps) each, so the
    # first step's gradient norm reaches 1e6..1e19 (docs/training.md,
    # "Training without the ImageNet checkpoints"). Any constant but 0 does.
    data_preprocessor=dict(size=crop_size, pad_val=-1),
    backbone=dict(
        _delete_=True,
        type='VVT',
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=None),  # no ImageNet weights for the demo: from scratch
    neck=dict(in_channels=[96, 160, 320, 512], out_channels=64),
    decode_head=dict(
        in_channels=[64, 64, 64, 64],
        channels=64,
        num_classes=num_classes,
        norm_cfg=norm_cfg))

# --- schedule --------------------------------------------------------------
max_iters = 400
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=False, begin=0, end=50),
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=1e-5,
        by_epoch=False,
        begin=50,
        end=max_iters)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # written to a temporary file and renamed into place: a killed job
    # never leaves a truncated checkpoint (mmseg_vvt/engine/fileio.py)
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=max_iters,
        backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
