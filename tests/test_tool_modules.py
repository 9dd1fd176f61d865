"""tests/tool_modules.py: the loader the tool tests share."""
import os.path as osp
import sys
import types

import pytest
from tool_modules import REPO, load_tool


def test_loads_a_tool_once_from_its_file():
    mod = load_tool('collect_results')
    assert mod.__file__ == osp.join(REPO, 'tools', 'collect_results.py')
    assert sys.modules['collect_results'] is mod
    assert load_tool('collect_results') is mod


def test_a_foreign_module_under_the_name_is_an_error(monkeypatch):
    foreign = types.ModuleType('vvt_info')
    foreign.__file__ = '/elsewhere/vvt_info.py'
    monkeypatch.setitem(sys.modules, 'vvt_info', foreign)
    with pytest.raises(ImportError, match=r"'vvt_info'.*already taken"):
        load_tool('vvt_info')
