"""A running `cachebridge-dataplane local` (writer and reader in one process, on the
embedded store) for the tests that talk to the real binary over HTTP."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import repo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


@contextlib.contextmanager
def running_local(*args: str) -> Iterator[str]:
    """Starts `local` with `args` on a free port, waits until it serves data, yields its
    base URL and stops it on exit."""
    binary = repo.build_dataplane()
    port = free_port()
    process = subprocess.Popen([str(binary), "local", "--listen", f"127.0.0.1:{port}", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        # A separate process: polling until it serves is the only way to know it is up.
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode()
            try:
                get(f"{base}/api/v1/market/overview")
                break
            except OSError:
                assert time.monotonic() < deadline, "cachebridge-dataplane local did not serve in time"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
