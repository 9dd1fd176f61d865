"""The commands in the README's and the docs' code blocks can be run as
written: every ``python tools/X.py ...``, ``bash tools/X.sh ...`` and
``python -m mmseg_vvt...`` names a file that exists, uses only options that
its ``--help`` lists (a shell launcher's extra options go to the python tool
it starts, so they are checked against that tool), and every concrete
``configs/`` or ``tools/`` path it names exists.

The docs are read when the tests run, so new pages and edited commands are
checked too. Each tool's ``--help`` runs once per session, in a subprocess
(one for all tools; a tool whose help fails there is retried on its own).
"""
import glob
import json
import os
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FENCE = re.compile(r'^\s*(```|~~~)\s*([\w+-]*)')
# code blocks that hold commands; ```python (Python code) is not one
SHELL_BLOCKS = {'', 'bash', 'sh', 'shell', 'console', 'text'}
PYTHON = re.compile(r'(?:\S*/)?python3?')
WRAPPERS = {'nice', 'time', 'env', 'exec'}
OPTION = re.compile(r'^\[*(--?[A-Za-z][\w-]*)')
HELP_OPTION = re.compile(r'(?<![\w-])(--?[A-Za-z][\w-]*)')
LAUNCHED = re.compile(r'(?:tools|\$\(dirname "?\$0"?\))/(\w+\.py)')
REPO_PATH = re.compile(r'^(?:configs|tools)/[\w./-]+\.(?:py|sh)$')


def doc_files():
    files = [osp.join(REPO, 'README.md')]
    files += glob.glob(osp.join(REPO, 'docs', '**', '*.md'), recursive=True)
    files += glob.glob(osp.join(REPO, 'configs', '**', '*.md'), recursive=True)
    return sorted(f for f in files if osp.isfile(f))


def _strip_comment(line):
    """``line`` without a trailing ``# comment`` (a ``#`` that starts the
    line or follows whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in '\'"':
            quote = ch
        elif ch == '#' and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def command_lines(text):
    """``(line number, command)`` for each logical line of the shell code
    blocks of a markdown text: ``\\`` continuations joined, and so are
    indented lines that go on with options (``[--opt ...]`` synopses)."""
    out = []
    lang = None  # None: outside a code block
    pending = None
    for number, raw in enumerate(text.splitlines(), 1):
        fence = FENCE.match(raw)
        if fence:
            if pending:
                out.append(pending)
            pending = None
            lang = None if lang is not None else fence.group(2).lower()
            continue
        if lang is None or lang not in SHELL_BLOCKS:
            continue
        line = _strip_comment(raw).rstrip()
        if line.lstrip().startswith('$ '):
            line = line.lstrip()[2:]
        goes_on = (
            pending is not None and raw[:1].isspace()
            and line.lstrip()[:1] in ('[', '-'))
        if pending is not None and (pending[1].endswith('\\') or goes_on):
            head = pending[1].rstrip('\\').rstrip()
            pending = (pending[0], f'{head} {line.strip()}')
            continue
        if pending:
            out.append(pending)
        pending = (number, line.strip()) if line.strip() else None
    if pending:
        out.append(pending)
    return [(n, c.rstrip('\\').rstrip()) for n, c in out]


def _tokens(segment):
    try:
        return shlex.split(segment)
    except ValueError:  # an unbalanced quote in a synopsis
        return segment.split()


def parse_command(segment):
    """``(kind, target, args)`` of a command segment, or None when it runs
    nothing of this repository. ``kind`` is ``'script'`` (a python file),
    ``'module'`` (``python -m mmseg_vvt...``) or ``'shell'``."""
    tokens = _tokens(segment)
    while tokens and (re.match(r'^\w+=', tokens[0]) or tokens[0] in WRAPPERS):
        tokens = tokens[1:]
    if len(tokens) < 2 and not (tokens and tokens[0].startswith('tools/')):
        return None
    first = tokens[0]
    if PYTHON.fullmatch(first):
        if tokens[1] == '-m' and len(tokens) > 2 and tokens[2].startswith(
                'mmseg_vvt'):
            return 'module', tokens[2], tokens[3:]
        if tokens[1].startswith('tools/') and tokens[1].endswith('.py'):
            return 'script', tokens[1], tokens[2:]
        return None
    if first in ('bash', 'sh') and tokens[1].startswith('tools/'):
        return 'shell', tokens[1], tokens[2:]
    if first.startswith('tools/') and first.endswith('.py'):
        return 'script', first, tokens[1:]
    if first.startswith('tools/') and first.endswith('.sh'):
        return 'shell', first, tokens[1:]
    return None


def commands(text):
    """``(line number, segment, parsed)`` of every repository command."""
    found = []
    for number, line in command_lines(text):
        for segment in re.split(r'\s(?:&&|\|\||\||;)\s|;$', line):
            parsed = parse_command(segment.strip())
            if parsed:
                found.append((number, segment.strip(), parsed))
    return found


def module_file(name):
    base = osp.join(REPO, *name.split('.'))
    for path in (base + '.py', osp.join(base, '__main__.py')):
        if osp.isfile(path):
            return path
    return None


# Runs each tool's ``--help`` in one interpreter: the tools all import
# torch and mmseg first, which costs seconds per start on a small machine.
HELP_DRIVER = r"""
import contextlib, io, json, os, runpy, sys, traceback
out = {}
for argv in json.loads(sys.argv[1]):
    stdout, stderr = io.StringIO(), io.StringIO()
    sys.argv = [argv[-1], '--help']
    rc = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(
            stderr):
        try:
            if argv[0] == '-m':
                runpy.run_module(argv[1], run_name='__main__',
                                 alter_sys=True)
            else:
                # As `python tools/x.py` does: the script's folder first on
                # sys.path (tools import analysis_tools through it).
                sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
                try:
                    runpy.run_path(argv[0], run_name='__main__')
                finally:
                    del sys.path[0]
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (e.code is not None)
        except BaseException:
            traceback.print_exc()
            rc = 1
    out[json.dumps(argv)] = [rc, stdout.getvalue(), stderr.getvalue()]
print(json.dumps(out))
"""
_HELP = {}  # argv -> (exit status, stdout, stderr)
_ALONE = set()  # argvs whose help ran in a subprocess of their own


def _run_helps(argvs, separately=False):
    """``--help`` of each tool (``argv`` tuples) into ``_HELP``; all in one
    subprocess unless ``separately``."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (REPO, os.environ.get('PYTHONPATH')) if p))
    groups = [[a] for a in argvs] if separately else [list(argvs)]
    for group in filter(None, groups):
        try:
            proc = subprocess.run(
                [sys.executable, '-c', HELP_DRIVER,
                 json.dumps(group)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=600)
            lines = proc.stdout.strip().splitlines()
            results = json.loads(lines[-1]) if lines else {}
            failure = f'exit {proc.returncode}: {proc.stderr[-500:]}'
        except (subprocess.TimeoutExpired, ValueError) as e:
            results, failure = {}, str(e)
        for argv in group:
            if separately:
                _ALONE.add(argv)
            got = results.get(json.dumps(list(argv)))
            if got is None:
                _HELP[argv] = (1, '', f'no answer from the help run '
                               f'({failure})')
            else:
                _HELP[argv] = tuple(got)


def help_options(argv):
    """The options a tool's ``--help`` lists, or the error it gave. A tool
    whose help fails beside the others is asked again on its own, so that
    no other tool's side effects can fail it."""
    if argv not in _HELP:
        _run_helps([argv])
    if _HELP[argv][0] != 0 and argv not in _ALONE:
        _run_helps([argv], separately=True)
    rc, stdout, stderr = _HELP[argv]
    if rc != 0:
        return None, (f'`{" ".join(argv)} --help` exited with {rc}: '
                      f'{stderr.strip()[-500:]}')
    return set(HELP_OPTION.findall(stdout)), None


def _python_argv(kind, target):
    """How the python tool behind a command is started, or an error."""
    if kind == 'module':
        if module_file(target) is None:
            return None, f'module {target} does not exist'
        return ('-m', target), None
    path = osp.join(REPO, target)
    if not osp.isfile(path):
        return None, f'{target} does not exist'
    if kind == 'script':
        return (target, ), None
    with open(path) as f:
        launched = LAUNCHED.findall(f.read())
    if not launched:
        return (), None  # a launcher of no python tool: options unchecked
    tool = f'tools/{launched[0]}'
    if not osp.isfile(osp.join(REPO, tool)):
        return None, f'{target} starts {tool}, which does not exist'
    return (tool, ), None


def check_text(text, where='doc'):
    """Problems with the repository commands in a markdown text."""
    problems = []
    for number, segment, (kind, target, args) in commands(text):
        at = f'{where}:{number}: `{segment}`'
        argv, error = _python_argv(kind, target)
        if error:
            problems.append(f'{at}: {error}')
            continue
        for arg in args:
            path = arg.strip('[]\'"').split('=', 1)[-1]
            if (REPO_PATH.match(path) and not re.search(r'[{*]|\.\.\.', path)
                    and not osp.basename(path).split('.')[0].isupper()
                    and not osp.exists(osp.join(REPO, path))):
                problems.append(f'{at}: {path} does not exist')
        used = [m.group(1) for m in map(OPTION.match, args) if m]
        if not argv or not used:
            continue
        listed, error = help_options(argv)
        if error:
            problems.append(f'{at}: {error}')
            continue
        for option in used:
            if option not in listed:
                problems.append(f'{at}: {option} is not an option of '
                                f'{" ".join(argv)} (see its --help)')
    return problems


@pytest.fixture(scope='module', autouse=True)
def warm_help_cache():
    """Ask every tool the docs name for its ``--help`` in one run."""
    argvs = set()
    for path in doc_files():
        with open(path, encoding='utf-8') as f:
            for _, _, (kind, target, args) in commands(f.read()):
                argv, error = _python_argv(kind, target)
                if argv and not error and any(map(OPTION.match, args)):
                    argvs.add(argv)
    _run_helps(sorted(argvs - set(_HELP)))


@pytest.mark.parametrize(
    'path', doc_files(), ids=lambda p: osp.relpath(p, REPO))
def test_doc_commands_exist_with_their_options(path):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    problems = check_text(text, osp.relpath(path, REPO))
    assert not problems, '\n'.join(problems)


def test_the_docs_have_commands_to_check():
    """Guards the parser: the README's commands are found."""
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        found = {target for _, _, (_, target, _) in commands(f.read())}
    assert {
        'tools/train.py', 'tools/test.py', 'tools/dist_train.sh',
        'tools/get_flops.py'
    } <= found


def test_the_checker_reports_what_is_wrong():
    doc = '\n'.join([
        'Text, not code: python tools/nothing_here.py --bogus',
        '```bash',
        'python tools/get_flops.py configs/vvt_fpn_ade20k.py --shape 512 512',
        'python tools/get_flops.py configs/vvt_fpn_ade20k.py --shapes 5 \\',
        '    --no-table   # a comment --ignored',
        'python tools/get_flops.py configs/missing.py --no-table',
        'python tools/get_flops.py configs/vvt/CONFIG.py  # placeholder',
        'python tools/no_such_tool.py --help',
        'PYTHON=python3 bash tools/dist_train.sh CONFIG 8 --not-train-opt',
        'python -m mmseg_vvt.no_such_module --x',
        'python -m pytest tests --anything   # not a repository command',
        'python tools/get_flops.py [--out FILE] [--no-table]',
        '    [--shape H W] [--wrong]',
        '```',
        '```python',
        'python tools/ignored_in_python_blocks.py',
        '```',
    ])
    problems = check_text(doc, 'fake.md')
    expected = [
        ('fake.md:4', '--shapes is not an option of tools/get_flops.py'),
        ('fake.md:6', 'configs/missing.py does not exist'),
        ('fake.md:8', 'tools/no_such_tool.py does not exist'),
        ('fake.md:9', '--not-train-opt is not an option of tools/train.py'),
        ('fake.md:10', 'module mmseg_vvt.no_such_module does not exist'),
        ('fake.md:12', '--wrong is not an option of tools/get_flops.py'),
    ]
    assert len(problems) == len(expected), '\n'.join(problems)
    for problem, (where, what) in zip(problems, expected):
        assert problem.startswith(where + ':') and what in problem, (problem,
                                                                     where,
                                                                     what)
