"""tools/setup_env.sh reinstalls nothing when nothing it installs from
changed, and installs again when something did or the last run failed.

The script runs on a copy of its inputs with a stand-in interpreter that
logs its arguments (and fails the stack check on request): no pip runs, no
environment is touched.
"""
import os
import os.path as osp
import shutil
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
INPUTS = ('tools/setup_env.sh', 'setup.py', 'setup.cfg',
          'mmseg_vvt/version.py', 'requirements.txt')

# `python -` reads a script from stdin: the version check and the stack
# check (the latter fails when $FAIL_STACK is set)
STUB = """#!/bin/sh
echo "in $(pwd): $*" >> "$STUB_LOG"
if [ "$1" = "-" ]; then
  script=$(cat)
  case "$script" in *mmseg.registry*) [ -z "$FAIL_STACK" ] || exit 1;; esac
fi
exit 0
"""


@pytest.fixture
def checkout(tmp_path):
    repo = tmp_path / 'repo'
    for rel in INPUTS:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(osp.join(REPO, rel), repo / rel)
    shutil.copytree(osp.join(REPO, 'requirements'), repo / 'requirements')
    python = repo / '.venv' / 'bin' / 'python'
    python.parent.mkdir(parents=True)
    python.write_text(STUB)
    python.chmod(0o755)
    return repo


def _run(repo, fail_stack=False):
    log = repo.parent / 'calls.log'
    log.write_text('')
    env = dict(
        os.environ,
        PYTHON=str(repo / '.venv' / 'bin' / 'python'),
        STUB_LOG=str(log),
        MMSEG_VVT_CACHE=str(repo.parent / 'cache'))
    env.pop('FAIL_STACK', None)
    if fail_stack:
        env['FAIL_STACK'] = '1'
    proc = subprocess.run(
        ['bash', str(repo / 'tools' / 'setup_env.sh')],
        env=env,
        capture_output=True,
        text=True,
        timeout=120)
    calls = log.read_text().splitlines()
    return proc, [c for c in calls if '-m pip' in c]


def _stack_checks(repo):
    """The stand-in's calls, in the last run, that were the stack check."""
    calls = (repo.parent / 'calls.log').read_text().splitlines()
    return [c for c in calls if c.endswith(f': - {repo}')]


def test_a_second_run_installs_nothing(checkout):
    proc, pip_calls = _run(checkout)
    assert proc.returncode == 0, proc.stderr
    assert any(c.endswith(f'-e {checkout}') for c in pip_calls), pip_calls
    assert (checkout / '.venv' / '.mmseg-vvt-setup').is_file()

    proc, pip_calls = _run(checkout)
    assert proc.returncode == 0, proc.stderr
    assert pip_calls == []
    assert 'nothing changed since the last set-up' in proc.stdout
    # the stack was checked, from outside the checkout and told where it is
    # (so an mmseg_vvt installed in the venv from elsewhere fails it)
    assert _stack_checks(checkout) == [f'in /: - {checkout}']


@pytest.mark.parametrize('changed', [
    'requirements/runtime.txt', 'setup.py', 'mmseg_vvt/version.py',
    'tools/setup_env.sh'
])
def test_a_changed_input_installs_again(checkout, changed):
    assert _run(checkout)[0].returncode == 0
    with open(checkout / changed, 'a') as f:
        f.write('\n# changed\n')
    proc, pip_calls = _run(checkout)
    assert proc.returncode == 0, proc.stderr
    assert any(c.endswith(f'-e {checkout}') for c in pip_calls), pip_calls


def test_a_broken_stack_installs_again_and_a_failed_run_leaves_no_stamp(
        checkout):
    assert _run(checkout)[0].returncode == 0
    # inputs unchanged, but the stack no longer imports: install again, and
    # when the check still fails say so and keep no stamp
    proc, pip_calls = _run(checkout, fail_stack=True)
    assert proc.returncode != 0
    # one message, from the install's check (the quick check before it
    # failing is no error: it only sends the run down the install path)
    message = 'setup_env.sh FAILED during: checking the stack'
    assert proc.stderr.strip() == message
    assert pip_calls, 'the set-up trusted its stamp over a failing check'
    assert not (checkout / '.venv' / '.mmseg-vvt-setup').exists()
    proc, pip_calls = _run(checkout)
    assert proc.returncode == 0, proc.stderr
    assert pip_calls
