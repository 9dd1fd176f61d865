# VVT-T + UperNet on ADE20K, the recipe of the VVT paper (as Swin): AdamW
# lr 6e-5, betas (0.9, 0.999), weight decay 0.01, linear warm-up over 1500
# iterations, poly decay power 1.0, 160k iterations, total batch 16
# (8 GPUs x 2 images), crop 512x512, auxiliary FCN head on stage 3 (0.4).
_base_ = [
    '../_base_/models/upernet_vvt.py', '../_base_/datasets/ade20k_checked.py',
    '../_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
# converted ImageNet checkpoint, see docs/training.md
checkpoint_file = 'checkpoints/vvt_tiny_backbone.pth'
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='tiny',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))

# AdamW as in Swin's UperNet configs, including Swin's convention of no
# weight decay on normalisation layers (VVT has no position embeddings or
# relative position tables, the other parameters Swin exempts).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))

param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False,
    )
]

# By default, models are trained on 8 GPUs with 2 images per GPU
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

# checkpoints go to a temporary file that is renamed into place, so a killed
# job never leaves a truncated iter_N.pth (mmseg_vvt/engine/fileio.py)
default_hooks = dict(
    checkpoint=dict(backend_args=dict(backend='atomic_local')))
