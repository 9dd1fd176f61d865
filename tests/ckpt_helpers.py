"""Malicious and damaged checkpoints, and a local HTTP server to serve them,
for the tests of checkpoint safety (on the test path through
``pythonpath = tests`` in setup.cfg)."""
import contextlib
import functools
import http.server
import os
import threading

import torch


class RunsCode:
    """Unpickling this creates the directory ``path`` (arbitrary code, as
    an attacker's ``os.system`` would run)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


def write_malicious(path, marker):
    """A checkpoint whose unpickling would create ``marker``."""
    torch.save(
        {
            'state_dict': {
                'w': torch.zeros(2)
            },
            'meta': {
                'note': RunsCode(marker)
            }
        }, str(path))
    return str(path)


def write_truncated(src, dst, keep=0.5):
    """``dst``: the first ``keep`` fraction of ``src`` (a killed save)."""
    with open(src, 'rb') as f:
        data = f.read()
    with open(dst, 'wb') as f:
        f.write(data[:int(len(data) * keep)])
    return str(dst)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):  # keep the test output clean
        pass


@contextlib.contextmanager
def serve_directory(root, timeout=30):
    """Serve ``root`` on 127.0.0.1 (a free port) while the block runs.

    Yields the base URL. The server thread is stopped and joined on exit;
    each request may take at most ``timeout`` seconds.
    """
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.timeout = timeout
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs=dict(poll_interval=0.05),
        daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout)


#: environment that keeps requests to the local server off any proxy
NO_PROXY_ENV = {
    'no_proxy': '127.0.0.1,localhost',
    'NO_PROXY': '127.0.0.1,localhost'
}
