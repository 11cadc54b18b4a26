"""Child processes of the dev tools: stop one politely, or serve one in the foreground of a Procfile."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn, Protocol


def terminate(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM and wait; SIGKILL what is still running after `timeout` seconds."""
    terminate_all([process], timeout)


def terminate_all(processes: Iterable[subprocess.Popen[bytes] | None], timeout: float) -> None:
    """`terminate` for several children at once: SIGTERM them all, so that they shut down in parallel,
    then wait for each until one shared deadline and SIGKILL what is still running."""
    running = [p for p in processes if p is not None and p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Waitable(Protocol):
    """What `serve_in_foreground` serves: a child process, or a group of them that waits like one."""

    def wait(self) -> int: ...


class _StopRequested(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _StopRequested


def serve_in_foreground(tag: str, start: Callable[[], Waitable], stop: Callable[[], None]) -> NoReturn:
    """Start a child and wait for it. SIGTERM or SIGINT (honcho, Ctrl-C) stops it and exits 0; a child
    that dies by itself exits with its code, so that honcho stops its siblings too."""
    # The handler only unwinds: stopping inside it would call Popen.wait while the interrupted
    # wait() below still holds the Popen's waitpid lock, and hang for good.
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        code = start().wait()
    except _StopRequested:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"[{tag}] stopping ...", flush=True)
        stop()
        sys.exit(0)
    raise SystemExit(f"[{tag}] exited with code {code}; see its output above" if code else 0)


def go_install(tool: str, package: str, version: str, cache_dir: Path, advice: str) -> Path:
    """`go install <package>@<version>` into `<cache_dir>/bin`, once: a stamp file names the version
    built (binaries built by go install cannot tell theirs). `advice` says what to retry on failure."""
    binary = cache_dir / "bin" / package.rsplit("/", 1)[-1]
    stamp = cache_dir / f".installed-{version}"
    if stamp.exists() and binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise SystemExit(f"Go (go) is not on PATH; install it (apt-get install golang) and retry {advice}.")
    print(f"[{tool}] installing {package}@{version} with go into {binary.parent} ...", flush=True)
    started = time.monotonic()
    built = subprocess.run([go, "install", f"{package}@{version}"], env={**os.environ, "GOBIN": str(binary.parent)},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if built.returncode != 0:
        sys.stdout.write("\n".join(built.stdout.splitlines()[-40:]) + "\n")
        raise SystemExit(f"[{tool}] go install failed (output above); check access to the Go module proxy "
                         f"and retry {advice}.")
    for old in cache_dir.glob(".installed-v*"):
        old.unlink()
    stamp.touch()
    print(f"[{tool}] ready at {binary} ({time.monotonic() - started:.0f}s)", flush=True)
    return binary
