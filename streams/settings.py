"""Every setting of the project, read from environment variables in this one place.

Each variable has a local default so that `make run` works on a fresh machine. Names carry an
`FC_` prefix unless an issue or a peer tool fixes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEVELOPMENT_JWT_SECRET = "fusioncommerce-development-secret-change-me"
# stripe-mock accepts any test-mode key; webhooks in development are signed by devtools/stripe_trigger.py.
DEVELOPMENT_STRIPE_API_KEY = "sk_test_123"
DEVELOPMENT_STRIPE_WEBHOOK_SECRET = "whsec_fusioncommerce_development"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a whole number; unset it or give an integer") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number; unset it or give a number") from None


def _env_path_or_none(name: str) -> Path | None:
    raw = os.environ.get(name, "")
    return Path(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    # Kafka. An empty bootstrap means "the project's own broker" at broker_host:broker_port.
    external_bootstrap: str = field(default_factory=lambda: _env("KAFKA_BOOTSTRAP_SERVERS", ""))
    broker_host: str = "127.0.0.1"
    broker_port: int = field(default_factory=lambda: _env_int("FC_BROKER_PORT", 9092))
    controller_port: int = field(default_factory=lambda: _env_int("FC_CONTROLLER_PORT", 9093))
    broker_data_dir: Path = field(
        default_factory=lambda: Path(_env("FC_BROKER_DATA_DIR", str(PROJECT_ROOT / ".data" / "kafka")))
    )
    kafka_cache_dir: Path = field(
        default_factory=lambda: Path(_env("FC_KAFKA_CACHE_DIR", str(PROJECT_ROOT / ".cache" / "kafka")))
    )
    topic_partitions: int = field(default_factory=lambda: _env_int("FC_TOPIC_PARTITIONS", 8))
    # Prefix of every topic name, so that several stacks can share one broker (tests do).
    topic_namespace: str = field(default_factory=lambda: _env("FC_TOPIC_NAMESPACE", ""))

    # Topics: 1 replica on the development broker; a real cluster wants 3 and min.insync.replicas 2.
    topic_replication_factor: int = field(default_factory=lambda: _env_int("FC_TOPIC_REPLICATION_FACTOR", 1))
    topic_min_insync_replicas: int = field(default_factory=lambda: _env_int("FC_TOPIC_MIN_INSYNC_REPLICAS", 1))

    # Worker (streams/runtime/). The app id is the consumer group of a worker running every agent.
    app_id: str = field(default_factory=lambda: _env("FC_APP_ID", "fusioncommerce"))
    worker_data_dir: Path = field(
        default_factory=lambda: Path(_env("FC_WORKER_DATA_DIR", str(PROJECT_ROOT / ".data" / "worker-1")))
    )
    # The address the worker's read server binds; the gateway reaches it at `worker_url`.
    worker_host: str = field(default_factory=lambda: _env("FC_WORKER_HOST", "127.0.0.1"))
    worker_port: int = field(default_factory=lambda: _env_int("FC_WORKER_PORT", 6066))
    advertised_url: str = field(default_factory=lambda: _env("FC_WORKER_ADVERTISED_URL", ""))
    # Names this worker instance: its transactional id is `<group>-<worker id>`, the same across
    # its restarts (a restart fences its killed predecessor's open transaction at once) and unique
    # among live instances. By default its read address, which no two live workers share.
    worker_id_override: str = field(default_factory=lambda: _env("FC_WORKER_ID", ""))
    # How long a read of a missing key waits for it to appear (read-your-write after a 202).
    read_miss_wait_seconds: float = field(default_factory=lambda: _env_float("FC_READ_MISS_WAIT", 3.0))
    # A commit every interval or every batch of events, whichever comes first; every hop of a
    # request waits for one.
    commit_interval_seconds: float = field(default_factory=lambda: _env_float("FC_COMMIT_INTERVAL", 0.1))
    commit_batch_size: int = field(default_factory=lambda: _env_int("FC_COMMIT_BATCH_SIZE", 2000))
    # The broker aborts a transaction left open this long by a worker that died and did not come back.
    transaction_timeout_seconds: float = field(default_factory=lambda: _env_float("FC_TRANSACTION_TIMEOUT", 10.0))
    # Tests only: make the runtime's produce or commit fail every Nth time (streams/runtime/faults.py).
    inject_faults: str = field(default_factory=lambda: _env("FC_INJECT_FAULTS", ""))
    hold_ttl_seconds: float = field(default_factory=lambda: _env_float("FC_HOLD_TTL_SECONDS", 900.0))
    expiry_scan_interval_seconds: float = field(
        default_factory=lambda: _env_float("FC_EXPIRY_SCAN_INTERVAL", 1.0)
    )

    # Gateway.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = field(default_factory=lambda: _env_int("GATEWAY_PORT", 8080))
    jwt_secret: str = field(default_factory=lambda: _env("GATEWAY_JWT_SECRET", DEVELOPMENT_JWT_SECRET))
    # Worker web endpoints the gateway may ask; any of them routes a read to the key's owner.
    worker_urls: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            u.strip() for u in _env("FC_WORKER_URLS", "http://127.0.0.1:6066").split(",") if u.strip()
        )
    )

    # Stripe. The API base defaults to the project's own stripe-mock, so that `make run` needs no account.
    stripe_mock_port: int = field(default_factory=lambda: _env_int("FC_STRIPE_MOCK_PORT", 12111))
    stripe_mock_cache_dir: Path = PROJECT_ROOT / ".cache" / "stripe-mock"
    stripe_api_key: str = field(default_factory=lambda: _env("STRIPE_API_KEY", DEVELOPMENT_STRIPE_API_KEY))
    stripe_api_base: str = field(
        default_factory=lambda: _env("STRIPE_API_BASE", f"http://127.0.0.1:{_env_int('FC_STRIPE_MOCK_PORT', 12111)}")
    )
    stripe_webhook_secret: str = field(
        default_factory=lambda: _env("STRIPE_WEBHOOK_SECRET", DEVELOPMENT_STRIPE_WEBHOOK_SECRET)
    )
    # A Stripe call makes up to `stripe_attempts` HTTP attempts of at most `stripe_timeout_seconds` each
    # (the SDK retries transient failures with its own backoff) and fails at its deadline whatever is
    # left: keep the deadline well below the transaction timeout, so a hanging Stripe slows payments only.
    stripe_timeout_seconds: float = field(default_factory=lambda: _env_float("FC_STRIPE_TIMEOUT", 5.0))
    stripe_attempts: int = field(default_factory=lambda: _env_int("FC_STRIPE_ATTEMPTS", 3))
    stripe_call_deadline_seconds: float = field(default_factory=lambda: _env_float("FC_STRIPE_CALL_DEADLINE", 20.0))
    # A JSON line per HTTP attempt at a Stripe call, retries included, appended by every process
    # (tests count calls with it).
    stripe_call_log: Path | None = field(default_factory=lambda: _env_path_or_none("FC_STRIPE_CALL_LOG"))

    @property
    def bootstrap_servers(self) -> str:
        return self.external_bootstrap or f"{self.broker_host}:{self.broker_port}"

    @property
    def worker_url(self) -> str:
        return self.advertised_url or f"http://{self.worker_host}:{self.worker_port}"

    @property
    def worker_id(self) -> str:
        return self.worker_id_override or f"{self.worker_host}-{self.worker_port}"

    @property
    def uses_external_broker(self) -> bool:
        return bool(self.external_bootstrap)

    @property
    def uses_stripe_mock(self) -> bool:
        return self.stripe_api_base.rstrip("/") == f"http://127.0.0.1:{self.stripe_mock_port}"


def load() -> Settings:
    return Settings()
