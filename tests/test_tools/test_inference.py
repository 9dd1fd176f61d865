"""End-to-end tests of tools/inference.py on a tiny VVT + Semantic FPN model
(CPU, images of a few dozen pixels)."""

import cv2
import numpy as np
import pytest
import torch
from tool_modules import load_tool

from mmseg_vvt.testing import write_tiny_config

NUM_CLASSES = 5
CLASSES = ('sky', 'tree', 'road', 'car', 'person')
PALETTE = [[10, 20, 30], [200, 10, 10], [10, 200, 10], [10, 10, 200],
           [240, 240, 0]]


@pytest.fixture(scope='module')
def tool():
    return load_tool('inference')


def _tiny_model(root, decode_head='fpn'):
    """(config path, checkpoint path, the in-memory model it was saved
    from)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import save_checkpoint
    from mmseg.registry import MODELS

    import mmseg_vvt  # noqa: F401

    cfg_path = root / f'{decode_head}_vvt-tiny-test.py'
    write_tiny_config(
        cfg_path,
        num_classes=NUM_CLASSES,
        decode_head=decode_head,
        test_pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='PackSegInputs')
        ])
    cfg = Config.fromfile(str(cfg_path))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    # a random head gives near-uniform logits; scale the classifier so the
    # prediction varies over the image and label comparisons mean something
    heads = model.decode_head
    with torch.no_grad():
        for head in heads if isinstance(heads,
                                        torch.nn.ModuleList) else [heads]:
            head.conv_seg.weight.mul_(20)
    model.eval()
    ckpt_path = root / 'tiny.pth'
    save_checkpoint(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=CLASSES, palette=PALETTE))),
        str(ckpt_path))
    model.cfg = cfg
    return cfg_path, ckpt_path, model


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    return _tiny_model(tmp_path_factory.mktemp('tiny_model'))


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def _images(folder):
    rng = np.random.RandomState(0)
    return {
        'odd':
        _write(folder / 'odd.jpg', rng.randint(0, 256, (45, 67, 3), np.uint8)),
        'gray':
        _write(folder / 'gray.png', rng.randint(0, 256, (33, 50), np.uint8)),
        'rgba':
        _write(folder / 'rgba.png', rng.randint(0, 256, (40, 37, 4),
                                                np.uint8)),
        'gray16':
        _write(folder / 'gray16.png', rng.randint(0, 65536, (29, 31),
                                                  np.uint16)),
        'bgr16':
        _write(folder / 'bgr16.tif',
               rng.randint(0, 65536, (27, 35, 3), np.uint16)),
    }


def _run(tool, tiny_model, inputs, out_dir, *extra):
    cfg_path, ckpt_path, _ = tiny_model
    argv = [
        str(cfg_path),
        str(ckpt_path), *map(str, inputs), '--out-dir',
        str(out_dir), '--device', 'cpu', *extra
    ]
    return tool.main(argv)


def test_odd_sizes_gray_rgba_16bit_write_correct_pngs(tool, tiny_model,
                                                      tmp_path, capsys):
    imgs = _images(tmp_path / 'in')
    out = tmp_path / 'out'
    assert _run(tool, tiny_model, [tmp_path / 'in'], out, '--batch-size',
                '2') == 0
    printed = capsys.readouterr().out
    assert 'classes/palette from checkpoint meta' in printed
    for name, path in imgs.items():
        src = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        h, w = src.shape[:2]
        label = cv2.imread(
            str(out / 'labels' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(
            str(out / 'overlays' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert label is not None and overlay is not None, name
        assert label.shape == (h, w) and label.dtype == np.uint8, name
        assert label.max() < NUM_CLASSES, name
        assert overlay.shape == (h, w, 3) and overlay.dtype == np.uint8, name


def test_labels_come_from_the_checkpoint(tool, tiny_model, tmp_path):
    """The label PNG equals the prediction of the model the checkpoint was
    saved from (so the weights were loaded, not freshly initialised) and
    the overlay uses the checkpoint's palette."""
    from mmseg.apis import inference_model
    _, _, model = tiny_model
    rng = np.random.RandomState(1)
    img = rng.randint(0, 256, (61, 53, 3), np.uint8)
    path = _write(tmp_path / 'a.png', img)
    out = tmp_path / 'out'
    assert _run(tool, tiny_model, [path], out) == 0
    expected = inference_model(model, img).pred_sem_seg.data[0].numpy()
    label = cv2.imread(str(out / 'labels' / 'a.png'), cv2.IMREAD_UNCHANGED)
    assert len(np.unique(expected)) > 1  # the comparison is not trivial
    np.testing.assert_array_equal(label, expected)

    overlay = cv2.imread(str(out / 'overlays' / 'a.png')).astype(np.float64)
    # overlay = 0.5 * image + 0.5 * palette colour (RGB palette, BGR file)
    colour_bgr = np.array(PALETTE)[label][..., ::-1]
    np.testing.assert_allclose(
        overlay, 0.5 * img + 0.5 * colour_bgr, atol=1.01)


def test_a_cascade_segmentor_checkpoint_is_inferred(tool, tmp_path):
    # OCRNet / PointRend (CascadeEncoderDecoder): decode_head is a
    # ModuleList, and reading its num_classes was an AttributeError
    from mmseg.apis import inference_model
    cascade = _tiny_model(tmp_path, 'ocr')
    model = cascade[2]
    assert isinstance(model.decode_head, torch.nn.ModuleList)
    img = np.random.RandomState(2).randint(0, 256, (37, 45, 3), np.uint8)
    path = _write(tmp_path / 'in' / 'a.png', img)
    assert _run(tool, cascade, [path], tmp_path / 'out', '--with-labels') == 0
    label = cv2.imread(
        str(tmp_path / 'out' / 'labels' / 'a.png'), cv2.IMREAD_UNCHANGED)
    expected = inference_model(model, img).pred_sem_seg.data[0].numpy()
    assert len(np.unique(expected)) > 1
    np.testing.assert_array_equal(label, expected)


def test_16bit_and_gray_inputs_match_their_8bit_colour_version(
        tool, tiny_model, tmp_path):
    """A 16-bit image is predicted as its v/257 8-bit version; a gray image
    as its 3-channel replica; an RGBA image as its colour channels."""
    rng = np.random.RandomState(2)
    img8 = rng.randint(0, 256, (38, 42, 3), np.uint8)
    gray8 = img8[:, :, 1].copy()
    inputs = [
        _write(tmp_path / 'in' / 'c8.png', img8),
        _write(tmp_path / 'in' / 'c16.png',
               img8.astype(np.uint16) * 257),
        _write(tmp_path / 'in' / 'rgba.png',
               np.dstack([img8, rng.randint(0, 256, (38, 42), np.uint8)])),
        _write(tmp_path / 'in' / 'g8.png', gray8),
        _write(tmp_path / 'in' / 'g3.png', np.dstack([gray8] * 3)),
    ]
    out = tmp_path / 'out'
    assert _run(tool, tiny_model, inputs, out, '--no-overlay') == 0
    read = {
        p.stem:
        cv2.imread(
            str(out / 'labels' / f'{p.stem}.png'), cv2.IMREAD_UNCHANGED)
        for p in inputs
    }
    np.testing.assert_array_equal(read['c16'], read['c8'])
    np.testing.assert_array_equal(read['rgba'], read['c8'])
    np.testing.assert_array_equal(read['g8'], read['g3'])
    assert not (out / 'overlays').exists()


def test_corrupt_file_is_reported_and_skipped(tool, tiny_model, tmp_path,
                                              capsys):
    folder = tmp_path / 'in'
    rng = np.random.RandomState(3)
    _write(folder / 'good1.png', rng.randint(0, 256, (30, 30, 3), np.uint8))
    _write(folder / 'good2.jpg', rng.randint(0, 256, (41, 23, 3), np.uint8))
    bad = folder / 'broken.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n this is not really a png')
    (folder / 'notes.txt').write_text('not an image')
    out = tmp_path / 'out'
    code = _run(tool, tiny_model, [folder], out, '--batch-size', '3')
    captured = capsys.readouterr()
    assert code == 1
    assert str(bad) in captured.err and 'cannot decode' in captured.err
    assert '1 image(s) failed' in captured.err
    assert 'ignoring' in captured.err and 'notes.txt' in captured.err
    assert 'wrote 2 of 3' in captured.out
    for name, shape in (('good1', (30, 30)), ('good2', (41, 23))):
        label = cv2.imread(
            str(out / 'labels' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert label.shape == shape
        assert (out / 'overlays' / f'{name}.png').is_file()
    assert not (out / 'labels' / 'broken.png').exists()


def test_refuses_to_overwrite_before_doing_work(tool, tiny_model, tmp_path,
                                                capsys):
    rng = np.random.RandomState(4)
    a = _write(tmp_path / 'in' / 'a.png',
               rng.randint(0, 256, (20, 24, 3), np.uint8))
    b = _write(tmp_path / 'in' / 'b.png',
               rng.randint(0, 256, (20, 24, 3), np.uint8))
    out = tmp_path / 'out'
    (out / 'labels').mkdir(parents=True)
    existing = out / 'labels' / 'b.png'
    existing.write_bytes(b'precious')
    code = _run(tool, tiny_model, [a, b], out)
    err = capsys.readouterr().err
    assert code == 2
    assert 'refusing to overwrite' in err and str(existing) in err
    assert existing.read_bytes() == b'precious'
    assert not (out / 'labels' / 'a.png').exists()  # nothing was done

    assert _run(tool, tiny_model, [a, b], out, '--overwrite') == 0
    label = cv2.imread(str(existing), cv2.IMREAD_UNCHANGED)
    assert label.shape == (20, 24)


def test_glob_input_and_missing_input(tool, tiny_model, tmp_path, capsys):
    rng = np.random.RandomState(5)
    for name in ('x1.png', 'x2.png', 'y.png'):
        _write(tmp_path / 'in' / name,
               rng.randint(0, 256, (16, 18, 3), np.uint8))
    out = tmp_path / 'out'
    assert _run(tool, tiny_model, [tmp_path / 'in' / 'x*.png'], out,
                '--with-labels', '--opacity', '0.8') == 0
    assert sorted(p.name
                  for p in (out / 'labels').iterdir()) == ['x1.png', 'x2.png']
    code = _run(tool, tiny_model, [tmp_path / 'nope' / '*.png'],
                tmp_path / 'out2')
    assert code == 2
    assert 'nope' in capsys.readouterr().err


def test_slide_and_whole_agree_on_an_image_within_one_window(tiny_model):
    """On an image no larger than the window, slide inference runs the one
    window that is the whole image: same logits, same labels as whole."""
    from mmseg.apis import inference_model

    from mmseg_vvt.apis import load_segmentor
    cfg_path, ckpt_path, _ = tiny_model
    whole, _ = load_segmentor(cfg_path, str(ckpt_path), mode='whole')
    slide, _ = load_segmentor(
        cfg_path,
        str(ckpt_path),
        mode='slide',
        crop_size=(64, 64),
        stride=(48, 48))
    assert whole.test_cfg.mode == 'whole'
    assert slide.test_cfg.mode == 'slide'
    assert tuple(slide.test_cfg.crop_size) == (64, 64)
    rng = np.random.RandomState(6)
    img = rng.randint(0, 256, (57, 49, 3), np.uint8)
    a = inference_model(whole, img)
    b = inference_model(slide, img)
    assert a.pred_sem_seg.shape == b.pred_sem_seg.shape == (57, 49)
    torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data)
    assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)
    assert len(torch.unique(a.pred_sem_seg.data)) > 1


def test_slide_mode_covers_an_image_larger_than_the_window(
        tool, tiny_model, tmp_path, capsys):
    """Several windows (odd size, so the last ones are shifted back): the
    label map still has the image's size, as with whole-image inference."""
    rng = np.random.RandomState(7)
    img = rng.randint(0, 256, (101, 75, 3), np.uint8)
    path = _write(tmp_path / 'big.png', img)
    assert _run(tool, tiny_model, [path], tmp_path / 'slide', '--mode',
                'slide', '--crop-size', '48', '--stride', '32') == 0
    assert 'slide (window (48, 48), stride (32, 32))' in \
        capsys.readouterr().out
    assert _run(tool, tiny_model, [path], tmp_path / 'whole', '--mode',
                'whole') == 0
    s = cv2.imread(
        str(tmp_path / 'slide' / 'labels' / 'big.png'), cv2.IMREAD_UNCHANGED)
    w = cv2.imread(
        str(tmp_path / 'whole' / 'labels' / 'big.png'), cv2.IMREAD_UNCHANGED)
    assert s.shape == w.shape == (101, 75)
    assert s.max() < NUM_CLASSES


class _RunsCode:
    """Unpickling this would create a directory (arbitrary code)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os
        return (os.makedirs, (self.path, ))


def test_malicious_checkpoint_is_refused(tool, tiny_model, tmp_path, capsys):
    """A checkpoint whose pickle would run code is refused by name, before
    anything is written, and the code does not run."""
    cfg_path, ckpt_path, _ = tiny_model
    target = tmp_path / 'created_by_unpickling'
    evil = tmp_path / 'evil.pth'
    ckpt = torch.load(ckpt_path, weights_only=True)
    ckpt['meta']['x'] = _RunsCode(str(target))
    torch.save(ckpt, evil)
    img = _write(tmp_path / 'a.png', np.zeros((8, 8, 3), np.uint8))
    code = tool.main([
        str(cfg_path),
        str(evil),
        str(img), '--out-dir',
        str(tmp_path / 'o'), '--device', 'cpu'
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert 'error: Refusing to load checkpoint' in err and str(evil) in err
    assert not target.exists()
    assert not (tmp_path / 'o').exists()


def test_bad_arguments_exit_2(tool, tiny_model, tmp_path, capsys):
    img = _write(tmp_path / 'a.png', np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as exc:
        _run(tool, tiny_model, [img], tmp_path / 'o', '--mode', 'whole',
             '--crop-size', '32')
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        _run(tool, tiny_model, [img], tmp_path / 'o', '--batch-size', '0')
    assert exc.value.code == 2
    for flag in ('--crop-size', '--stride'):  # named by the parser
        with pytest.raises(SystemExit) as exc:
            _run(tool, tiny_model, [img], tmp_path / 'o', '--mode', 'slide',
                 flag, '0')
        assert exc.value.code == 2
        assert f'argument {flag}: expected an integer >= 1' in \
            capsys.readouterr().err
    if not torch.cuda.is_available():
        assert _run(tool, tiny_model, [img], tmp_path / 'o', '--device',
                    'cuda') == 2
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('with_labels', [False, True])
def test_every_size_from_1x1_works(tool, tiny_model, tmp_path, with_labels):
    """1x1, 1xN and Nx1 images (mmseg's visualizer failed on them) give a
    label map and an overlay of the image's size."""
    rng = np.random.RandomState(8)
    shapes = {
        'p1x1': (1, 1),
        'row1x9': (1, 9),
        'col7x1': (7, 1),
        'p2x2': (2, 2)
    }
    folder = tmp_path / 'in'
    for name, shape in shapes.items():
        _write(folder / f'{name}.png',
               rng.randint(0, 256, shape + (3, ), np.uint8))
    out = tmp_path / 'out'
    extra = ['--with-labels'] if with_labels else []
    assert _run(tool, tiny_model, [folder], out, *extra) == 0
    for name, shape in shapes.items():
        label = cv2.imread(
            str(out / 'labels' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(
            str(out / 'overlays' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert label.shape == shape and label.max() < NUM_CLASSES, name
        assert overlay.shape == shape + (3, ), name


def test_a_failed_image_leaves_no_partial_output(tool, tiny_model, tmp_path,
                                                 monkeypatch, capsys):
    """When the overlay of an image fails, its label PNG (written first)
    is not left behind, so a rerun without --overwrite is not refused; the
    other images are written."""
    from mmseg_vvt.apis import VVTSegInferencer
    rng = np.random.RandomState(9)
    good = _write(tmp_path / 'in' / 'good.png',
                  rng.randint(0, 256, (12, 14, 3), np.uint8))
    bad = _write(tmp_path / 'in' / 'bad.png',
                 rng.randint(0, 256, (13, 14, 3), np.uint8))
    overlay = VVTSegInferencer.overlay

    def failing_overlay(self, image, pred, *args, **kwargs):
        if image.shape[:2] == (13, 14):  # 'bad'
            raise IndexError('drawing failed')
        return overlay(self, image, pred, *args, **kwargs)

    monkeypatch.setattr(VVTSegInferencer, 'overlay', failing_overlay)
    out = tmp_path / 'out'
    assert _run(tool, tiny_model, [bad, good], out) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and 'IndexError: drawing failed' in err
    assert sorted(p.name for p in (out / 'labels').iterdir()) == ['good.png']
    assert sorted(p.name for p in (out / 'overlays').iterdir()) == ['good.png']
    monkeypatch.setattr(VVTSegInferencer, 'overlay', overlay)
    assert _run(tool, tiny_model, [bad], out) == 0  # not refused
    assert (out / 'labels' / 'bad.png').is_file()


# ---------------------------------------------------------------------------
# mistakes a user makes: refused early (exit 2, one error line, nothing
# written, no model built), or handled
# ---------------------------------------------------------------------------
@pytest.fixture
def no_build(monkeypatch):
    """Building the model fails the test: the refusal came before it."""
    import mmseg_vvt.apis

    def built(*args, **kwargs):
        raise AssertionError('the model was built before the refusal')

    monkeypatch.setattr(mmseg_vvt.apis, 'VVTSegInferencer', built)


def _refused(tool, argv, capsys):
    """The exit status of ``main(argv)`` is 2; returns its stderr."""
    assert tool.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'Traceback' not in err, err
    return err


DEMO_CLASSES = ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling')


@pytest.fixture(scope='module')
def demo_like_model(tmp_path_factory):
    """A 6-class tiny model whose config names 6 of ADE20K's classes
    (``metainfo``, as configs/vvt_fpn_demo.py), with checkpoints that have
    no ``meta``: ``(config, {kind: checkpoint path})``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_vvt  # noqa: F401

    root = tmp_path_factory.mktemp('demo_like')
    cfg_path = write_tiny_config(
        root / 'demo_like.py',
        num_classes=len(DEMO_CLASSES),
        test_pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='PackSegInputs')
        ],
        test_dataloader=dict(
            dataset=dict(
                type='ADE20KDataset', metainfo=dict(classes=DEMO_CLASSES))))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(cfg_path).model)
    model.init_weights()
    with torch.no_grad():  # labels that vary over the image, as tiny_model
        model.decode_head.conv_seg.weight.mul_(20)
    paths = dict(bare=root / 'bare.pth', state_dict=root / 'state_dict.pth')
    torch.save(model.state_dict(), paths['bare'])
    torch.save(dict(state_dict=model.state_dict()), paths['state_dict'])
    return cfg_path, paths


@pytest.mark.parametrize('kind', ['bare', 'state_dict'])
def test_checkpoint_without_meta_draws_in_the_configs_colours(
        tool, demo_like_model, tmp_path, capsys, kind):
    """No ``meta`` in the checkpoint: classes from the config's test
    dataset (6 of ADE20K's 150), each in its ADE20K colour (the 150-colour
    palette with 6 classes crashed mmseg's visualizer)."""
    from mmseg.utils import get_classes, get_palette
    cfg_path, paths = demo_like_model
    img = np.random.RandomState(10).randint(0, 256, (26, 31, 3), np.uint8)
    path = _write(tmp_path / 'a.png', img)
    out = tmp_path / 'out'
    assert tool.main([
        cfg_path,
        str(paths[kind]),
        str(path), '--out-dir',
        str(out), '--device', 'cpu'
    ]) == 0
    assert 'classes/palette from config test dataset (ADE20KDataset)' in \
        capsys.readouterr().out
    label = cv2.imread(str(out / 'labels' / 'a.png'), cv2.IMREAD_UNCHANGED)
    assert label.shape == (26, 31) and label.max() < len(DEMO_CLASSES)
    ade = get_classes('ade20k')
    palette = np.array(
        [get_palette('ade20k')[ade.index(c)] for c in DEMO_CLASSES])
    overlay = cv2.imread(str(out / 'overlays' / 'a.png')).astype(np.float64)
    np.testing.assert_allclose(
        overlay, 0.5 * img + 0.5 * palette[label][..., ::-1], atol=1.01)


def test_misfit_checkpoint_needs_allow_partial_checkpoint(
        tool, tiny_model, tmp_path, capsys, monkeypatch):
    """The refusal names the flag that allows the load; the tool has it, and
    the partial load is reported once."""
    import mmengine.runner.checkpoint as mme_checkpoint

    import mmseg_vvt.engine.checkpoint as our_checkpoint
    logged = []

    def print_log(msg, logger=None, level=None):
        if logger != 'silent':  # mmengine prints nothing then
            logged.append(str(msg))

    for module in (mme_checkpoint, our_checkpoint):
        monkeypatch.setattr(module, 'print_log', print_log)
    cfg_path, ckpt_path, _ = tiny_model
    ckpt = torch.load(ckpt_path, weights_only=True)
    del ckpt['state_dict']['decode_head.conv_seg.bias']
    misfit = tmp_path / 'misfit.pth'
    torch.save(ckpt, misfit)
    img = _write(tmp_path / 'a.png', np.zeros((9, 11, 3), np.uint8))
    out = tmp_path / 'out'
    argv = [cfg_path, misfit, img, '--out-dir', out, '--device', 'cpu']
    err = _refused(tool, argv, capsys)
    assert str(misfit) in err and '--allow-partial-checkpoint' in err
    assert not out.exists()

    logged.clear()
    assert tool.main([str(a)
                      for a in argv] + ['--allow-partial-checkpoint']) == 0
    # the misfit is named once (was three times: our warning, mmengine's
    # report, the tool's stderr line); stderr says that the load was partial
    err = capsys.readouterr().err
    reports = [m for m in logged + [err] if 'decode_head.conv_seg.bias' in m]
    assert len(reports) == 1, reports
    assert reports[0].startswith('Partial load asked for')
    assert 'warning: partial load (--allow-partial-checkpoint)' in err
    assert (out / 'labels' / 'a.png').is_file()
    assert (out / 'overlays' / 'a.png').is_file()


@pytest.mark.parametrize('where', ['is_a_file', 'under_a_file'])
def test_out_dir_that_is_a_file_is_refused_before_building(
        tool, tiny_model, tmp_path, capsys, no_build, where):
    cfg_path, ckpt_path, _ = tiny_model
    img = _write(tmp_path / 'a.png', np.zeros((8, 8, 3), np.uint8))
    a_file = tmp_path / 'results'
    a_file.write_text('keep me')
    out = a_file if where == 'is_a_file' else a_file / 'sub'
    err = _refused(
        tool, [cfg_path, ckpt_path, img, '--out-dir', out, '--device', 'cpu'],
        capsys)
    assert '--out-dir' in err and 'is a file' in err
    assert a_file.read_text() == 'keep me'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.png', 'results']


@pytest.mark.parametrize('device', ['banana', 'meta'])
def test_bad_device_is_refused_before_building(tool, tiny_model, tmp_path,
                                               capsys, no_build, device):
    img = _write(tmp_path / 'a.png', np.zeros((8, 8, 3), np.uint8))
    cfg_path, ckpt_path, _ = tiny_model
    err = _refused(tool, [
        cfg_path, ckpt_path, img, '--out-dir', tmp_path / 'o', '--device',
        device
    ], capsys)
    assert f'--device {device!r}' in err
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize(
    'name, text, expected',
    [('syntax.py', 'model = dict(\n', 'cannot be read'),
     ('no_model.py', 'crop_size = (64, 64)\n', 'has no model entry'),
     ('notes.txt', 'model = 1\n', 'cannot be read')])
def test_config_that_is_not_a_config_is_refused(tool, tiny_model, tmp_path,
                                                capsys, no_build, name, text,
                                                expected):
    _, ckpt_path, _ = tiny_model
    cfg = tmp_path / name
    cfg.write_text(text)
    img = _write(tmp_path / 'a.png', np.zeros((8, 8, 3), np.uint8))
    err = _refused(
        tool,
        [cfg, ckpt_path, img, '--out-dir', tmp_path / 'o', '--device', 'cpu'],
        capsys)
    assert str(cfg) in err and expected in err
    assert not (tmp_path / 'o').exists()


def test_with_labels_without_overlay_is_refused(tool, tiny_model, tmp_path,
                                                capsys):
    img = _write(tmp_path / 'a.png', np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as exc:
        _run(tool, tiny_model, [img], tmp_path / 'o', '--no-overlay',
             '--with-labels')
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert '--with-labels' in err and '--no-overlay' in err
    assert not (tmp_path / 'o').exists()


def test_opacity_without_overlay_is_refused(tool, tiny_model, tmp_path,
                                            capsys):
    img = _write(tmp_path / 'a.png', np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as exc:
        _run(tool, tiny_model, [img], tmp_path / 'o', '--no-overlay',
             '--opacity', '0.3')
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert '--opacity' in err and '--no-overlay' in err
    assert not (tmp_path / 'o').exists()


def test_a_folder_given_as_checkpoint_is_named_as_one(tool, tiny_model,
                                                      tmp_path, capsys,
                                                      no_build):
    cfg_path, _, _ = tiny_model
    img = _write(tmp_path / 'a.png', np.zeros((8, 8, 3), np.uint8))
    err = _refused(tool,
                   [cfg_path, tmp_path, img, '--out-dir', tmp_path / 'o'],
                   capsys)
    assert f'checkpoint {tmp_path} is a folder' in err


@pytest.mark.parametrize('extra, message', [
    (['--opacity', '0'], '--opacity must be in (0, 1]'),
    (['--mode', 'slide', '--crop-size', '1', '2', '3'
      ], '--crop-size takes 1 or 2 integers'),
    (['--mode', 'slide', '--stride', '1', '2', '3'
      ], '--stride takes 1 or 2 integers'),
])
def test_inference_parse_args_refuses(extra, message, capsys):
    # kills tools/inference.py `not 0 < args.opacity` -> `not 0 <=`, and
    # `len(val) not in (1, 2)` -> `(1, 2, 3)`
    from tool_modules import load_tool
    tool = load_tool('inference')
    with pytest.raises(SystemExit):
        tool.parse_args(['c.py', 'x.pth', 'in.png', '--out-dir', 'o'] + extra)
    assert message in capsys.readouterr().err
