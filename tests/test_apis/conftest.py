"""Fixtures of tests/test_apis: a tiny VVT + Semantic FPN config file."""
import pytest

from mmseg_vvt.testing import write_tiny_config

# as the repository's ADE20K configs: loaders that name unreadable files,
# and an annotation loader that inference has to drop
TEST_PIPELINE = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='Resize', scale=(48, 48), keep_ratio=True),
    dict(type='CheckedLoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]


@pytest.fixture
def tiny_config(tmp_path):
    """Path of a tiny VVT + FPN config (3 classes, crop 32x32, a test
    pipeline that resizes to 48x48 and loads annotations)."""
    return write_tiny_config(
        tmp_path / 'tiny_fpn_vvt.py',
        num_classes=3,
        crop_size=(32, 32),
        test_pipeline=TEST_PIPELINE)
