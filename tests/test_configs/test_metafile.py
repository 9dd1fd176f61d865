"""configs/vvt/metafile.yaml: one model-index entry per ADE20K config, each
pointing at a config that exists and agrees with it, and the paper's mIoU
where the paper reports one (tests/paper_results.py)."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.fileio import load
from paper_results import ARCHS, METHODS, REPO, VVT_ADE20K

METAFILE = osp.join(REPO, 'configs', 'vvt', 'metafile.yaml')
ARXIV = 'https://arxiv.org/abs/2206.10552'
LETTER = {f'VVT-{k.upper()}': k for k in ARCHS}


@pytest.fixture(scope='module')
def index():
    return load(METAFILE)


def _method_and_arch(name):
    m = re.fullmatch(r'(fpn|upernet)_vvt-([tsml])_8xb2-\d+k_ade20k-512x512',
                     name)
    assert m, f'{name}: not an mmseg-style VVT ADE20K config name'
    return m.group(1), m.group(2)


def test_model_index_imports_the_metafile():
    assert load(osp.join(
        REPO, 'model-index.yml')) == dict(Import=['configs/vvt/metafile.yaml'])


def test_collection(index):
    (collection, ) = index['Collections']
    assert collection['Name'] == 'VVT'
    assert collection['Paper']['URL'] == ARXIV
    assert collection['Paper']['Title'] == 'Vicinity Vision Transformer'
    assert osp.isfile(osp.join(REPO, collection['README']))


def test_one_entry_per_ade20k_config(index):
    configs = sorted(
        osp.relpath(p, REPO)
        for p in glob.glob(osp.join(REPO, 'configs', 'vvt', '*.py')))
    assert configs, 'no configs under configs/vvt'
    listed = [m['Config'] for m in index['Models']]
    assert sorted(listed) == configs
    for model in index['Models']:
        assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]


def test_entries_agree_with_their_configs(index):
    for model in index['Models']:
        name = model['Name']
        method, letter = _method_and_arch(name)
        assert model['Config'] == METHODS[method][1].format(letter)
        cfg = Config.fromfile(osp.join(REPO, model['Config']))
        meta = model['Metadata']
        assert model['In Collection'] == 'VVT'
        assert LETTER[meta['Backbone']] == letter, name
        assert cfg.model.backbone.arch == ARCHS[letter], name
        assert meta['Architecture'][0] == meta['Backbone']
        assert meta['Method'] == METHODS[method][0], name
        h, w = cfg.crop_size
        assert meta['Crop Size'] == f'({h},{w})', name
        assert meta['Lr schd'] == cfg.train_cfg.max_iters, name
        gpus = int(re.search(r'_(\d+)xb\d+-', name).group(1))
        assert meta['Batch Size'] == gpus * cfg.train_dataloader.batch_size
        assert meta['Training Data'] == 'ADE20K'
        assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
        assert model['Paper']['URL'] == ARXIV
        assert osp.isfile(osp.join(REPO, model['Code'])), model['Code']
        # nothing claimed that was not measured or released
        assert 'Weights' not in model, name
        assert 'Memory (GB)' not in meta, name


def test_results_are_the_papers(index):
    seen = set()
    for model in index['Models']:
        key = _method_and_arch(model['Name'])
        if key not in VVT_ADE20K:
            # no VVT-T row in the paper: no result may be claimed
            assert 'Results' not in model, model['Name']
            continue
        seen.add(key)
        results = model['Results']
        assert results['Task'] == 'Semantic Segmentation'
        assert results['Dataset'] == 'ADE20K'
        assert results['Metrics'] == dict(mIoU=VVT_ADE20K[key]['miou'])
    assert seen == set(VVT_ADE20K)
