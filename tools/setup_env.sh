#!/usr/bin/env bash
# Set up mmseg-vvt on a fresh machine: a virtual environment at .venv/ in the
# repository root with torch 2.13.0 (CPU), mmengine 0.10.7, mmcv 2.1.0 built
# WITH its compiled ops (mmseg imports mmcv.ops), mmsegmentation 1.2.2, and
# this package (editable).
#
# The mmcv build takes ~12 minutes on 2 cores; its wheel is cached outside the
# repository (MMSEG_VVT_CACHE, default ~/.cache/mmseg-vvt), so later runs
# take seconds. Safe to run again: when nothing it installs from (this
# script, setup.py, setup.cfg, requirements/, the version) changed since its
# last successful run, it only checks the stack and reinstalls nothing, so
# processes started meanwhile (tests beside `make lint`) keep importing
# mmseg_vvt. Stops with the cause when a step fails.
#
# Environment: PYTHON (interpreter for the venv, default python3.11 or
# python3), MMSEG_VVT_CACHE (wheel cache directory).
set -eEuo pipefail  # -E: the ERR trap below also fires inside functions

TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
CACHE="${MMSEG_VVT_CACHE:-$HOME/.cache/mmseg-vvt}"
WHEELS="$CACHE/wheels/torch-$TORCH_VERSION"
STEP="starting"

say() { printf '\n==> %s\n' "$*"; STEP="$*"; }
fail() { printf '\nsetup_env.sh FAILED during: %s\n' "$STEP" >&2; }
trap fail ERR

if [ -z "${PYTHON:-}" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

say "checking the Python interpreter ($PYTHON)"
"$PYTHON" - <<'PY'
import sys
if sys.version_info[:2] < (3, 9):
    sys.exit(f'Python >= 3.9 needed, found {sys.version.split()[0]}')
print('Python', sys.version.split()[0])
PY

if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  say "removing a broken virtual environment at $VENV"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# Run from / so that mmseg_vvt is imported the way tools and tests started
# elsewhere import it: through the venv, which must point at this checkout
# (a copy installed there without -e would hold stale code). No subshell:
# the ERR trap would report a failure twice.
check_stack() {
  local back=$PWD status=0
  cd /
  "$PY" - "$ROOT" <<'PY' || status=$?
import os.path as osp, sys
import torch, mmengine, mmcv, mmcv.ops, mmseg, mmseg_vvt
from mmseg.registry import MODELS
here = osp.dirname(osp.realpath(mmseg_vvt.__file__))
want = osp.join(osp.realpath(sys.argv[1]), 'mmseg_vvt')
assert here == want, f'mmseg_vvt comes from {here}, not this checkout ({want})'
assert torch.__version__.startswith('2.13.0'), torch.__version__
assert mmengine.__version__ == '0.10.7', mmengine.__version__
assert mmcv.__version__ == '2.1.0', mmcv.__version__
assert mmseg.__version__ == '1.2.2', mmseg.__version__
assert MODELS.get('VVT') is not None, 'VVT is not registered'
print(f'torch {torch.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__} (ops), mmseg {mmseg.__version__}, '
      f'mmseg_vvt {mmseg_vvt.__version__}: ready')
PY
  cd "$back"
  # its own status: set -e does not stop a function run as a condition
  return "$status"
}

# What the installs below follow; written after a successful run. The
# checkout's path is in it: a venv copied elsewhere installs again.
STAMP="$VENV/.mmseg-vvt-setup"
inputs_checksum() {
  {
    echo "$ROOT"
    cat "$ROOT/tools/setup_env.sh" "$ROOT/setup.py" "$ROOT/setup.cfg" \
      "$ROOT/mmseg_vvt/version.py" "$ROOT"/requirements.txt "$ROOT"/requirements/*.txt
  } | cksum
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(inputs_checksum)" ] &&
  stack=$(check_stack 2>&1); then
  say "nothing changed since the last set-up: the stack checks out, nothing installed"
  echo "$stack"
  trap - ERR
  echo "Set-up done: use $VENV/bin/python"
  exit 0
fi
rm -f "$STAMP"  # until this run succeeds

PIP=("$PY" -m pip install --disable-pip-version-check --progress-bar off -q)

say "installing torch==$TORCH_VERSION (CPU) and build tools"
# setuptools as requirements/runtime.txt pins it (mmengine's pkg_resources)
"${PIP[@]}" "torch==$TORCH_VERSION" "setuptools<80.9" wheel "numpy<2"

say "installing the runtime requirements (requirements/runtime.txt)"
"${PIP[@]}" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" \
  -r "$ROOT/requirements/lint.txt"

if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" >/dev/null 2>&1; then
  say "mmcv $MMCV_VERSION with compiled ops already installed"
else
  mkdir -p "$WHEELS"
  wheel=$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    say "building mmcv $MMCV_VERSION with compiled ops (CPU): this takes ~12 minutes on 2 cores, once; the wheel is cached in $WHEELS"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$PY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps \
      "mmcv==$MMCV_VERSION" -w "$WHEELS"
    wheel=$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
  fi
  say "installing the cached mmcv wheel $(basename "$wheel")"
  "${PIP[@]}" --no-deps --force-reinstall "$wheel"
  "${PIP[@]}" addict yapf packaging Pillow pyyaml
fi

say "installing mmseg-vvt (editable)"
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"

say "checking the stack"
check_stack
inputs_checksum > "$STAMP"
trap - ERR
echo "Set-up done: use $VENV/bin/python"
