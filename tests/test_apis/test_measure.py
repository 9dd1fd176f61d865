"""mmseg_vvt.apis.measure: time and peak memory of one inference."""
from mmseg_vvt.apis.measure import main, measure_inference


def test_whole_and_slide_at_native_resolution(tiny_config):
    whole = measure_inference(str(tiny_config), 'whole', shape=(70, 90))
    # the pipeline's Resize (to 48x48) is dropped: the prediction has the
    # image's own size
    assert whole['output_shape'] == [70, 90]
    assert whole['mode'] == 'whole' and whole['crop_size'] is None
    slide = measure_inference(str(tiny_config), 'slide', shape=(70, 90),
                              crop_size=(32, 32), stride=(20, 20))
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
    res = main([str(tiny_config), '--mode', 'slide', '--shape', '40', '33',
                '--crop-size', '32', '32', '--no-warmup'])
    printed = json.loads(capsys.readouterr().out)
    assert printed == res
    assert printed['output_shape'] == [40, 33]
    assert printed['stride'] == [21, 21]  # two thirds of the window
