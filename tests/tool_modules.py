"""Import the scripts under tools/ in tests (tools/ is not a package).

On the test path through ``pythonpath = tests`` in setup.cfg.
"""
import importlib.util
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name):
    """``tools/<name>.py`` as a module, imported once per session.

    Registered in ``sys.modules`` under ``name`` so that worker processes
    can unpickle its functions; a different module already registered under
    that name (e.g. the standard library's ``test``) is an ImportError, not
    returned in the tool's place.
    """
    path = osp.join(REPO, 'tools', f'{name}.py')
    cached = sys.modules.get(name)
    if cached is not None:
        if getattr(cached, '__file__', None) != path:
            raise ImportError(
                f'cannot load {path} as module {name!r}: that name is '
                f'already taken by {cached!r}')
        return cached
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def assert_refused(run, cases, capsys):
    """Each ``(argv, message)`` of ``cases``: ``run(argv)`` (a tool's
    ``parse_args`` or ``main``) exits with status 2, the parser's, and
    ``message`` is in what it wrote to stderr."""
    import pytest
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_:
            run(argv)
        assert exit_.value.code == 2, argv
        assert message in capsys.readouterr().err, argv
