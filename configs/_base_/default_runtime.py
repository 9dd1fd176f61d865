# mmseg's default runtime plus the guards the VVT configs carry with them,
# so that they hold under any tool that builds mmengine's Runner from the
# config (mmseg's own tools/train.py and test.py, `mim train` / `mim test`),
# not only under this repository's tools.
_base_ = ['mmseg::_base_/default_runtime.py']

# A checkpoint whose weights do not fit the model (load_from, --resume,
# test.py's checkpoint) is refused, not loaded in part and scored
# (mmseg_vvt/engine/hooks.py). `allow_partial_checkpoint = True` (or
# --cfg-options allow_partial_checkpoint=True) loads what fits and logs the
# rest. `import mmseg_vvt` registers the hook: the VVT model bases carry
# that custom_imports (mmengine refuses a key that two bases set).
#
# A VVT whose input channels or output widths do not fit the preprocessor,
# neck or heads, or a head with fewer classes than its dataset, stops the
# run before the first iteration with the message this project's tools give
# up front (VVTConfigCheckHook; `check_num_classes = False` skips the class
# check).
custom_hooks = [
    dict(type='CheckpointFitHook'),
    dict(type='VVTConfigCheckHook')
]
allow_partial_checkpoint = False
