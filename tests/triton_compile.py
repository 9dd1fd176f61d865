"""Triton kernels compiled for a CUDA GPU by Triton's own compiler, which
needs no GPU (the interpreter runs the same source without compiling it):
what the interpreter accepts but a GPU would refuse fails here, and the
cubin's resource usage (read by the cuobjdump Triton ships) shows register
spills. Compiled in a subprocess, outside the interpreter the tests set."""
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def sm90_resources(kernel, signature, constexprs, **options):
    """``(shared memory bytes, stack bytes or None)`` of ``kernel``
    compiled for sm_90 (Hopper) with ``signature`` (argument name to
    ``'*fp16'``, ``'i32'``, ``'constexpr'``...), ``constexprs`` and the
    launch ``options`` (``num_warps``, ``num_stages``)."""
    import re
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    k = triton.compile(
        ASTSource(fn=kernel, signature=signature, constexprs=constexprs),
        target=GPUTarget('cuda', 90, 32),
        options=options)
    cuobjdump = osp.join(
        osp.dirname(triton.__file__), 'backends', 'nvidia', 'bin', 'cuobjdump')
    with tempfile.NamedTemporaryFile(suffix='.cubin') as f:
        f.write(k.asm['cubin'])
        f.flush()
        usage = subprocess.run([cuobjdump, '-res-usage', f.name],
                               capture_output=True,
                               text=True).stdout
    stack = re.search(r'STACK:(\d+)', usage)
    return k.metadata.shared, int(stack.group(1)) if stack else None


def run_compile_script(script: str, cases: list) -> list:
    """Runs ``script`` (which reads ``json.loads(sys.argv[1])``, may import
    this module, and prints a JSON list last) on ``cases`` with the
    interpreter off; returns that list."""
    proc = subprocess.run([sys.executable, '-c', script,
                           json.dumps(cases)],
                          cwd=REPO,
                          env=dict(
                              os.environ,
                              PYTHONPATH=os.pathsep.join(
                                  [REPO, osp.join(REPO, 'tests')]),
                              TRITON_INTERPRET='0'),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])
