"""stripe-mock, Stripe's API simulator, built from its Go module and run on loopback.

    python -m devtools.stripe_mock fetch   # `go install` the pinned version into the cache
    python -m devtools.stripe_mock run     # fetch, serve on 127.0.0.1:FC_STRIPE_MOCK_PORT until SIGTERM

stripe-mock is stateless: every answer is a fixture shaped by the request. A created object gets a
new id each call and ids in the path are echoed; amount and currency are echoed as sent (unchecked),
metadata never; statuses are the fixture's (a captured intent still says `requires_payment_method`);
idempotency keys are reflected in a header but not honoured; it rejects only what the OpenAPI schema
forbids (a missing or non-integer amount, unknown parameters). It sends no webhooks
(devtools/stripe_trigger.py plays that part). Tests start their own on a free port through
`StripeMock`.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import time
import urllib.error
from pathlib import Path

from devtools.processes import go_install, serve_in_foreground, terminate
from devtools.stack import http_status
from streams.settings import load

MODULE = "github.com/stripe/stripe-mock"
# The newest tag the Go module proxy serves (`go list -m -versions github.com/stripe/stripe-mock`).
VERSION = "v0.203.0"
HOST = "127.0.0.1"


def fetch(cache_dir: Path) -> Path:
    """The pinned stripe-mock, built with `go install` into `<cache_dir>/bin` the first time."""
    return go_install("stripe-mock", MODULE, VERSION, cache_dir, "`make stripe-mock`")


def _refuse_taken(port: int) -> None:
    """Fail before starting if another server holds the port: it, not our process, would answer the
    readiness check."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise SystemExit(f"[stripe-mock] {HOST}:{port} is taken ({error.strerror}); stop what listens "
                             "there or set FC_STRIPE_MOCK_PORT to another port.") from None


class StripeMock:
    """One stripe-mock process answering HTTP on 127.0.0.1 only."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.http_port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        assert self.http_port is not None, "StripeMock.start() was not called"
        return f"http://{HOST}:{self.http_port}"

    def start(self, http_port: int, log_file: Path | None = None, timeout: float = 30.0) -> subprocess.Popen[bytes]:
        self.http_port = http_port
        _refuse_taken(http_port)
        # stripe-mock starts HTTPS on all interfaces (:12112) unless it is given an address of its own
        # (`-http-addr` alone does not turn it off), so pin it to a port the system picks on loopback.
        command = [str(fetch(self.cache_dir)), "-http-addr", f"{HOST}:{http_port}", "-https-addr", f"{HOST}:0"]
        out = open(log_file, "ab") if log_file else None
        self.process = process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT if out else None)
        started = time.monotonic()
        self._wait_until_answering(timeout, log_file)
        print(f"[stripe-mock] listening on {self.base_url} in {time.monotonic() - started:.1f}s", flush=True)
        return process

    def _wait_until_answering(self, timeout: float, log_file: Path | None) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                where = f"; see {log_file}" if log_file else " (output above)"
                raise SystemExit(f"[stripe-mock] exited with code {self.process.returncode} while starting "
                                 f"on {self.base_url}{where}; is the port taken?")
            try:
                http_status(f"{self.base_url}/v1/balance")  # any answer, even 401, means it serves
                return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"[stripe-mock] did not answer on {self.base_url} within {timeout:.0f}s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        terminate(self.process, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "run"])
    args = parser.parse_args()
    settings = load()
    if args.command == "fetch":
        fetch(settings.stripe_mock_cache_dir)
        return
    if not settings.uses_stripe_mock:
        raise SystemExit(f"STRIPE_API_BASE={settings.stripe_api_base} is set: using that API, not starting "
                         "stripe-mock.")
    mock = StripeMock(settings.stripe_mock_cache_dir)
    serve_in_foreground("stripe-mock", lambda: mock.start(settings.stripe_mock_port), mock.stop)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
