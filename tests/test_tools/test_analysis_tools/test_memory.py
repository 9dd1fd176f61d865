"""Peak-RSS measurement from a fresh mark (/proc/self/clear_refs + VmHWM)."""
import numpy as np
from analysis_tools.memory import measure_peak_rss, read_rss, reset_peak_rss

MB = 2**20


def _touch(nbytes):
    a = np.ones(nbytes // 8)  # written, so resident
    s = float(a[::4096].sum())
    del a
    return s


def test_read_rss_reports_resident_and_high_water_mark():
    now = read_rss()
    assert now['rss'] > 10 * MB
    assert now['hwm'] >= now['rss']


def test_peak_of_a_call_is_seen_and_the_mark_resets():
    _, big = measure_peak_rss(lambda: _touch(200 * MB))
    assert big['extra'] >= 180 * MB, big
    assert big['peak'] == big['baseline'] + big['extra']
    # the 200 MB were freed; a fresh mark forgets them (ru_maxrss would not)
    _, small = measure_peak_rss(lambda: _touch(8 * MB))
    assert small['extra'] < 60 * MB, small
    assert reset_peak_rss() <= read_rss()['hwm']
