# The two commands of the README: `make demo` (the main job) and `make test`.
# Both run the idempotent set-up first (seconds once the mmcv wheel is cached).
PY := .venv/bin/python

.PHONY: setup demo info lint test test-slow

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/run_demo.py

info: setup
	$(PY) tools/vvt_info.py --arch small

# OpenMMLab's checks (flake8, isort, yapf, codespell), as in
# .pre-commit-config.yaml; settings in setup.cfg
LINT_PATHS := mmseg_vvt tools tests configs setup.py
lint: setup
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf -r --diff $(LINT_PATHS)
	$(PY) -m codespell_lib $(LINT_PATHS) docs README.md

test: setup
	$(PY) -m pytest tests

test-slow: setup
	$(PY) -m pytest tests -m slow
