"""tools/collect_results.py: eval JSONs of several work dirs -> one
markdown table (tiny VVT configs written by the test)."""
import json

import pytest
from mmengine.config import Config
from tool_modules import load_tool

from mmseg_vvt.apis.results import fmt_number
from mmseg_vvt.testing import write_tiny_config

#: ``_eval_json(checkpoint_iter=ABSENT)``: a file without the key (written
#: before tools/test.py recorded it)
ABSENT = object()


@pytest.fixture(scope='module')
def tool():
    return load_tool('collect_results')


def _eval_json(work_dir,
               cfg_path,
               miou,
               timestamp,
               dataset='ADE20KDataset',
               checkpoint_iter=4,
               checkpoint_epoch=0,
               **test):
    """An eval JSON as tools/test.py writes it, of the checkpoint
    ``iter_<checkpoint_iter>.pth``; ``test``: its ``test`` record's entries
    (``test=None``: a file from before it existed)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    name = f'iter_{checkpoint_iter}.pth' if isinstance(checkpoint_iter,
                                                       int) else 'model.pth'
    record = dict(
        config=str(cfg_path),
        checkpoint=str(work_dir / name),
        dataset=dataset,
        metrics=dict(aAcc=80.0, mIoU=miou, mAcc=50.0),
        per_class=[dict({
            'class': 'a',
            'IoU': miou,
            'Acc': 50.0
        })],
        timestamp=timestamp)
    if checkpoint_iter is not ABSENT:
        record.update(
            checkpoint_iter=checkpoint_iter, checkpoint_epoch=checkpoint_epoch)
    if test.get('test', {}) is not None:
        record['test'] = dict(
            tta=False, partial_checkpoint=False, cfg_options={})
        record['test'].update(test)
    path = work_dir / f'eval_{timestamp}.json'
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def two_work_dirs(tmp_path):
    cfgs = tmp_path / 'configs'
    cfgs.mkdir()
    fpn = cfgs / 'fpn_vvt-x_1xb2-4_demo-64x64.py'
    write_tiny_config(
        fpn,
        num_classes=5,
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=4, val_interval=4))
    uper = cfgs / 'upernet_vvt-x_1xb2-8_demo-64x96.py'
    write_tiny_config(
        uper,
        num_classes=5,
        decode_head='uper',
        auxiliary_head=True,
        crop_size=(64, 96),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=8, val_interval=8))
    wd1, wd2 = tmp_path / 'work' / 'fpn', tmp_path / 'work' / 'uper'
    _eval_json(wd1, fpn, 12.3456, '20261125_170000')
    _eval_json(wd2, uper, 7.5, '20261125_171500', checkpoint_iter=8)
    return tmp_path, fpn, uper, wd1, wd2


def _rows(table):
    lines = [ln for ln in table.strip().splitlines()]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    rows = [[c.strip() for c in ln.strip('|').split('|')] for ln in lines[2:]]
    return header, [dict(zip(header, r)) for r in rows]


def _params(cfg_path, drop_aux=True):
    from mmseg_vvt.utils.complexity import build_segmentor
    model = build_segmentor(str(cfg_path))
    if drop_aux:
        model.auxiliary_head = None
    return sum(p.numel() for p in model.parameters())


def test_two_results_become_two_rows(tool, two_work_dirs, capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    out = root / 'results.md'
    assert tool.main([str(wd1), str(wd2), '--out', str(out)]) == 0
    header, rows = _rows(out.read_text())
    assert header == [
        'Method', 'Backbone', 'Crop Size', 'Lr schd', 'Params (M)', 'GFLOPs',
        'mIoU', 'config'
    ]
    assert len(rows) == 2
    r1, r2 = rows
    assert (r1['Method'], r1['Crop Size'], r1['Lr schd'], r1['mIoU']) == \
        ('Semantic FPN', '64x64', '4', '12.35')
    assert (r2['Method'], r2['Crop Size'], r2['Lr schd'], r2['mIoU']) == \
        ('UPerNet', '64x96', '8', '7.50')
    assert r1['Backbone'].startswith('VVT (custom')
    assert r1['config'] == f'[{fpn.stem}]({fpn.as_posix()})'
    assert r2['config'] == f'[{uper.stem}]({uper.as_posix()})'
    # params exclude the auxiliary head, as counted at inference
    assert r1['Params (M)'] == fmt_number(_params(fpn) / 1e6)
    assert r2['Params (M)'] == fmt_number(_params(uper) / 1e6)
    assert _params(uper) < _params(uper, drop_aux=False)
    # FLOPs of one image of each config's own crop size
    from mmseg_vvt.utils.complexity import segmentor_complexity
    assert r1['GFLOPs'] == fmt_number(
        segmentor_complexity(str(fpn), shape=(64, 64))['flops'] / 1e9)
    assert r2['GFLOPs'] == fmt_number(
        segmentor_complexity(str(uper), shape=(64, 96))['flops'] / 1e9)
    # same backbone, UPerNet head at a larger crop costs more than FPN
    assert float(r2['GFLOPs']) > float(r1['GFLOPs'])


def test_no_flops_prints_table_and_notes_older_results(tool, two_work_dirs,
                                                       capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    _eval_json(wd1, fpn, 20.0, '20261125_180000')  # newer run of wd1
    assert tool.main([str(wd1), str(wd2), '--no-flops']) == 0
    captured = capsys.readouterr()
    _, rows = _rows(captured.out)
    assert [r['mIoU'] for r in rows] == ['20.00', '7.50']
    assert all(r['GFLOPs'] == '-' for r in rows)
    assert 'eval_20261125_170000.json' in captured.err  # not silently left

    assert tool.main([str(wd1), str(wd2), '--no-flops', '--all']) == 0
    _, rows = _rows(capsys.readouterr().out)
    assert [r['mIoU'] for r in rows] == ['12.35', '20.00', '7.50']


def test_dataset_column_when_datasets_differ(tool, two_work_dirs, capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    wd3 = root / 'work' / 'demo'
    _eval_json(wd3, fpn, 60.0, '20261125_170000', dataset='DemoDataset')
    assert tool.main([str(wd1), str(wd3), '--no-flops']) == 0
    header, rows = _rows(capsys.readouterr().out)
    assert 'Dataset' in header
    assert [r['Dataset'] for r in rows] == ['ADE20KDataset', 'DemoDataset']


def test_work_dir_without_results_is_a_clear_error(tool, two_work_dirs,
                                                   capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    empty = root / 'work' / 'empty'
    empty.mkdir()
    assert tool.main([str(wd1), str(empty), '--no-flops']) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and 'no results' in err
    assert tool.main([str(root / 'missing'), '--no-flops']) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_bad_json_and_missing_config_are_named(tool, two_work_dirs, capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    bad = root / 'work' / 'bad'
    bad.mkdir()
    (bad / 'eval_1.json').write_text('{"config": "x.py"}')
    assert tool.main([str(bad), '--no-flops']) == 2
    assert 'eval_1.json' in capsys.readouterr().err

    gone = root / 'work' / 'gone'
    _eval_json(gone, root / 'nowhere' / 'cfg.py', 1.0, '20261125_170000')
    assert tool.main([str(gone), '--no-flops']) == 2
    assert 'cfg.py' in capsys.readouterr().err


def test_refuses_to_overwrite_out(tool, two_work_dirs, capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    out = root / 'table.md'
    out.write_text('keep me')
    assert tool.main([str(wd1), '--no-flops', '--out', str(out)]) == 2
    assert out.read_text() == 'keep me'
    assert tool.main(
        [str(wd1), '--no-flops', '--out',
         str(out), '--overwrite']) == 0
    assert 'Semantic FPN' in out.read_text()


def test_tta_result_goes_into_the_ms_flip_column(tool, two_work_dirs, capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    _eval_json(wd1, fpn, 14.0, '20261125_180000', tta=True)
    assert tool.main([str(wd1), str(wd2), '--no-flops']) == 0
    captured = capsys.readouterr()
    header, rows = _rows(captured.out)
    assert header[-3:] == ['mIoU', 'mIoU(ms+flip)', 'config']
    # the single-scale and the --tta result of wd1 share its row
    assert [(r['mIoU'], r['mIoU(ms+flip)']) for r in rows] == \
        [('12.35', '14.00'), ('7.50', '-')]
    assert 'note' not in captured.err  # nothing left out

    # a newer single-scale result replaces the older, and says so
    _eval_json(wd1, fpn, 13.0, '20261125_190000')
    assert tool.main([str(wd1), '--no-flops']) == 0
    captured = capsys.readouterr()
    _, rows = _rows(captured.out)
    assert [(r['mIoU'], r['mIoU(ms+flip)']) for r in rows] == \
        [('13.00', '14.00')]
    assert 'eval_20261125_170000.json' in captured.err

    # --all: a row per file, each in its own column
    assert tool.main([str(wd1), '--no-flops', '--all']) == 0
    _, rows = _rows(capsys.readouterr().out)
    assert [(r['mIoU'], r['mIoU(ms+flip)']) for r in rows] == \
        [('12.35', '-'), ('-', '14.00'), ('13.00', '-')]


def test_tta_result_of_another_checkpoint_gets_its_own_row(
        tool, two_work_dirs, capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    path = _eval_json(wd1, fpn, 14.0, '20261125_180000', tta=True)
    record = json.loads(path.read_text())
    record['checkpoint'] = str(wd1 / 'iter_2.pth')
    path.write_text(json.dumps(record))
    assert tool.main([str(wd1), '--no-flops']) == 0
    _, rows = _rows(capsys.readouterr().out)
    assert [(r['mIoU'], r['mIoU(ms+flip)']) for r in rows] == \
        [('12.35', '-'), ('-', '14.00')]


def test_test_record_that_is_not_an_object_is_named(tool, two_work_dirs,
                                                    capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    path = _eval_json(wd1, fpn, 14.0, '20261125_180000')
    record = json.loads(path.read_text())
    record['test'] = [True]
    path.write_text(json.dumps(record))
    assert tool.main([str(wd1), '--no-flops']) == 2
    err = capsys.readouterr().err
    assert path.name in err and '"test" is a list' in err


def test_no_ms_flip_column_without_tta_results(tool, two_work_dirs, capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    assert tool.main([str(wd1), str(wd2), '--no-flops']) == 0
    header, _ = _rows(capsys.readouterr().out)
    assert 'mIoU(ms+flip)' not in header


def _notes(table):
    return [ln for ln in table.splitlines() if ln.startswith('- (')]


def test_results_that_are_not_plain_tests_are_marked(tool, two_work_dirs,
                                                     capsys):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    wd3, wd4 = root / 'work' / 'partial', root / 'work' / 'old'
    _eval_json(
        wd1,
        fpn,
        20.0,
        '20261125_180000',
        cfg_options={'model.test_cfg.mode': 'slide'})
    _eval_json(wd2, uper, 8.0, '20261125_180000', partial_checkpoint=True)
    _eval_json(wd3, uper, 9.0, '20261125_180000', partial_checkpoint=True)
    _eval_json(
        wd4, fpn, 10.0, '20261125_180000', test=None, checkpoint_iter=ABSENT)
    assert tool.main([str(d)
                      for d in (wd1, wd2, wd3, wd4)] + ['--no-flops']) == 0
    table = capsys.readouterr().out
    _, rows = _rows(table.split('\n\n')[0])
    # the same note, the same number
    assert [r['mIoU'] for r in rows] == \
        ['20.00 (1)', '8.00 (2)', '9.00 (2)', '10.00 (4)']
    # an old file does not say how far its checkpoint was trained either
    assert [r['Lr schd']
            for r in rows] == ['4', '4 (of 8)', '4 (of 8)', '4 (3)']
    notes = _notes(table)
    assert len(notes) == 4
    assert notes[0] == ('- (1) tested with --cfg-options '
                        'model.test_cfg.mode=slide')
    assert notes[1].startswith('- (2) from a partially loaded checkpoint')
    assert notes[2].startswith("- (3) Lr schd: the config's schedule")
    assert notes[3].startswith('- (4) from an eval JSON without the "test"')
    # a plain test has no mark and no note
    assert tool.main([str(wd1), '--no-flops', '--all']) == 0
    table = capsys.readouterr().out
    _, rows = _rows(table.split('\n\n')[0])
    assert [r['mIoU'] for r in rows] == ['12.35', '20.00 (1)']
    assert len(_notes(table)) == 1


def test_lr_schd_is_the_iteration_the_checkpoint_reached(
        tool, two_work_dirs, capsys):
    """A 2-iteration checkpoint of a 4-iteration config is not tabled as
    trained for 4 iterations; an unknown iteration is marked."""
    root, fpn, uper, wd1, wd2 = two_work_dirs
    early, unknown, old = (
        root / 'work' / n for n in ('early', 'unknown', 'old'))
    _eval_json(early, fpn, 3.0, '20261125_180000', checkpoint_iter=2)
    _eval_json(unknown, fpn, 4.0, '20261125_180000', checkpoint_iter=None)
    _eval_json(old, uper, 5.0, '20261125_180000', checkpoint_iter=ABSENT)
    assert tool.main([str(d) for d in (wd1, early, unknown, old)] +
                     ['--no-flops']) == 0
    table = capsys.readouterr().out
    _, rows = _rows(table.split('\n\n')[0])
    assert [r['Lr schd'] for r in rows] == ['4', '2 (of 4)', '4 (1)', '8 (1)']
    (note, ) = _notes(table)
    assert note.startswith("- (1) Lr schd: the config's schedule; the "
                           'iteration the tested checkpoint reached is '
                           'unknown')


def test_lr_schd_of_an_epoch_based_config(tool, tmp_path, capsys):
    cfg = tmp_path / 'fpn_epochs.py'
    write_tiny_config(
        cfg,
        num_classes=5,
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=12))
    done, early = tmp_path / 'done', tmp_path / 'early'
    _eval_json(
        done,
        cfg,
        1.0,
        '20261125_180000',
        checkpoint_iter=96,
        checkpoint_epoch=12)
    _eval_json(
        early,
        cfg,
        1.0,
        '20261125_180000',
        checkpoint_iter=24,
        checkpoint_epoch=3)
    assert tool.main([str(done), str(early), '--no-flops']) == 0
    _, rows = _rows(capsys.readouterr().out)
    assert [r['Lr schd'] for r in rows] == ['12 epochs', '3 epochs (of 12)']


@pytest.mark.parametrize('value', ['2', -1, True, 2.5])
def test_bad_checkpoint_iter_is_named(tool, two_work_dirs, capsys, value):
    root, fpn, uper, wd1, wd2 = two_work_dirs
    path = _eval_json(wd1, fpn, 14.0, '20261125_180000')
    record = json.loads(path.read_text())
    record['checkpoint_iter'] = value
    path.write_text(json.dumps(record))
    assert tool.main([str(wd1), '--no-flops']) == 2
    err = capsys.readouterr().err
    assert path.name in err and '"checkpoint_iter" is' in err


def test_describe_config_names_the_backbone_that_is_built():
    from mmengine.config import Config

    from mmseg_vvt.apis.results import describe_config

    def backbone(**bb):
        cfg = Config(
            dict(
                model=dict(
                    backbone=dict(type='VVT', **bb),
                    decode_head=dict(type='FPNHead'))))
        return describe_config(cfg)['backbone']

    # without arch, VVT builds its default, VVT-S (was: named VVT-T)
    assert backbone() == 'VVT-S'
    assert backbone(arch='tiny') == 'VVT-T'
    assert backbone(arch='l') == 'VVT-L'


@pytest.mark.parametrize('shape', [['0', '4'], ['4', '0']])
def test_collect_results_refuses_a_zero_shape(shape, capsys):
    # kills collect_results.py `min(args.shape) < 1` -> `< 0`
    from tool_modules import load_tool
    tool = load_tool('collect_results')
    with pytest.raises(SystemExit):
        tool.parse_args(['wd', '--shape', *shape])
    assert '--shape must be positive' in capsys.readouterr().err


def test_lr_schd_of_a_checkpoint_past_its_config_schedule():
    # kills results.py `reached == planned` -> `>=`: a checkpoint trained
    # further than its config says (a schedule shortened afterwards) is not
    # the config's schedule
    from pathlib import Path

    from mmseg_vvt.apis.results import EvalResult, schedule_cell
    info = dict(max_iters=400, max_epochs=None)
    notes = []
    for reached, cell in ((400, '400'), (2, '2 (of 400)'), (800,
                                                            '800 (of 400)')):
        result = EvalResult(
            Path('e.json'), Path('wd'), dict(checkpoint_iter=reached))
        assert schedule_cell(info, result, notes) == cell
    assert notes == []


def test_a_cascade_is_named_after_its_last_decode_head():
    # kills results.py `head = head[-1]` -> `head[0]` (OCRNet's first head is
    # an FCNHead)
    from mmseg_vvt.apis.results import describe_config
    cfg = Config(
        dict(
            model=dict(
                type='CascadeEncoderDecoder',
                backbone=dict(type='VVT', arch='tiny'),
                decode_head=[dict(type='FCNHead'),
                             dict(type='OCRHead')])))
    info = describe_config(cfg)
    assert (info['method'], info['backbone']) == ('OCRNet', 'VVT-T')


def test_the_config_the_runner_dumped_into_the_work_dir_is_found(tmp_path):
    # kills results.py dropping `work_dir / recorded.name` from the
    # candidates (a result copied off the machine that made it: its
    # recorded path is gone, the runner's dump is in the work dir)
    from mmseg_vvt.apis.results import EvalResult, resolve_config_path
    (tmp_path / 'fpn_vvt-t.py').write_text('model = dict()\n')
    result = EvalResult(tmp_path / 'eval_1.json', tmp_path,
                        dict(config='/nowhere/configs/vvt/fpn_vvt-t.py'))
    assert resolve_config_path(result) == tmp_path / 'fpn_vvt-t.py'


def test_merged_rows_keep_two_results_of_one_kind_apart(tmp_path, monkeypatch):
    # kills results.py `if row is None or row[column] != '-'` -> `if row is
    # None`: a second single-scale result of the same work dir, config and
    # checkpoint (the work dir given twice) would overwrite the first's mIoU
    from mmseg_vvt.apis import results as R
    monkeypatch.setattr(R, 'complexity', lambda *a: (1_000_000, None))
    (tmp_path /
     'c.py').write_text("model = dict(decode_head=dict(type='FPNHead'))\n")

    def res(miou):
        return R.EvalResult(
            tmp_path / 'eval.json', tmp_path,
            dict(
                config=str(tmp_path / 'c.py'),
                checkpoint='x.pth',
                metrics=dict(mIoU=miou),
                test=dict(tta=False)))

    rows = R.build_rows([res(40.0), res(41.0)], flops=False, merge=True)
    assert [r['miou'] for r in rows] == ['40.00', '41.00']


def test_fmt_number_at_one():
    # kills results.py `abs(value) >= 1` -> `> 1` (1.0 printed as '1')
    from mmseg_vvt.apis.results import fmt_number
    assert [fmt_number(v)
            for v in (1.0, 12.345, 0.0123)] == ['1.00', '12.35', '0.0123']
