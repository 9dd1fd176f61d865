"""mmseg_vvt.testing: the tiny models and configs the other tests build on."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmseg_vvt.testing import (TINY_ARCH, tiny_arch, tiny_segmentor,
                               write_tiny_config)


def test_tiny_arch_is_a_copy_with_overrides():
    arch = tiny_arch(depths=[1, 2, 1, 1])
    assert arch['depths'] == [1, 2, 1, 1]
    assert TINY_ARCH['depths'] == [1, 1, 1, 1]
    arch['embed_dims'].append(0)
    assert TINY_ARCH['embed_dims'] == [16, 32, 64, 128]
    with pytest.raises(KeyError, match="unknown arch keys \\['window'\\]"):
        tiny_arch(window=7)


def test_unknown_decode_head_is_named():
    with pytest.raises(ValueError, match="'psp'"):
        tiny_segmentor(decode_head='psp')


@pytest.mark.parametrize('head,aux', [('fpn', False), ('fcn', True),
                                      ('uper', True)])
def test_written_configs_build_and_segment(tmp_path, head, aux):
    from mmseg.registry import MODELS

    import mmseg_vvt  # noqa: F401
    path = write_tiny_config(
        tmp_path / f'{head}.py',
        num_classes=3,
        decode_head=head,
        auxiliary_head=aux,
        crop_size=(32, 48),
        test_pipeline=[dict(type='LoadImageFromFile')])
    cfg = Config.fromfile(path)
    assert cfg.custom_imports.imports == ['mmseg_vvt']
    assert tuple(cfg.crop_size) == (32, 48)
    assert cfg.test_pipeline == [dict(type='LoadImageFromFile')]
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()
    assert model.with_auxiliary_head == aux
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 32, 48), mode='tensor')
    assert logits.shape[:2] == (1, 3)
