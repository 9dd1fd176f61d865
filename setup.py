"""mmseg-vvt: the Vicinity Vision Transformer as an mmsegmentation backbone."""
import os.path as osp

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))


def readme():
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        return f.read()


def version():
    scope = {}
    with open(osp.join(ROOT, 'mmseg_vvt', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def parse_requirements(fname='requirements.txt'):
    """The requirement lines of a pip requirements file, as mmseg's
    ``setup.py`` reads them: comments and blank lines dropped, ``-r FILE``
    followed (relative to the file), version specifiers and environment
    markers kept, so pip and ``tools/setup_env.sh`` install the same stack.
    """
    path = osp.join(ROOT, fname)
    requirements = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                target = osp.join(osp.dirname(fname), line[3:].strip())
                requirements += parse_requirements(target)
            elif line.startswith('-'):
                raise ValueError(f'{path}: pip option {line!r} cannot be an '
                                 'install requirement')
            else:
                requirements.append(line)
    return requirements


if __name__ == '__main__':
    setup(
        name='mmseg-vvt',
        version=version(),
        description='Vicinity Vision Transformer (VVT) backbone for '
        'mmsegmentation',
        long_description=readme(),
        long_description_content_type='text/markdown',
        url='https://arxiv.org/abs/2206.10552',
        packages=find_packages(
            exclude=('tests', 'tests.*', 'configs', 'tools')),
        python_requires='>=3.9',
        # torch and mmcv (with compiled ops) come first, from
        # tools/setup_env.sh or the user's own build: a torch requirement
        # would let pip pull a CUDA build (requirements/mminstall.txt).
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'tests': parse_requirements('requirements/tests.txt'),
            'lint': parse_requirements('requirements/lint.txt'),
            'mim': parse_requirements('requirements/mminstall.txt'),
            'optional': parse_requirements('requirements/optional.txt'),
        },
        license='Apache-2.0',
        zip_safe=False,
    )
