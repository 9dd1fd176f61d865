# Semantic FPN on a VVT backbone, the setting of PVT's segmentation
# experiments that the VVT paper follows: FPN neck (256 channels, 4 levels)
# and FPN head (128 channels, dropout 0.1). Everything else comes from
# mmseg's own `fpn_r50.py`; only the backbone and the neck input widths
# differ.
_base_ = ['mmseg::_base_/models/fpn_r50.py']

# importing mmseg_vvt registers `type='VVT'` in mmseg's MODELS registry and
# installs the weights_only allow-list for mmengine checkpoints
custom_imports = dict(imports=['mmseg_vvt'], allow_failed_imports=False)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='VVT',
        arch='tiny',
        in_channels=3,
        out_indices=(0, 1, 2, 3),
        drop_rate=0.,
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=False,
        with_cp=False),
    # all four VVT presets output (96, 160, 320, 512) channels
    neck=dict(in_channels=[96, 160, 320, 512], out_channels=256, num_outs=4),
    decode_head=dict(channels=128, dropout_ratio=0.1))
