"""The numbers the docs quote agree with their sources: the paper's ADE20K
table (tests/paper_results.py) in the README and on the model-zoo page, and
the variants table of docs/architecture.md with the presets and the
parameter counts of the backbone as built."""
import os.path as osp
import re

import pytest
from paper_results import ARCHS, PEERS_ADE20K, REPO, VVT_ADE20K, config_path

from mmseg_vvt.models.backbones.vvt import VVT

README = osp.join(REPO, 'README.md')
ZOO_PAGE = osp.join(REPO, 'configs', 'vvt', 'README.md')
ARCHITECTURE = osp.join(REPO, 'docs', 'architecture.md')
MISSING = ('', '—')


def fmt(value):
    return f'{value:g}'


def tables(path):
    """Markdown tables of a file: ``(header cells, [row cells, ...])``."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    found, i = [], 0
    while i < len(lines):
        if (lines[i].startswith('|') and i + 1 < len(lines)
                and re.fullmatch(r'[|\s:-]+', lines[i + 1])):
            rows, j = [], i + 2
            while j < len(lines) and lines[j].startswith('|'):
                rows.append(_cells(lines[j]))
                j += 1
            found.append((_cells(lines[i]), rows))
            i = j
        else:
            i += 1
    return found


def _cells(line):
    return [c.strip() for c in line.strip().strip('|').split('|')]


def _quantity(header):
    header = header.lower()
    for word, key in (('params', 'params'), ('gflops', 'gflops'), ('miou',
                                                                   'miou')):
        if word in header:
            return key
    return None


def test_readme_quotes_the_papers_table():
    (header,
     rows), = [t for t in tables(README) if 'Semantic FPN params (M)' in t[0]]
    columns = [('fpn', 'params'), ('fpn', 'gflops'), ('fpn', 'miou'),
               ('upernet', 'params'), ('upernet', 'gflops'),
               ('upernet', 'miou')]
    assert len(header) == 1 + len(columns)
    by_backbone = {row[0]: row[1:] for row in rows}
    vvt = {f'VVT-{a.upper()}': a for _, a in VVT_ADE20K}
    assert set(by_backbone) == set(vvt) | set(PEERS_ADE20K)
    for name, cells in by_backbone.items():
        for (method, what), cell in zip(columns, cells):
            if name in vvt:
                want = fmt(VVT_ADE20K[(method, vvt[name])][what])
                assert cell == want, (name, method, what)
            else:
                value = PEERS_ADE20K[name].get(f'{method}_{what}')
                if value is None:
                    assert cell in MISSING, (name, method, what, cell)
                else:
                    assert cell == fmt(value), (name, method, what)


@pytest.mark.parametrize(
    'path', [README, ZOO_PAGE], ids=lambda p: osp.relpath(p, REPO))
def test_config_tables_quote_the_paper(path):
    """Every table with "paper" columns has one row per ADE20K config, and
    those columns hold the paper's numbers ("—" for VVT-T)."""
    configs = {
        config_path(m, a): (m, a)
        for m in ('fpn', 'upernet')
        for a in ARCHS
    }
    checked = 0
    for header, rows in tables(path):
        paper = [(i, _quantity(h)) for i, h in enumerate(header)
                 if 'paper' in h.lower() and _quantity(h)]
        if not paper:
            continue
        seen = []
        for row in rows:
            names = [c for c in configs if osp.basename(c) in ' '.join(row)]
            assert len(names) == 1, row
            seen.append(names[0])
            key = configs[names[0]]
            for i, what in paper:
                if key in VVT_ADE20K:
                    assert row[i] == fmt(VVT_ADE20K[key][what]), (row, what)
                else:
                    assert row[i] == '—', (row, what)
        assert sorted(seen) == sorted(configs)
        checked += 1
    assert checked, f'no table with the paper\'s numbers in {path}'


@pytest.mark.parametrize(
    'path', [README, ZOO_PAGE], ids=lambda p: osp.relpath(p, REPO))
def test_config_tables_quote_the_committed_flop_counts(path):
    """The "this code" params and GFLOPs columns are benchmarks/flops/*.json
    (tools/get_flops.py --out), params with the auxiliary head."""
    import json
    checked = 0
    for header, rows in tables(path):
        ours = [(i, _quantity(h)) for i, h in enumerate(header)
                if 'this code' in h.lower() and _quantity(h)]
        if not ours:
            continue
        for row in rows:
            (name, ) = re.findall(r'(\w[\w.-]*_ade20k-512x512)', ' '.join(row))
            with open(
                    osp.join(REPO, 'benchmarks', 'flops', f'{name}.json'),
                    encoding='utf-8') as f:
                counted = json.load(f)
            want = dict(
                params=f'{counted["params_with_aux"] / 1e6:.2f}',
                gflops=f'{counted["flops"] / 1e9:.2f}')
            for i, what in ours:
                assert row[i] == want[what], (name, what)
            checked += 1
    assert checked == 8, path


def test_architecture_variants_table_is_the_presets():
    (header, rows), = [t for t in tables(ARCHITECTURE) if 'depths' in t[0]]
    col = {h.split(' (')[0]: i for i, h in enumerate(header)}
    assert {row[0].split('`')[1] for row in rows} == set(ARCHS.values())
    for row in rows:
        arch = row[0].split('`')[1]
        preset = VVT.arch_zoo[arch]
        assert row[col['depths']] == ', '.join(map(str, preset['depths']))
        assert row[col['MLP ratios']] == ', '.join(
            map(str, preset['mlp_ratios']))
        n = sum(p.numel() for p in VVT(arch=arch).parameters())
        assert row[col['backbone params']] == f'{n / 1e6:.2f}M', arch


GPU = osp.join(REPO, 'benchmarks', 'gpu')


def _gpu_json(name):
    import json
    with open(osp.join(GPU, name), encoding='utf-8') as f:
        return json.load(f)


def _backbone_rows(name, resolution):
    return {
        r['model']: r
        for r in _gpu_json(name)['results'] if r['resolution'] == resolution
    }


def _expected_gpu_table():
    """The README's GPU table as benchmarks/gpu/*.json give it."""
    rows = []
    for dtype, label in (('fp16', 'AMP fp16'), ('fp32', 'fp32')):
        r = _backbone_rows(f'scaling_train_cuda_{dtype}.json', 512)
        cell = [
            f'{r[m]["latency_ms"]:.0f} ms, '
            f'{r[m]["mem_peak_mb"] / 1024:.1f} GiB'
            for m in ('vvt-s', 'vvt-s-triton', 'swin-t')
        ]
        rows.append([
            f'backbone training step, 512², batch 8, {label}', *cell,
            f'{r["swin-t"]["latency_ms"] / r["vvt-s"]["latency_ms"]:.2f}x'
            f'{" speed" if dtype == "fp16" else ""}, '
            f'{r["vvt-s"]["mem_peak_mb"] / r["swin-t"]["mem_peak_mb"]:.2f}x'
            f'{" memory" if dtype == "fp16" else ""}'
        ])
    for seg, label in (('fpn', 'Semantic FPN'), ('upernet', 'UperNet')):
        got = {}
        for b in ('vvt-s', 'vvt-s-triton', 'swin-t'):
            if osp.exists(osp.join(GPU, f'train_{seg}_{b}.json')):
                got[b] = _gpu_json(f'train_{seg}_{b}.json')['train']['fp16']
        cell = [
            f'{got[b]["images_per_s"]:.1f} img/s, '
            f'{got[b]["peak_mib"] / 1024:.1f} GiB' if b in got else '(not run)'
            for b in ('vvt-s', 'vvt-s-triton', 'swin-t')
        ]
        vvt, swin = got['vvt-s'], got['swin-t']
        rows.append([
            f'{label} training, 512², batch 8, AMP', *cell,
            f'{vvt["images_per_s"] / swin["images_per_s"]:.2f}x, '
            f'{vvt["peak_mib"] / swin["peak_mib"]:.2f}x'
        ])
    for dtype in ('fp32', 'fp16'):
        r = _backbone_rows(f'scaling_forward_cuda_{dtype}.json', 2048)
        vvt, swin = r['vvt-s'], r['swin-t']
        rows.append([
            f'backbone forward 2048², batch 1, {dtype}',
            f'{vvt["latency_ms"]:.0f} ms, {vvt["mem_extra_mb"]:.0f} MiB extra',
            '(not measured)',  # inference with them since 76f5791
            f'{swin["latency_ms"]:.0f} ms, {swin["mem_extra_mb"]:.0f} MiB',
            f'{swin["latency_ms"] / vvt["latency_ms"]:.2f}x, '
            f'{vvt["mem_extra_mb"] / swin["mem_extra_mb"]:.2f}x'
        ])
    return rows


def test_readme_gpu_table_is_the_committed_gpu_run():
    (header,
     rows), = [t for t in tables(README) if 'VVT-S, Triton kernels' in t[0]]
    assert header == [
        'measure', 'VVT-S', 'VVT-S, Triton kernels', 'Swin-T',
        'VVT-S vs Swin-T'
    ]
    assert rows == _expected_gpu_table()
    env = _gpu_json('environment.json')
    with open(README, encoding='utf-8') as f:
        readme = f.read()
    assert f'**GPU: one {env["gpu"]}** (torch {env["torch"]}' in readme
