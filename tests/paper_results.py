"""The paper's ADE20K table, the one copy the tests hold the repo to.

Sun et al., "Vicinity Vision Transformer", IEEE TPAMI 2023, arXiv
2206.10552: the semantic segmentation table (ADE20K validation set,
single-scale mIoU, 150 classes). Params are whole segmentors (UperNet's
include its auxiliary FCN head); VVT's GFLOPs are at a 512x512 input. The
README, ``configs/vvt/README.md`` and ``configs/vvt/metafile.yaml`` quote
these numbers and their tests compare with this module, so a typo in any of
them fails a test instead of spreading. On the test path through
``pythonpath = tests`` in setup.cfg.
"""
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

ARCHS = {'t': 'tiny', 's': 'small', 'm': 'medium', 'l': 'large'}
#: method key -> (the paper's name, config name template)
METHODS = {
    'fpn':
    ('Semantic FPN', 'configs/vvt/fpn_vvt-{}_8xb2-80k_ade20k-512x512.py'),
    'upernet':
    ('UperNet', 'configs/vvt/upernet_vvt-{}_8xb2-160k_ade20k-512x512.py'),
}

#: (method, arch letter) -> the paper's params (M), GFLOPs and mIoU. The
#: paper has no VVT-T row, so there is no ('fpn', 't') / ('upernet', 't').
VVT_ADE20K = {
    ('fpn', 's'): dict(params=29.2, gflops=50.9, miou=45.6),
    ('fpn', 'm'): dict(params=51.7, gflops=70.8, miou=47.4),
    ('fpn', 'l'): dict(params=65.5, gflops=78.1, miou=47.9),
    ('upernet', 's'): dict(params=55.5, gflops=240, miou=46.8),
    ('upernet', 'm'): dict(params=77.9, gflops=260, miou=48.1),
    ('upernet', 'l'): dict(params=91.9, gflops=267, miou=48.8),
}

#: peers in the same table, as far as they are quoted in the docs:
#: backbone -> {column: value}; a missing column is not quoted (the paper
#: has no UperNet result for PVTv2-b2, PVT-Small and ResNet50).
PEERS_ADE20K = {
    'Swin-T':
    dict(
        fpn_params=31.9, fpn_miou=41.5, upernet_params=59.9,
        upernet_miou=44.5),
    'Twins-SVT-S':
    dict(fpn_miou=43.2, upernet_miou=46.2),
    'PVTv2-b2':
    dict(fpn_miou=45.2),
    'PVT-Small':
    dict(fpn_miou=39.8),
    'ResNet50':
    dict(fpn_miou=36.7),
}

#: how close this project's configs come to the paper (issue 11)
PARAMS_TOLERANCE_M = 0.15
GFLOPS_TOLERANCE = 0.015


def config_path(method, arch_letter):
    """Repository-relative path of the config of ``(method, arch)``."""
    return METHODS[method][1].format(arch_letter)
