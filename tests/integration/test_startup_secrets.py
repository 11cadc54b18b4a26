"""Real gateway and worker processes outside development mode refuse to start with missing,
development or short secrets, saying which variable to set; in development mode they start and say so
first. (Every other integration test runs its stack outside development mode, with strong secrets.)"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.harness import Process, Stack, eventually, free_port

COMMANDS = {"gateway": [sys.executable, "-m", "gateway"], "worker": [sys.executable, "-m", "streams"]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str) -> Iterator[Stack]:
    """Only the stack's environment and directories: each test starts its own process."""
    started = Stack(bootstrap=kafka_bootstrap, name="secrets")
    try:
        yield started
    finally:
        started.stop()


def start(stack: Stack, name: str, unset: tuple[str, ...] = (), **variables: str) -> Process:
    """Process `name` with the stack's environment, `variables` on top and `unset` removed."""
    env = stack.env(**variables)
    for variable in unset:
        env.pop(variable, None)
    log_path = stack.base_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    return Process(name=name, command=COMMANDS[name], env=env, log_path=log_path, port=0).start()


def exit_status(process: Process) -> int:
    assert process.popen is not None
    try:
        return process.popen.wait(timeout=120)
    finally:
        process.stop()


def test_a_gateway_without_secrets_and_without_development_mode_exits_saying_what_to_set(stack: Stack) -> None:
    # Given a gateway started with neither secret nor FC_DEVELOPMENT
    gateway = start(stack, "gateway", unset=("GATEWAY_JWT_SECRET", "STRIPE_WEBHOOK_SECRET"))
    # When it starts
    status = exit_status(gateway)
    # Then it exits non-zero with one line per variable to set, and no traceback
    log = gateway.log_path.read_text()
    assert status == 1, log
    assert "the gateway refuses to start outside development mode" in log
    assert "GATEWAY_JWT_SECRET is not set: set it to a random secret of at least 32 bytes" in log
    assert "STRIPE_WEBHOOK_SECRET is not set: set it to the signing secret" in log
    assert "Traceback" not in log and "gateway on http" not in log


def test_a_worker_with_the_repository_jwt_secret_and_a_short_webhook_secret_exits(stack: Stack) -> None:
    worker = start(stack, "worker", GATEWAY_JWT_SECRET="fusioncommerce-development-secret-change-me",
                   STRIPE_WEBHOOK_SECRET="whsec_" + "x" * 20)
    status = exit_status(worker)
    log = worker.log_path.read_text()
    assert status == 1, log
    assert "the worker refuses to start outside development mode" in log
    assert "GATEWAY_JWT_SECRET is the repository's development value" in log
    assert "STRIPE_WEBHOOK_SECRET is 26 bytes, shorter than 32" in log
    assert "Traceback" not in log and "serving reads" not in log


def test_in_development_mode_a_gateway_without_secrets_starts_and_says_so_first(stack: Stack) -> None:
    # Given a gateway in development mode with no secrets of its own
    gateway = start(stack, "gateway", unset=("GATEWAY_JWT_SECRET", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY"),
                    FC_DEVELOPMENT="1", GATEWAY_PORT=str(free_port()))
    try:
        # When it has started
        def serving() -> bool:
            assert gateway.running, gateway.log_tail()
            return "gateway on http" in gateway.log_path.read_text()

        eventually(serving, 120, "the gateway in development mode starting")
        # Then its first line says it runs in development mode, with the repository's secrets
        first = gateway.log_path.read_text().splitlines()[0]
        assert "development mode (FC_DEVELOPMENT=1): using the repository's development JWT secret, webhook secret " \
               "and Stripe test key; never use this outside a laptop" in first
    finally:
        gateway.stop()
