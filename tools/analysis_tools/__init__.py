"""Measurement helpers shared by the benchmark tools and their tests.

Not part of the ``mmseg_vvt`` package: nothing a user's training or
inference imports lives here. ``tools/*.py`` import it as ``analysis_tools``
with no ``sys.path`` edits: Python puts the script's own folder, ``tools/``,
first on ``sys.path`` when it runs ``python tools/<name>.py``. Tests find it
through ``tests/conftest.py``; tests/test_tools/test_tool_imports.py holds
every tool to this.
"""
