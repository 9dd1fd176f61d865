# The two commands of the README: `make demo` (the main job) and `make test`.
# Both run the idempotent set-up first (seconds once the mmcv wheel is cached).
PY := .venv/bin/python

.PHONY: setup demo info test test-slow

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/run_demo.py

info: setup
	$(PY) tools/vvt_info.py --arch small

test: setup
	$(PY) -m pytest tests

test-slow: setup
	$(PY) -m pytest tests -m slow
