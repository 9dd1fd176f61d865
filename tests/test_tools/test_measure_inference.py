"""tools/measure_inference.py: time and peak memory of one inference."""
import pytest
from analysis_tools.inference_cost import measure_inference
from tool_modules import assert_refused, load_tool

from mmseg_vvt.testing import write_tiny_config

main = load_tool('measure_inference').main


@pytest.fixture
def tiny_config(tmp_path):
    """A tiny VVT + FPN config whose test pipeline resizes to 48x48 and
    loads annotations (as the repository's ADE20K configs do)."""
    return write_tiny_config(
        tmp_path / 'tiny_fpn_vvt.py',
        num_classes=3,
        crop_size=(32, 32),
        test_pipeline=[
            dict(type='CheckedLoadImageFromFile'),
            dict(type='Resize', scale=(48, 48), keep_ratio=True),
            dict(type='CheckedLoadAnnotations', reduce_zero_label=True),
            dict(type='PackSegInputs')
        ])


def test_whole_and_slide_at_native_resolution(tiny_config):
    whole = measure_inference(str(tiny_config), 'whole', shape=(70, 90))
    # the pipeline's Resize (to 48x48) is dropped: the prediction has the
    # image's own size
    assert whole['output_shape'] == [70, 90]
    assert whole['mode'] == 'whole' and whole['crop_size'] is None
    slide = measure_inference(
        str(tiny_config),
        'slide',
        shape=(70, 90),
        crop_size=(32, 32),
        stride=(20, 20))
    assert slide['output_shape'] == [70, 90]
    assert (slide['mode'], slide['crop_size'], slide['stride']) == \
        ('slide', [32, 32], [20, 20])
    for res in (whole, slide):
        assert res['seconds'] > 0
        assert res['peak_rss_bytes'] >= res['baseline_rss_bytes'] > 0
        extra = res['peak_rss_bytes'] - res['baseline_rss_bytes']
        assert res['peak_increase_mib'] == round(extra / 2**20, 1)


def test_command_line_prints_json(tiny_config, capsys):
    import json
    res = main([
        str(tiny_config), '--mode', 'slide', '--shape', '40', '33',
        '--crop-size', '32', '32', '--no-warmup'
    ])
    printed = json.loads(capsys.readouterr().out)
    assert printed == res
    assert printed['output_shape'] == [40, 33]
    assert printed['stride'] == [21, 21]  # two thirds of the window


@pytest.mark.parametrize('argv, message', [
    (['--shape', '0', '64'], 'argument --shape: expected an integer >= 1'),
    (['--crop-size', '32', '-1'], 'argument --crop-size'),
    (['--cfg-is-bad'], 'has no model entry'),
])
def test_bad_arguments_are_refused_before_measuring(tmp_path, capsys, argv,
                                                    message):
    config = tmp_path / 'no_model.py'
    config.write_text('a = 1\n')
    if argv == ['--cfg-is-bad']:
        argv = []
    else:
        config.write_text('model = dict(type="EncoderDecoder")\n')
    with pytest.raises(SystemExit) as exit_:
        main([str(config), '--mode', 'whole'] + argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_window_and_checkpoint_mistakes_are_one_line(tiny_config, tmp_path,
                                                     capsys):
    import torch

    from mmseg_vvt.utils.complexity import build_segmentor
    cases = [
        (['--mode', 'whole', '--crop-size', '16',
          '16'], 'only apply to slide mode'),
        ([
            '--mode', 'slide', '--crop-size', '16', '16', '--stride', '32',
            '32'
        ], 'larger than the window'),
        (['--mode', 'whole', '--checkpoint',
          str(tmp_path / 'nope.pth')], 'nope.pth: does not exist'),
        (['--mode', 'whole', '--checkpoint',
          str(tmp_path)], 'is a folder'),
    ]
    assert_refused(lambda argv: main([str(tiny_config)] + argv), cases, capsys)

    # a checkpoint of another model: refused, naming the flag this tool has
    sd = build_segmentor(str(tiny_config)).state_dict()
    del sd['decode_head.conv_seg.bias']
    misfit = tmp_path / 'misfit.pth'
    torch.save({'state_dict': sd}, misfit)
    argv = [
        str(tiny_config), '--mode', 'whole', '--shape', '40', '33',
        '--no-warmup', '--checkpoint',
        str(misfit)
    ]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and '--allow-partial-checkpoint' in err
    assert main(argv + ['--allow-partial-checkpoint'])['output_shape'] == \
        [40, 33]
