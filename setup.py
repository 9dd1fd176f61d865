"""mmseg-vvt: the Vicinity Vision Transformer as an mmsegmentation backbone."""
import os.path as osp

from setuptools import find_packages, setup


def readme():
    with open(osp.join(osp.dirname(__file__), 'README.md'), encoding='utf-8') as f:
        return f.read()


def version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'mmseg_vvt', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmseg-vvt',
    version=version(),
    description='Vicinity Vision Transformer (VVT) backbone for mmsegmentation',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.9',
    # torch and mmcv (with compiled ops) are installed first by
    # tools/setup_env.sh: listing torch here would let pip pull a CUDA build.
    install_requires=[
        'mmengine>=0.10.0,<1.0',
        'mmsegmentation>=1.2.0,<1.3',
        'numpy',
    ],
    extras_require={'tests': ['pytest>=7']},
    license='Apache-2.0',
    zip_safe=False,
)
