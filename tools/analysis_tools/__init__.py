"""Measurement helpers shared by the benchmark tools and their tests.

Not part of the ``mmseg_vvt`` package: nothing a user's training or
inference imports lives here. ``tools/*.py`` import it as ``analysis_tools``
(the script's own folder is first on ``sys.path``); tests find it through
``tests/conftest.py``.
"""
