"""pip and tools/setup_env.sh install the same stack, and it covers what the
package and its tools import: setup.py reads requirements/*.txt, the set-up
script installs those files, and every third-party module imported under
mmseg_vvt/ or tools/ comes from a declared distribution."""
import ast
import glob
import importlib.util
import os.path as osp
import re
import subprocess
import sys
from importlib.metadata import packages_distributions

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SETUP_ENV = osp.join(REPO, 'tools', 'setup_env.sh')


@pytest.fixture(scope='module')
def setup_module():
    """setup.py as a module (its ``setup()`` call is behind ``__main__``)."""
    spec = importlib.util.spec_from_file_location('mmseg_vvt_setup',
                                                  osp.join(REPO, 'setup.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _requirements(setup_module, name):
    return [
        Requirement(r)
        for r in setup_module.parse_requirements(f'requirements/{name}.txt')
    ]


def _setup_env_pins():
    with open(SETUP_ENV) as f:
        text = f.read()
    return text, dict(re.findall(r'^(\w+)_VERSION=(\S+)$', text, re.M))


def test_parse_requirements_follows_the_files(setup_module, tmp_path):
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' /
     'a.txt').write_text('# comment\n\nfoo>=1.0  # why\n-r b.txt\n')
    (tmp_path / 'sub' /
     'b.txt').write_text('bar==2; python_version < "3.12"\n')
    assert setup_module.parse_requirements(
        str(tmp_path / 'sub' /
            'a.txt')) == ['foo>=1.0', 'bar==2; python_version < "3.12"']
    (tmp_path / 'c.txt').write_text('--index-url https://example.org\n')
    with pytest.raises(ValueError, match='c.txt.*--index-url'):
        setup_module.parse_requirements(str(tmp_path / 'c.txt'))


def test_pip_metadata_is_the_requirements_files(setup_module, tmp_path):
    """What pip reads (egg-info's requires.txt) lists exactly the files'
    requirements: runtime as install_requires, the others as extras."""
    proc = subprocess.run([
        sys.executable, 'setup.py', '-q', 'egg_info', '--egg-base',
        str(tmp_path)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (requires, ) = glob.glob(str(tmp_path / '*.egg-info' / 'requires.txt'))
    sections, current = {}, None
    with open(requires) as f:
        for line in filter(None, map(str.strip, f)):
            if line.startswith('['):
                current = line.strip('[]')
            else:
                sections.setdefault(current, []).append(str(Requirement(line)))

    def expected(name):
        return sorted(str(r) for r in _requirements(setup_module, name))

    assert sorted(sections.pop(None)) == expected('runtime')
    assert sorted(sections.pop('tests')) == expected('tests')
    assert sorted(sections.pop('lint')) == expected('lint')
    assert sorted(sections.pop('mim')) == expected('mminstall')
    assert sorted(sections.pop('optional')) == expected('optional')
    assert not sections


def test_setup_env_installs_the_same_files(setup_module):
    text, pins = _setup_env_pins()
    assert re.search(
        r'-r "\$ROOT/requirements/runtime\.txt" '
        r'-r "\$ROOT/requirements/tests\.txt"', text)
    # torch is pinned by the script only: a pip requirement could pull CUDA
    names = {
        canonicalize_name(r.name)
        for f in ('runtime', 'tests', 'mminstall')
        for r in _requirements(setup_module, f)
    }
    assert 'torch' not in names
    assert pins['TORCH']
    # the build tools the script installs first keep the runtime's pin
    (setuptools, ) = [
        r for r in _requirements(setup_module, 'runtime')
        if r.name == 'setuptools'
    ]
    assert f'"setuptools{setuptools.specifier}"' in text
    # the mmcv the script builds is one the requirements accept
    (mmcv, ) = _requirements(setup_module, 'mminstall')
    assert mmcv.name == 'mmcv'
    assert mmcv.specifier.contains(pins['MMCV'], prereleases=True)


def _imported_modules():
    """Top-level names of everything imported under mmseg_vvt/ and tools/
    (at any depth: lazy imports in functions count), with a file where."""
    local = {
        osp.splitext(osp.basename(p))[0]
        for p in glob.glob(
            osp.join(REPO, 'tools', '**', '*.py'), recursive=True)
    } | {'mmseg_vvt'} | {
        osp.basename(osp.dirname(p))
        for p in glob.glob(osp.join(REPO, 'tools', '*', '__init__.py'))
    }
    found = {}
    files = glob.glob(
        osp.join(REPO, 'mmseg_vvt', '**', '*.py'), recursive=True)
    files += glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True)
    for path in files:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, osp.relpath(path, REPO))
    return found


def test_every_import_is_declared(setup_module):
    declared = {
        canonicalize_name(r.name)
        for f in ('runtime', 'mminstall')
        for r in _requirements(setup_module, f)
    } | {'torch'}  # installed by tools/setup_env.sh (see above)
    # imported only when a user's checkpoint names that scheme (pavi://),
    # as mmengine does: optional, not a requirement
    optional = {'pavi'}
    # the optional extras (requirements/optional.txt), imported only when
    # asked for
    declared |= {
        canonicalize_name(r.name)
        for r in _requirements(setup_module, 'optional')
    }
    providers = packages_distributions()
    imported = _imported_modules()
    assert {'torch', 'mmseg', 'cv2'} <= set(imported)
    missing = []
    for module, where in sorted(imported.items()):
        if module in optional:
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & declared:
            missing.append(f'{module} (imported in {where}; provided by '
                           f'{sorted(dists) or "nothing installed"})')
    assert not missing, ('imported but not in requirements/runtime.txt or '
                         'mminstall.txt: ' + ', '.join(missing))


def test_the_stack_imports_without_warnings():
    # setuptools 80.9+ warns (UserWarning, shown by default) on mmengine's
    # `import pkg_resources`, which a config with an `mmseg::` base reaches:
    # four lines of noise before every tool's output; the requirements pin
    # setuptools below it
    code = (
        'import mmseg_vvt, mmseg_vvt.apis, mmseg.apis\n'
        'from mmengine.config import Config\n'
        f'Config.fromfile({osp.join(REPO, "configs", "vvt_fpn_demo.py")!r})')
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'pkg_resources' not in proc.stderr, proc.stderr
