"""The rule for scripts under tools/ (issue 11): they start the same way.

* A tool never imports another tool (``tools/<name>.py``): logic two tools
  share lives in the ``mmseg_vvt`` package, or, for measurement code that
  must stay out of the runtime package, in ``tools/analysis_tools``.
* No tool touches ``sys.path``. ``mmseg_vvt`` is installed (editable, by
  tools/setup_env.sh); ``analysis_tools`` is found because Python puts the
  script's own folder, ``tools/``, first on ``sys.path`` when it runs
  ``python tools/<name>.py`` (tests/conftest.py does the same for tests).
"""
import ast
import glob
import os.path as osp

import pytest
from tool_modules import REPO

TOOLS = osp.join(REPO, 'tools')


def _sources(folder):
    return sorted(glob.glob(osp.join(folder, '*.py')))


def tool_names(tools_dir):
    return {osp.splitext(osp.basename(p))[0] for p in _sources(tools_dir)}


def rule_violations(path, tools):
    """(line, message) for each import of a tool module in ``tools`` and
    each use of ``sys.path`` in the Python file ``path``."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
            if node.module == 'sys':
                names += [f'sys.{a.name}' for a in node.names]
        for name in names:
            if name.split('.')[0] in tools:
                found.append((node.lineno, f'imports the tool {name!r}'))
            if name == 'sys.path':
                found.append((node.lineno, 'imports sys.path'))
        if (isinstance(node, ast.Attribute) and node.attr == 'path'
                and isinstance(node.value, ast.Name)
                and node.value.id == 'sys'):
            found.append((node.lineno, 'uses sys.path'))
    return found


SCRIPTS = _sources(TOOLS) + _sources(osp.join(TOOLS, 'analysis_tools'))


@pytest.mark.parametrize(
    'path', SCRIPTS, ids=[osp.relpath(p, TOOLS) for p in SCRIPTS])
def test_tool_imports_no_tool_and_leaves_sys_path_alone(path):
    assert rule_violations(path, tool_names(TOOLS)) == []


def test_rule_finds_each_kind_of_violation(tmp_path):
    (tmp_path / 'tool_a.py').write_text('')
    bad = tmp_path / 'tool_b.py'
    bad.write_text('import os.path as osp\n'
                   'import sys\n'
                   'from sys import path\n'
                   'sys.path.insert(0, osp.dirname(__file__))\n'
                   'import tool_a\n'
                   'from tool_a import x\n'
                   'from analysis_tools.timing import time_call\n'
                   'from .tool_a import y\n')
    assert rule_violations(str(bad), tool_names(str(tmp_path))) == [
        (3, 'imports sys.path'),
        (5, "imports the tool 'tool_a'"),
        (6, "imports the tool 'tool_a'"),
        (4, 'uses sys.path'),
    ]
