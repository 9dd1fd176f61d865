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


def _import_with(deletions):
    """``import mmseg_vvt`` in a fresh process whose torch lacks the
    ``deletions`` (statements run first) and says it is 2.0.1: the error
    message and the mmseg_vvt modules imported by then."""
    code = f'''
import sys, torch
{deletions}
torch.__version__ = "2.0.1+cu118"
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
    # nothing of mmseg_vvt beyond the check has run
    assert modules == "['mmseg_vvt._torch_check']", modules
    assert message.startswith(
        'mmseg_vvt needs a newer torch than 2.0.1+cu118, which lacks: ')
    assert 'tested with torch 2.13' in message
    return message


def test_an_older_torch_is_refused_at_import_with_what_it_lacks():
    message = _import_with('del torch.serialization.add_safe_globals\n'
                           'del torch.get_autocast_dtype')
    assert 'torch.serialization.add_safe_globals (checkpoints loaded' in (
        message)
    assert 'torch.get_autocast_dtype (the kernels under AMP)' in message
    assert 'get_unsafe_globals_in_checkpoint' not in message  # it is there


def test_a_torch_without_a_whole_submodule_is_reported_too():
    # torch 2.0 has no torch.compiler at all
    message = _import_with('del torch.compiler')
    assert message.endswith('lacks: torch.compiler.is_compiling (the '
                            'readable formulation under torch.compile). '
                            'mmseg_vvt is tested with torch 2.13 (CPU build)'
                            ' and 2.11 (CUDA 13.0). mmseg 1.2.2 then needs '
                            'an mmcv < 2.2 built for that torch '
                            '(tools/setup_env.sh builds mmcv 2.1.0 from '
                            'source).')


def test_every_checked_feature_is_one_the_package_calls():
    # the list must not outlive the code that needed it
    sources = ''
    for path in glob.glob(
            osp.join(REPO, 'mmseg_vvt', '**', '*.py'), recursive=True):
        if osp.basename(path) != '_torch_check.py':
            with open(path) as f:
                sources += f.read()
    for name, _ in _torch_check.REQUIRED:
        assert name in sources, f'{name} is checked but never used'
