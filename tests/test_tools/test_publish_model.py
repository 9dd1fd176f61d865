"""tools/publish_model.py: a runner checkpoint, read through the allow-list,
published as weights and meta under a hash-stamped name."""
import hashlib
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'publish_model.py')


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)],
                          capture_output=True,
                          text=True,
                          timeout=300)


@pytest.fixture
def runner_checkpoint(tmp_path):
    """What mmengine's runner saves: weights, meta and the training state,
    whose HistoryBuffer plain ``weights_only`` refuses."""
    torch.manual_seed(0)
    state_dict = {'backbone.w': torch.randn(3, 4), 'head.b': torch.randn(2)}
    path = tmp_path / 'iter_8.pth'
    torch.save(
        dict(
            meta=dict(
                iter=8,
                dataset_meta=dict(classes=('a', 'b'), palette=[[0] * 3] * 2)),
            state_dict=state_dict,
            message_hub=dict(log_scalars={'loss': HistoryBuffer([1.0], [1])}),
            optimizer=dict(state={0: {
                'exp_avg': torch.zeros(3, 4)
            }}),
            param_schedulers=[dict(last_step=8)]), str(path))
    return path, state_dict


def test_keeps_weights_and_meta_under_a_hash_stamped_name(
        runner_checkpoint, tmp_path):
    src, state_dict = runner_checkpoint
    res = _run(src, tmp_path / 'out' / 'model.pth')
    assert res.returncode == 0, res.stderr
    (published, ) = (tmp_path / 'out').iterdir()
    data = published.read_bytes()
    assert published.name == \
        f'model-{hashlib.sha256(data).hexdigest()[:8]}.pth'
    assert 'dropped message_hub, optimizer, param_schedulers' in res.stdout

    # torch alone, without mmseg_vvt's allow-list, loads the published
    # file (and refuses the runner's)
    def plain_load(path):
        return subprocess.run([
            sys.executable, '-c', 'import sys, torch; c = torch.load('
            'sys.argv[1], weights_only=True); print(sorted(c), '
            'c["meta"]["iter"])',
            str(path)
        ],
                              capture_output=True,
                              text=True,
                              timeout=300)

    check = plain_load(published)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split('\n')[0] == "['meta', 'state_dict'] 8"
    refused = plain_load(src)
    assert refused.returncode != 0 and 'HistoryBuffer' in refused.stderr
    loaded = torch.load(published, weights_only=True)
    for key, value in state_dict.items():
        assert torch.equal(loaded['state_dict'][key], value)
    # the same input gives the same name: refused, unless --force
    res = _run(src, tmp_path / 'out' / 'model.pth')
    assert res.returncode == 1
    assert res.stderr.strip() == (f'error: output {published} exists; pass '
                                  '--force to replace it')
    assert _run(src, tmp_path / 'out' / 'model.pth', '--force').returncode == 0


def test_malicious_checkpoint_is_refused_in_one_line(tmp_path):
    from ckpt_helpers import write_malicious
    marker = tmp_path / 'pickle_ran_code'
    src = write_malicious(tmp_path / 'evil.pth', marker)
    res = _run(src, tmp_path / 'out' / 'model.pth')
    assert res.returncode == 1
    (line, ) = res.stderr.strip().splitlines()
    assert line.startswith('error: Refusing to load checkpoint')
    assert src in line and 'os.makedirs' in line
    assert not marker.exists() and not (tmp_path / 'out').exists()


def test_bad_input_is_named(tmp_path):
    weights_only = tmp_path / 'weights.pth'
    torch.save({'w': torch.zeros(1)}, str(weights_only))
    for args, message in (
        ((weights_only, tmp_path / 'o.pth'),
         f"error: {weights_only}: expected a checkpoint the runner saved (a "
         "dict with state_dict), got keys ['w']"),
        ((tmp_path / 'none.pth', tmp_path / 'o.pth'),
         f"error: checkpoint not found: {tmp_path / 'none.pth'}"),
    ):
        res = _run(*args)
        assert res.returncode == 1
        assert res.stderr.strip() == message
    # meta that a plain weights_only load would refuse is named
    numpy_meta = tmp_path / 'numpy_meta.pth'
    torch.save(
        dict(
            state_dict={'w': torch.zeros(1)},
            meta=dict(dataset_meta=dict(palette=np.zeros((2, 3))))),
        str(numpy_meta))
    res = _run(numpy_meta, tmp_path / 'o.pth')
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"error: {numpy_meta}: checkpoint['meta']['dataset_meta']['palette'] "
        '(numpy.ndarray) is not a tensor or a plain value, which torch\'s '
        "weights_only loads without mmseg_vvt's allow-list; remove it from "
        'the checkpoint first')
    res = _run(weights_only, tmp_path / 'o.bin')
    assert res.returncode == 2 and 'must end in .pth' in res.stderr
    assert not list(tmp_path.glob('o*'))


def test_help_gives_the_whole_first_sentence():
    # the docstring's first line ends mid-sentence: "(mmseg's"
    proc = _run('--help')
    assert proc.returncode == 0, proc.stderr
    assert ("Prepare a trained checkpoint for release (mmseg's "
            '``tools/misc/publish_model.py``, read safely).') in ' '.join(
                proc.stdout.split())  # argparse wraps it to the terminal
