"""What users get (README, docs, the package, configs, tools) cites only
what ships with it: the network is described in docs/architecture.md, not
in a reference file outside the repository."""
import glob
import os.path as osp
import re

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
USER_FACING = [
    'README.md', 'docs/**/*', 'mmseg_vvt/**/*', 'configs/**/*', 'tools/**/*'
]
PRIVATE = re.compile(r'VVT_SPEC|\.\./shared\b')


def test_no_reference_to_files_outside_the_repository():
    found = []
    for pattern in USER_FACING:
        for path in glob.glob(osp.join(REPO, pattern), recursive=True):
            if not osp.isfile(path) or '__pycache__' in path:
                continue
            try:
                with open(path, encoding='utf-8') as f:
                    text = f.read()
            except UnicodeDecodeError:  # images, checkpoints
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if PRIVATE.search(line):
                    found.append(
                        f'{osp.relpath(path, REPO)}:{number}: {line.strip()}')
    assert not found, ('cite docs/architecture.md instead:\n' +
                       '\n'.join(found))
