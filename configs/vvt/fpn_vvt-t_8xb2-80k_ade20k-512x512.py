# VVT-T + Semantic FPN on ADE20K, the recipe of the VVT paper (as PVT):
# AdamW lr 1e-4, weight decay 1e-4, poly decay power 0.9, 80k iterations,
# total batch 16 (8 GPUs x 2 images), crop 512x512.
_base_ = [
    '../_base_/models/fpn_vvt.py', '../_base_/datasets/ade20k_checked.py',
    '../_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_80k.py'
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
    decode_head=dict(num_classes=150))

# PVT's recipe: AdamW with weight decay on every parameter (no paramwise_cfg)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001),
    clip_grad=None)
# poly decay to 0 (mmseg's schedule_80k stops at eta_min=1e-4, which equals
# this base lr and would make the learning rate constant)
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=80000,
        by_epoch=False)
]

# By default, models are trained on 8 GPUs with 2 images per GPU
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

# checkpoints go to a temporary file that is renamed into place, so a killed
# job never leaves a truncated iter_N.pth (mmseg_vvt/engine/fileio.py)
default_hooks = dict(
    checkpoint=dict(backend_args=dict(backend='atomic_local')))
