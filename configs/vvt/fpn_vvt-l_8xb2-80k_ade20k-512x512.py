# VVT-L + Semantic FPN on ADE20K: the VVT-T recipe with the large backbone.
_base_ = ['./fpn_vvt-t_8xb2-80k_ade20k-512x512.py']
checkpoint_file = 'checkpoints/vvt_large_backbone.pth'
model = dict(
    backbone=dict(
        arch='large',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
