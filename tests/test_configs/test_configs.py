"""Every config under configs/ loads, builds and runs; the ADE20K recipes
are the ones VVT_SPEC.md states."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

import mmseg_vvt  # noqa: F401
from mmseg_vvt.engine.runtime import replace_sync_bn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs')
ALL_CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep))
ARCH = {'t': 'tiny', 's': 'small', 'm': 'medium', 'l': 'large'}
# backbone parameters without the classifier head (VVT_SPEC.md)
BACKBONE_PARAMS_M = {
    'tiny': 12.37,
    'small': 24.98,
    'medium': 47.39,
    'large': 61.34
}
FPN_CONFIGS = [f'vvt/fpn_vvt-{a}_8xb2-80k_ade20k-512x512.py' for a in ARCH]
UPERNET_CONFIGS = [
    f'vvt/upernet_vvt-{a}_8xb2-160k_ade20k-512x512.py' for a in ARCH
]
ADE20K_CONFIGS = FPN_CONFIGS + UPERNET_CONFIGS + ['vvt_fpn_ade20k.py']
CHECKED = {
    'LoadImageFromFile': 'CheckedLoadImageFromFile',
    'LoadAnnotations': 'CheckedLoadAnnotations'
}


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Build in mmseg's scope whatever other tests left as default scope."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def _load(rel):
    return Config.fromfile(osp.join(CONFIG_DIR, rel))


def _rel(path):
    return osp.relpath(path, CONFIG_DIR)


def test_the_full_set_exists():
    rels = {_rel(p) for p in ALL_CONFIGS}
    for rel in FPN_CONFIGS + UPERNET_CONFIGS + ['vvt_fpn_ade20k.py']:
        assert rel in rels, rel


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=_rel)
def test_configs_refuse_checkpoints_that_do_not_fit(path):
    """Every config lists the fit check itself, so it holds under mmseg's
    own tools too (configs/_base_/default_runtime.py)."""
    cfg = Config.fromfile(path)
    fit = [h for h in cfg.custom_hooks if h.type == 'CheckpointFitHook']
    assert len(fit) == 1 and not fit[0].get('allow_partial', False)
    assert cfg.allow_partial_checkpoint is False
    assert 'mmseg_vvt' in cfg.custom_imports.imports  # registers the hook
    # and the config checks of this project's tools, run by the runner
    assert [h.type for h in cfg.custom_hooks].count('VVTConfigCheckHook') == 1


def test_a_config_extending_custom_hooks_keeps_the_guards(tmp_path):
    # the README's advice: a list set in a child replaces the base's
    child = tmp_path / 'ema.py'
    child.write_text(f"_base_ = [{osp.join(CONFIG_DIR, 'vvt_fpn_demo.py')!r}]"
                     "\ncustom_hooks = _base_.custom_hooks + "
                     "[dict(type='EMAHook')]\n")
    assert [h.type for h in Config.fromfile(str(child)).custom_hooks
            ] == ['CheckpointFitHook', 'VVTConfigCheckHook', 'EMAHook']


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=_rel)
def test_config_builds_and_runs(path):
    cfg = Config.fromfile(path)
    model_cfg = cfg.model
    # no pretrained files in the test environment: random initialisation
    model_cfg.backbone.init_cfg = None
    model_cfg.pretrained = None
    replace_sync_bn(model_cfg)  # SyncBN layers need CUDA tensors
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.eval()
    num_classes = cfg.model.decode_head.num_classes
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), mode='tensor')
    # FPN and UperNet heads predict at stride 4
    assert out.shape == (1, num_classes, 16, 16)
    assert torch.isfinite(out).all()

    arch = cfg.model.backbone.arch
    if isinstance(arch, str):
        arch = ARCH.get(arch, arch)
        n_params = sum(p.numel() for p in model.backbone.parameters())
        assert n_params / 1e6 == pytest.approx(
            BACKBONE_PARAMS_M[arch], abs=0.01)


def _check_ade20k_data(cfg):
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.train_dataloader.dataset.data_root == \
        'data/ade/ADEChallengeData2016'
    crops = [t for t in cfg.train_pipeline if t.type == 'RandomCrop']
    assert crops and tuple(crops[0].crop_size) == (512, 512)
    assert tuple(cfg.model.data_preprocessor.size) == (512, 512)
    # single-scale evaluation: short side 512, keep ratio
    resize = [
        t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize'
    ]
    assert len(resize) == 1
    assert tuple(resize[0].scale) == (2048, 512)
    assert resize[0].keep_ratio is True
    assert cfg.model.decode_head.num_classes == 150


def _check_batch(cfg, rel):
    gpus, per_gpu = map(int, re.search(r'_(\d+)xb(\d+)-', rel).groups())
    assert cfg.train_dataloader.batch_size == per_gpu
    assert gpus * per_gpu == 16  # total batch 16


def _check_backbone(cfg, rel):
    letter = re.search(r'vvt-([tsml])_', rel).group(1)
    name = ARCH[letter]
    assert cfg.model.backbone.type == 'VVT'
    assert cfg.model.backbone.arch == name
    assert cfg.model.backbone.out_indices == (0, 1, 2, 3)
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint=f'checkpoints/vvt_{name}_backbone.pth')
    assert cfg.custom_imports.imports == ['mmseg_vvt']


@pytest.mark.parametrize('rel', FPN_CONFIGS)
def test_semantic_fpn_recipe(rel):
    cfg = _load(rel)
    _check_ade20k_data(cfg)
    _check_batch(cfg, rel)
    _check_backbone(cfg, rel)
    neck, head = cfg.model.neck, cfg.model.decode_head
    assert neck.type == 'FPN'
    assert neck.in_channels == [96, 160, 320, 512]
    assert neck.out_channels == 256 and neck.num_outs == 4
    assert head.type == 'FPNHead'
    assert head.channels == 128 and head.dropout_ratio == 0.1
    assert 'auxiliary_head' not in cfg.model

    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.optim_wrapper.optimizer == dict(
        type='AdamW', lr=1e-4, weight_decay=1e-4)
    assert 'paramwise_cfg' not in cfg.optim_wrapper
    assert len(cfg.param_scheduler) == 1
    poly = cfg.param_scheduler[0]
    assert poly.type == 'PolyLR' and poly.power == 0.9
    assert poly.eta_min == 0 and poly.begin == 0 and poly.end == 80000
    assert poly.by_epoch is False
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == 80000


@pytest.mark.parametrize('rel', UPERNET_CONFIGS)
def test_upernet_recipe(rel):
    cfg = _load(rel)
    _check_ade20k_data(cfg)
    _check_batch(cfg, rel)
    _check_backbone(cfg, rel)
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert head.type == 'UPerHead'
    assert head.in_channels == [96, 160, 320, 512]
    assert head.in_index == [0, 1, 2, 3]
    assert aux.type == 'FCNHead'
    assert aux.in_index == 2 and aux.in_channels == 320  # stage 3
    assert aux.loss_decode.loss_weight == 0.4
    assert aux.num_classes == 150

    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.lr == 6e-5
    assert tuple(opt.betas) == (0.9, 0.999) and opt.weight_decay == 0.01
    warmup, poly = cfg.param_scheduler
    assert warmup.type == 'LinearLR'
    assert (warmup.begin, warmup.end) == (0, 1500)
    assert warmup.by_epoch is False
    assert poly.type == 'PolyLR' and poly.power == 1.0
    assert (poly.begin, poly.end) == (1500, 160000) and poly.eta_min == 0
    assert cfg.train_cfg.max_iters == 160000


def test_main_setting_is_vvt_small_semantic_fpn():
    main = _load('vvt_fpn_ade20k.py')
    ref = _load('vvt/fpn_vvt-s_8xb2-80k_ade20k-512x512.py')
    assert main.model.backbone.arch == 'small'
    assert main.model.to_dict() == ref.model.to_dict()
    assert main.optim_wrapper.to_dict() == ref.optim_wrapper.to_dict()
    assert main.param_scheduler == ref.param_scheduler
    assert main.train_cfg.max_iters == 80000


def _tiny(cfg):
    cfg.model.backbone.init_cfg = None
    replace_sync_bn(cfg.model)
    return MODELS.build(cfg.model)


def test_upernet_no_weight_decay_on_norms():
    cfg = _load(UPERNET_CONFIGS[0])
    model = _tiny(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[names[id(p)]] = group['weight_decay']
    assert decay['backbone.block1.0.norm1.weight'] == 0
    assert decay['backbone.patch_embed1.norm.bias'] == 0
    assert decay['backbone.norm4.weight'] == 0
    assert decay['backbone.block1.0.attn.q_proj.weight'] == 0.01
    assert decay['decode_head.conv_seg.weight'] == 0.01


def test_fpn_weight_decay_everywhere():
    cfg = _load(FPN_CONFIGS[0])
    model = _tiny(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    for group in wrapper.optimizer.param_groups:
        assert group['weight_decay'] == 1e-4
        assert group['lr'] == 1e-4


@pytest.mark.filterwarnings('ignore:Detected call of')
def test_lr_schedule_values():
    """The schedulers give the recipes' learning rates along the run."""
    from mmengine.optim.scheduler import LinearLR, PolyLR
    param = torch.nn.Parameter(torch.zeros(1))

    def lrs(cfg, iters):
        # the schedulers only read and write param_groups[i]['lr']
        opt = torch.optim.SGD([param], lr=cfg.optim_wrapper.optimizer.lr)
        scheds = []
        for s in cfg.param_scheduler:
            s = dict(s)
            cls = {'LinearLR': LinearLR, 'PolyLR': PolyLR}[s.pop('type')]
            scheds.append(cls(opt, **s))
        out = {}
        for it in range(max(iters) + 1):
            if it in iters:
                out[it] = opt.param_groups[0]['lr']
            for s in scheds:
                s.step()
        return out

    fpn = lrs(_load(FPN_CONFIGS[1]), {0, 40000, 79999})
    assert fpn[0] == pytest.approx(1e-4)
    assert fpn[40000] == pytest.approx(1e-4 * 0.5**0.9, rel=1e-3)
    assert fpn[79999] < 1e-8
    up = lrs(_load(UPERNET_CONFIGS[1]), {0, 1500, 80750})
    assert up[0] == pytest.approx(6e-5 * 1e-6)
    assert up[1500] == pytest.approx(6e-5)
    assert up[80750] == pytest.approx(3e-5, rel=1e-3)


def test_pretrained_init_cfg_loads_a_converted_checkpoint(tmp_path):
    """The configs' init_cfg loads a backbone checkpoint through the safe
    loader (what tools/convert_vvt_checkpoint.py writes)."""
    cfg = _load(FPN_CONFIGS[0])
    cfg.model.backbone.init_cfg = None
    replace_sync_bn(cfg.model)
    source = MODELS.build(cfg.model.backbone)
    source.init_weights()
    path = str(tmp_path / 'vvt_tiny_backbone.pth')
    torch.save({'state_dict': source.state_dict()}, path)

    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=path)
    model = MODELS.build(cfg.model)
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def _plain(pipeline):
    """A pipeline as plain data, without mmengine's ``_scope_`` keys."""
    if isinstance(pipeline, (list, tuple)):
        return [_plain(p) for p in pipeline]
    if isinstance(pipeline, dict):
        return {k: _plain(v) for k, v in pipeline.items() if k != '_scope_'}
    return pipeline


def _swapped(pipeline):
    """mmseg's pipeline with the expected swap of the loading transforms
    (the label loader also checks the values against ADE20K's 150
    classes)."""
    if isinstance(pipeline, list):
        return [_swapped(p) for p in pipeline]
    if isinstance(pipeline, dict):
        out = {k: _swapped(v) for k, v in pipeline.items()}
        if out.get('type') in CHECKED:
            out['type'] = CHECKED[out['type']]
        if out.get('type') == 'CheckedLoadAnnotations':
            out['num_classes'] = 150
        return out
    return pipeline


def _types(pipeline):
    out = []
    for step in pipeline:
        if isinstance(step, (list, tuple)):
            out += _types(step)
        else:
            out.append(step['type'])
            out += _types(step.get('transforms', []))
    return out


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=_rel)
def test_every_pipeline_loads_with_the_checked_transforms(path):
    """Also ``tta_pipeline`` (``tools/test.py --tta``): a corrupt file is
    named there too."""
    cfg = Config.fromfile(path)
    pipelines = dict(
        train=cfg.train_dataloader.dataset.pipeline,
        val=cfg.val_dataloader.dataset.pipeline,
        test=cfg.test_dataloader.dataset.pipeline,
        tta=cfg.tta_pipeline)
    for name, pipeline in pipelines.items():
        types = _types(pipeline)
        assert {'CheckedLoadImageFromFile', 'CheckedLoadAnnotations'} \
            <= set(types), name
        assert not set(types) & set(CHECKED), (name, types)
        labels = [
            t for t in _flat(pipeline) if t['type'] == 'CheckedLoadAnnotations'
        ]
        head = cfg.model.decode_head.num_classes
        assert all(t.num_classes == head for t in labels), name


def _flat(pipeline):
    for step in pipeline:
        if isinstance(step, (list, tuple)):
            yield from _flat(step)
        else:
            yield step
            yield from _flat(step.get('transforms', []))


@pytest.fixture(scope='module')
def mmseg_ade20k(tmp_path_factory):
    """mmseg's own ADE20K dataset base file, loaded as configs load it."""
    path = tmp_path_factory.mktemp('cfg') / 'ade20k.py'
    path.write_text("_base_ = ['mmseg::_base_/datasets/ade20k.py']\n")
    return Config.fromfile(str(path))


@pytest.mark.parametrize('rel', ADE20K_CONFIGS)
def test_ade20k_pipelines_load_with_checked_transforms(rel, mmseg_ade20k):
    """Every ADE20K config loads images and label maps with the checked
    transforms, and its pipelines are otherwise mmseg's: the same
    transforms with the same arguments in the same order."""
    cfg = _load(rel)
    ref = mmseg_ade20k
    pipelines = {
        'train_dataloader':
        (cfg.train_dataloader.dataset.pipeline, ref.train_pipeline),
        'val_dataloader':
        (cfg.val_dataloader.dataset.pipeline, ref.test_pipeline),
        'test_dataloader':
        (cfg.test_dataloader.dataset.pipeline, ref.test_pipeline),
        'train_pipeline': (cfg.train_pipeline, ref.train_pipeline),
        'test_pipeline': (cfg.test_pipeline, ref.test_pipeline),
        'tta_pipeline': (cfg.tta_pipeline, ref.tta_pipeline),
    }
    for name, (got, base) in pipelines.items():
        types = _types(got)
        assert 'CheckedLoadImageFromFile' in types, name
        assert 'CheckedLoadAnnotations' in types, name
        assert not set(types) & set(CHECKED), (name, types)
        assert _plain(got) == _swapped(_plain(base)), name
    # the rest of the data settings is mmseg's as well
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ours = _plain(cfg[key].to_dict())
        theirs = _plain(ref[key].to_dict())
        for d in (ours, theirs):
            d['dataset'].pop('pipeline')
            d.pop('batch_size')  # the recipes' batch, checked above
        assert ours == theirs, key
    assert cfg.custom_imports.imports == ['mmseg_vvt']


def _write_pair(tmp_path, img_hw, label_hw):
    import cv2
    import numpy as np
    img = tmp_path / 'ADE_val_00000001.jpg'
    seg = tmp_path / 'ADE_val_00000001.png'
    assert cv2.imwrite(str(img), np.full((*img_hw, 3), 128, np.uint8))
    assert cv2.imwrite(str(seg), np.ones(label_hw, np.uint8))
    return str(img), str(seg)


def _sample(img, seg):
    return dict(
        img_path=img, seg_map_path=seg, reduce_zero_label=True, seg_fields=[])


@pytest.mark.parametrize('which', ['train', 'test'])
def test_ade20k_pipeline_names_label_map_of_wrong_size(tmp_path, which):
    """The configs' own pipelines, built: a label map whose size differs
    from its image stops them with an error naming the label file."""
    from mmcv.transforms import Compose

    from mmseg_vvt.datasets import DataFileError
    cfg = _load(FPN_CONFIGS[0])
    loader = cfg.train_dataloader if which == 'train' else \
        cfg.test_dataloader
    pipeline = Compose(loader.dataset.pipeline)
    img, seg = _write_pair(tmp_path, (48, 64), (48, 64))
    out = pipeline(_sample(img, seg))
    assert out['data_samples'].gt_sem_seg.data.shape[0] == 1

    img, seg = _write_pair(tmp_path, (48, 64), (40, 64))
    with pytest.raises(DataFileError, match=re.escape(seg)):
        pipeline(_sample(img, seg))

    (tmp_path / 'broken.jpg').write_bytes(b'not an image')
    with pytest.raises(
            DataFileError, match=re.escape(str(tmp_path / 'broken.jpg'))):
        pipeline(_sample(str(tmp_path / 'broken.jpg'), seg))
