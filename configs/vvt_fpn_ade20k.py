# The VVT paper's main segmentation setting: VVT-S + Semantic FPN on ADE20K
# (AdamW lr 1e-4, wd 1e-4, poly 0.9, 80k iterations, batch 16, 512x512).
_base_ = ['./vvt/fpn_vvt-s_8xb2-80k_ade20k-512x512.py']
