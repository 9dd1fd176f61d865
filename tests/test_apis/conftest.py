"""Fixtures of tests/test_apis: a tiny VVT + Semantic FPN config file."""
import pytest

TINY_CONFIG = """
custom_imports = dict(imports=['mmseg_vvt'], allow_failed_imports=False)
default_scope = 'mmseg'
crop_size = (32, 32)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', size=crop_size,
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        type='VVT',
        arch=dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                  num_heads=[1, 1, 2, 2], mlp_ratios=[2, 2, 2, 2],
                  fr_ratios=[2, 2, 2, 2], sr_ratios=[1, 1, 1, 1]),
        drop_path_rate=0.0),
    neck=dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=16,
              num_outs=4),
    decode_head=dict(
        type='FPNHead', in_channels=[16, 16, 16, 16], in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32], channels=16, num_classes=3,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    test_cfg=dict(mode='whole'))
# as the repository's ADE20K configs: loaders that name unreadable files,
# and an annotation loader that inference has to drop
test_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='Resize', scale=(48, 48), keep_ratio=True),
    dict(type='CheckedLoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
"""


@pytest.fixture
def tiny_config(tmp_path):
    """Path of a tiny VVT + FPN config (3 classes, crop 32x32, a test
    pipeline that resizes to 48x48 and loads annotations)."""
    path = tmp_path / 'tiny_fpn_vvt.py'
    path.write_text(TINY_CONFIG)
    return path
