"""mmseg_vvt names the torch features it lacks at import, before any module
uses them (mmseg_vvt/_torch_check.py)."""
import glob
import os.path as osp
import subprocess
import sys

from mmseg_vvt import _torch_check

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_this_torch_has_every_feature():
    assert _torch_check.missing_features() == []


def test_an_older_torch_is_refused_at_import_with_what_it_lacks():
    # torch as an older release would be: two features gone, its version
    # said; nothing of mmseg_vvt beyond the check may have been imported
    code = '''
import sys, torch
del torch.serialization.add_safe_globals
del torch.get_autocast_dtype
torch.__version__ = "2.1.2+cu121"
try:
    import mmseg_vvt
except ImportError as e:
    print(e)
    print(sorted(m for m in sys.modules if m.startswith("mmseg_vvt.")))
else:
    print("imported")
'''
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    message, modules = proc.stdout.strip().splitlines()
    assert message.startswith(
        'mmseg_vvt needs a newer torch than 2.1.2+cu121, which lacks: '
        'torch.serialization.add_safe_globals (')
    assert 'torch.get_autocast_dtype (the kernels under AMP)' in message
    assert 'get_unsafe_globals_in_checkpoint' not in message  # it is there
    assert 'tested with torch 2.13' in message
    assert modules == "['mmseg_vvt._torch_check']"


def test_every_checked_feature_is_one_the_package_calls():
    # the list must not outlive the code that needed it
    sources = ''
    for path in glob.glob(
            osp.join(REPO, 'mmseg_vvt', '**', '*.py'), recursive=True):
        if osp.basename(path) != '_torch_check.py':
            with open(path) as f:
                sources += f.read()
    for owner, name, _ in _torch_check.REQUIRED:
        used = f'{owner.__name__}.{name}'
        assert used in sources, f'{used} is checked but never used'
