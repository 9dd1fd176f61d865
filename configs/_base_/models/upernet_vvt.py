# UperNet on a VVT backbone (the Swin setting the VVT paper follows), with
# the auxiliary FCN head on stage 3 (in_index=2, 320 channels, loss weight
# 0.4). Built on mmseg's own `upernet_swin.py`; only the backbone and the
# head input widths differ.
_base_ = ['mmseg::_base_/models/upernet_swin.py']

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
    decode_head=dict(in_channels=[96, 160, 320, 512], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(
        in_channels=320,
        in_index=2,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
