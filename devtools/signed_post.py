"""What `make trigger` and `make carrier` share: send a signed webhook body to the gateway, as the
outside service would, print the answer and exit with it."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from typing import NoReturn


def send(tool: str, url: str, body: bytes, signature_header: str, signature: str, dry_run: bool,
         summary: str) -> NoReturn | None:
    """POST `body` with `signature_header: signature` to `url`; with `dry_run`, print both instead.
    Exits 0 on a 2xx answer, 1 otherwise, with `[tool] summary -> status` and the answer's body."""
    if dry_run:
        print(f"{signature_header}: {signature}\n{body.decode()}")
        return None
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", signature_header: signature})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode(errors="replace")
    except urllib.error.URLError as error:
        raise SystemExit(f"[{tool}] {url} did not answer ({error.reason}); is the gateway running?") from None
    print(f"[{tool}] {summary} -> {status}\n{text}")
    sys.exit(0 if 200 <= status < 300 else 1)
