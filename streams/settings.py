"""Every setting of the project, read from environment variables in this one place (pydantic-settings).

Each variable has a local default so that `make run` works on a fresh machine, except the secrets:
their repository values (the JWT secret, the Stripe webhook secret and the stripe-mock key) apply
only in development mode (`FC_DEVELOPMENT=1`, which `make run` sets). Outside it the gateway and the
workers refuse to start with a missing, development or short secret (`load_for`). Names carry an
`FC_` prefix unless an issue or a peer tool fixes them.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import limits
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEVELOPMENT_JWT_SECRET = "fusioncommerce-development-secret-change-me"
# stripe-mock accepts any test-mode key; webhooks in development are signed by devtools/stripe_trigger.py.
DEVELOPMENT_STRIPE_API_KEY = "sk_test_123"
DEVELOPMENT_STRIPE_WEBHOOK_SECRET = "whsec_fusioncommerce_development"
DEVELOPMENT_CARRIER_WEBHOOK_SECRET = "carrier_fusioncommerce_development"
# HS256 and Stripe's webhook HMAC are only as strong as their key; Stripe's own `whsec_` secrets are longer.
MIN_SECRET_BYTES = 32
RANDOM_SECRET_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _development_default(value: str) -> Any:
    """A default that applies in development mode only: outside it the setting is empty (unset)."""
    return lambda data: value if data.get("development") else ""


_DURATION = re.compile(r"\s*(\d+)\s*(s|m|h|d)\s*")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """ "30s", "5m", "2h" or "1d"."""
    found = _DURATION.fullmatch(text)
    if found is None:
        raise ValueError(f'{text!r} is not a duration: write "<count><s|m|h|d>", such as 30s, 5m, 2h or 1d')
    return timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)])


class Settings(BaseSettings):
    """Attribute names are the project's; each field's alias is its environment variable. The
    secrets stay out of the repr, so that a logged Settings shows none."""

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, frozen=True, extra="forbid",
        validate_by_name=True, validate_by_alias=True,
    )

    # Development mode: the repository's secrets as defaults (first: the secrets' defaults read it).
    development: bool = Field(False, validation_alias="FC_DEVELOPMENT")
    # How the processes log (streams/logs.py): human lines, or one JSON object a line.
    log_format: Literal["text", "json"] = Field("text", validation_alias="FC_LOG_FORMAT")

    # Kafka. An empty bootstrap means "the project's own broker" at broker_host:broker_port.
    external_bootstrap: str = Field("", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    broker_port: int = Field(9092, validation_alias="FC_BROKER_PORT", ge=0, le=65535)
    controller_port: int = Field(9093, validation_alias="FC_CONTROLLER_PORT", ge=0, le=65535)
    broker_data_dir: Path = Field(PROJECT_ROOT / ".data" / "kafka", validation_alias="FC_BROKER_DATA_DIR")
    kafka_cache_dir: Path = Field(PROJECT_ROOT / ".cache" / "kafka", validation_alias="FC_KAFKA_CACHE_DIR")
    topic_partitions: int = Field(8, validation_alias="FC_TOPIC_PARTITIONS", ge=1)
    # Prefix of every topic name, so that several stacks can share one broker (tests do).
    topic_namespace: str = Field("", validation_alias="FC_TOPIC_NAMESPACE")

    # Topics: 1 replica on the development broker; a real cluster wants 3 and min.insync.replicas 2.
    topic_replication_factor: int = Field(1, validation_alias="FC_TOPIC_REPLICATION_FACTOR", ge=1)
    topic_min_insync_replicas: int = Field(1, validation_alias="FC_TOPIC_MIN_INSYNC_REPLICAS", ge=1)

    # Worker (streams/runtime/). The app id is the consumer group of a worker running every agent.
    app_id: str = Field("fusioncommerce", validation_alias="FC_APP_ID", min_length=1)
    worker_data_dir: Path = Field(PROJECT_ROOT / ".data" / "worker-1", validation_alias="FC_WORKER_DATA_DIR")
    # The address the worker's read server binds; the gateway reaches it at `worker_url`.
    worker_host: str = Field("127.0.0.1", validation_alias="FC_WORKER_HOST")
    worker_port: int = Field(6066, validation_alias="FC_WORKER_PORT", ge=0, le=65535)
    advertised_url: str = Field("", validation_alias="FC_WORKER_ADVERTISED_URL")
    # Names this worker instance: its transactional id is `<group>-<worker id>`, the same across
    # its restarts (a restart fences its killed predecessor's open transaction at once) and unique
    # among live instances. By default its read address, which no two live workers share.
    worker_id_override: str = Field("", validation_alias="FC_WORKER_ID")
    # How long a read of a missing key waits for it to appear (read-your-write after a 202).
    read_miss_wait_seconds: float = Field(3.0, validation_alias="FC_READ_MISS_WAIT", ge=0)
    # A commit every interval or every batch of events, whichever comes first; every hop of a
    # request waits for one.
    commit_interval_seconds: float = Field(0.1, validation_alias="FC_COMMIT_INTERVAL", gt=0)
    commit_batch_size: int = Field(2000, validation_alias="FC_COMMIT_BATCH_SIZE", ge=1)
    # The broker aborts a transaction left open this long by a worker that died and did not come back.
    transaction_timeout_seconds: float = Field(10.0, validation_alias="FC_TRANSACTION_TIMEOUT", gt=0)
    # Tests only: make the runtime's produce or commit fail every Nth time (streams/runtime/faults.py).
    inject_faults: str = Field("", validation_alias="FC_INJECT_FAULTS")
    hold_ttl_seconds: float = Field(900.0, validation_alias="FC_HOLD_TTL_SECONDS", gt=0)
    # Co-purchase scores halve every this many days (streams/tables/recommendations.py).
    recommendation_half_life_days: float = Field(30.0, validation_alias="FC_RECOMMENDATION_HALF_LIFE_DAYS", gt=0,
                                                 le=1_000_000)
    expiry_scan_interval_seconds: float = Field(1.0, validation_alias="FC_EXPIRY_SCAN_INTERVAL", gt=0)

    # Gateway. Bearer tokens are HS256 with `jwt_secret`; with an issuer or audience set, tokens
    # must carry that `iss` or `aud`.
    gateway_port: int = Field(8080, validation_alias="GATEWAY_PORT", ge=0, le=65535)
    jwt_secret: str = Field(default_factory=_development_default(DEVELOPMENT_JWT_SECRET),
                            validation_alias="GATEWAY_JWT_SECRET", repr=False)
    jwt_issuer: str = Field("", validation_alias="GATEWAY_JWT_ISSUER")
    jwt_audience: str = Field("", validation_alias="GATEWAY_JWT_AUDIENCE")
    # The gateway's edge (gateway/edge.py). Budgets are `limits` strings ("20/second;600/minute"),
    # per principal (tenant + sub) and per category, and one per client address for everything;
    # at most `max_long_polls` long-polls of one principal wait at once. "off" counts nothing.
    rate_limit_writes: str = Field("20/second;600/minute", validation_alias="GATEWAY_RATE_LIMIT_WRITES")
    rate_limit_reads: str = Field("100/second;3000/minute", validation_alias="GATEWAY_RATE_LIMIT_READS")
    rate_limit_long_polls: str = Field("10/second;300/minute", validation_alias="GATEWAY_RATE_LIMIT_LONG_POLLS")
    rate_limit_per_address: str = Field("500/second", validation_alias="GATEWAY_RATE_LIMIT_PER_ADDRESS")
    max_long_polls: int = Field(10, validation_alias="GATEWAY_MAX_LONG_POLLS", ge=1)
    max_body_bytes: int = Field(64 * 1024, validation_alias="GATEWAY_MAX_BODY_BYTES", ge=1024)
    # Origins of browser storefronts allowed to call the gateway (CORS), comma-separated; "*" any.
    # None by default outside development mode.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default_factory=lambda data: ("*",) if data.get("development") else (), validation_alias="GATEWAY_CORS_ORIGINS")
    # Worker web endpoints the gateway may ask; any of them routes a read to the key's owner.
    worker_urls: Annotated[tuple[str, ...], NoDecode] = Field(("http://127.0.0.1:6066",),
                                                               validation_alias="FC_WORKER_URLS")

    # Stripe. The API base defaults to the project's own stripe-mock, so that `make run` needs no account.
    stripe_mock_port: int = Field(12111, validation_alias="FC_STRIPE_MOCK_PORT", ge=0, le=65535)
    stripe_api_key: str = Field(default_factory=_development_default(DEVELOPMENT_STRIPE_API_KEY),
                                validation_alias="STRIPE_API_KEY", repr=False)
    stripe_api_base: str = Field(default_factory=lambda data: f"http://127.0.0.1:{data.get('stripe_mock_port', 12111)}",
                                 validation_alias="STRIPE_API_BASE")
    stripe_webhook_secret: str = Field(default_factory=_development_default(DEVELOPMENT_STRIPE_WEBHOOK_SECRET),
                                       validation_alias="STRIPE_WEBHOOK_SECRET", repr=False)
    # The carrier aggregator's (EasyPost's) webhook secret: `X-Hmac-Signature` on tracking updates.
    carrier_webhook_secret: str = Field(default_factory=_development_default(DEVELOPMENT_CARRIER_WEBHOOK_SECRET),
                                        validation_alias="CARRIER_WEBHOOK_SECRET", repr=False)
    # A Stripe call makes up to `stripe_attempts` HTTP attempts of at most `stripe_timeout_seconds` each
    # (the SDK retries transient failures with its own backoff) and fails at its deadline whatever is
    # left: keep the deadline well below the transaction timeout, so a hanging Stripe slows payments only.
    stripe_timeout_seconds: float = Field(5.0, validation_alias="FC_STRIPE_TIMEOUT", gt=0)
    stripe_attempts: int = Field(3, validation_alias="FC_STRIPE_ATTEMPTS", ge=1)
    stripe_call_deadline_seconds: float = Field(20.0, validation_alias="FC_STRIPE_CALL_DEADLINE", gt=0)
    # A JSON line per HTTP attempt at a Stripe call, retries included, appended by every process
    # (tests count calls with it).
    stripe_call_log: Path | None = Field(None, validation_alias="FC_STRIPE_CALL_LOG")

    # Notifications (streams/agents/notifications.py): email through SMTP. `SMTP_URL` is
    # smtp://[user:password@]host[:port] (plain), smtp+starttls://... (STARTTLS required) or
    # smtps://... (TLS from the start); in development mode `make run`'s own server (devtools/smtp.py,
    # port `smtp_port`, messages kept as .eml files in `mail_dir`). Outside development mode the
    # notifications agent refuses to start without it. A send is bounded by `smtp_timeout_seconds`,
    # well below the transaction timeout, so a slow server slows notifications only.
    smtp_port: int = Field(8025, validation_alias="FC_SMTP_PORT", ge=0, le=65535)
    smtp_url: str = Field(default_factory=lambda data: (f"smtp://127.0.0.1:{data.get('smtp_port', 8025)}"
                                                        if data.get("development") else ""),
                          validation_alias="SMTP_URL", repr=False)
    smtp_timeout_seconds: float = Field(5.0, validation_alias="FC_SMTP_TIMEOUT", gt=0)
    mail_dir: Path = Field(PROJECT_ROOT / ".data" / "mail", validation_alias="FC_MAIL_DIR")
    mail_from: str = Field("FusionCommerce <notifications@fusioncommerce.example>", validation_alias="FC_MAIL_FROM")
    # The directory of recipients (a known gap: no address book yet). `{sub}` is the customer's
    # token subject, `{tenant}` the tenant; .example addresses are never delivered anywhere.
    mail_customer_address: str = Field("{sub}@{tenant}.customers.example", validation_alias="FC_MAIL_CUSTOMER_ADDRESS")
    mail_vendor_address: str = Field("orders@{tenant}.vendors.example", validation_alias="FC_MAIL_VENDOR_ADDRESS")
    mail_locale: str = Field("en", validation_alias="FC_MAIL_LOCALE")
    # A message the server failed to take for now (a 4xx answer, no connection, no answer within
    # `smtp_timeout_seconds`) is tried again after each wait in turn, then recorded `refused`; a 5xx
    # answer is recorded at once. Same format as `webhook_retry_schedule`.
    mail_retry_schedule: Annotated[tuple[timedelta, ...], NoDecode] = Field(
        tuple(parse_duration(d) for d in ("30s", "2m", "10m", "1h", "6h")), validation_alias="FC_MAIL_RETRY_SCHEDULE")

    # Outbound webhooks (streams/agents/webhooks.py, connectors/webhooks.py). An attempt is bounded by
    # `webhook_timeout_seconds`; a failed delivery is tried again after each wait of
    # `webhook_retry_schedule` in turn (durations "30s", "5m", "2h", "1d"), then given up; an endpoint
    # whose every attempt failed for `webhook_disable_after` is disabled. Targets must be public
    # addresses over HTTPS unless `webhook_allow_private_targets` (on in development mode: the
    # walk-through's receiver is on 127.0.0.1).
    webhook_timeout_seconds: float = Field(10.0, validation_alias="WEBHOOK_TIMEOUT_SECONDS", gt=0)
    # (shorter in development mode, so the walk-through shows a retry within seconds)
    webhook_retry_schedule: Annotated[tuple[timedelta, ...], NoDecode] = Field(
        default_factory=lambda data: tuple(parse_duration(d) for d in (
            ("5s", "15s", "1m", "5m", "30m") if data.get("development") else ("1m", "5m", "30m", "2h", "5h", "10h", "10h"))),
        validation_alias="WEBHOOK_RETRY_SCHEDULE")
    webhook_disable_after: Annotated[timedelta, NoDecode] = Field(timedelta(days=3),
                                                                 validation_alias="WEBHOOK_DISABLE_AFTER")
    webhook_allow_private_targets: bool = Field(default_factory=lambda data: bool(data.get("development")),
                                                validation_alias="WEBHOOK_ALLOW_PRIVATE_TARGETS")

    # `make metrics`: a Prometheus server (devtools/prometheus.py) on 127.0.0.1 scraping the gateway
    # and `worker_urls` at /metrics, data under .data/prometheus.
    prometheus_port: int = Field(9090, validation_alias="FC_PROMETHEUS_PORT", ge=0, le=65535)

    @field_validator("rate_limit_writes", "rate_limit_reads", "rate_limit_long_polls", "rate_limit_per_address")
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        if value == "off":
            return value
        try:
            limits.parse_many(value)
        except ValueError:
            raise ValueError('a rate limit is "<count>/<second|minute|hour|day>", several joined by ";"') from None
        return value

    @field_validator("webhook_retry_schedule", "mail_retry_schedule", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return tuple(parse_duration(part) for part in value.split(",")) if isinstance(value, str) else value

    @field_validator("webhook_disable_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("worker_urls", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(url.strip() for url in value.split(",") if url.strip())
        return value

    # Fixed addresses: the project's broker, gateway and stripe-mock bind the loopback interface.
    @property
    def broker_host(self) -> str:
        return "127.0.0.1"

    @property
    def gateway_host(self) -> str:
        return "127.0.0.1"

    @property
    def stripe_mock_cache_dir(self) -> Path:
        return PROJECT_ROOT / ".cache" / "stripe-mock"

    @property
    def prometheus_cache_dir(self) -> Path:
        return PROJECT_ROOT / ".cache" / "prometheus"

    @property
    def prometheus_data_dir(self) -> Path:
        return PROJECT_ROOT / ".data" / "prometheus"

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

    def secret_problems(self) -> list[str]:
        """Why the gateway or a worker must not start with these secrets, one line per variable to
        set; none in development mode."""
        if self.development:
            return []
        random_secret = f"set it to a random secret of at least {MIN_SECRET_BYTES} bytes (`{RANDOM_SECRET_HINT}`)"
        webhook_secret = ("set it to the signing secret (whsec_...) of your Stripe webhook endpoint, "
                          "from Stripe's dashboard or `stripe listen`")
        problems = []
        for variable, value, development_value, advice in (
            ("GATEWAY_JWT_SECRET", self.jwt_secret, DEVELOPMENT_JWT_SECRET, random_secret),
            ("STRIPE_WEBHOOK_SECRET", self.stripe_webhook_secret, DEVELOPMENT_STRIPE_WEBHOOK_SECRET, webhook_secret),
            ("CARRIER_WEBHOOK_SECRET", self.carrier_webhook_secret, DEVELOPMENT_CARRIER_WEBHOOK_SECRET,
             "set it to the webhook secret of your EasyPost account (its webhook's `webhook_secret`)"),
        ):
            if not value:
                problems.append(f"{variable} is not set: {advice}")
            elif value == development_value:
                problems.append(f"{variable} is the repository's development value, which anyone can read: {advice}")
            elif len(value.encode()) < MIN_SECRET_BYTES:
                problems.append(f"{variable} is {len(value.encode())} bytes, shorter than {MIN_SECRET_BYTES}: {advice}")
        if not self.stripe_api_key:
            problems.append("STRIPE_API_KEY is not set: set it to your Stripe secret key (sk_live_... or sk_test_...)")
        return problems

    def development_notice(self) -> str:
        """The line a process logs first in development mode."""
        used = [what for what, value, development_value in (
            ("JWT secret", self.jwt_secret, DEVELOPMENT_JWT_SECRET),
            ("webhook secret", self.stripe_webhook_secret, DEVELOPMENT_STRIPE_WEBHOOK_SECRET),
            ("carrier webhook secret", self.carrier_webhook_secret, DEVELOPMENT_CARRIER_WEBHOOK_SECRET),
            ("Stripe test key", self.stripe_api_key, DEVELOPMENT_STRIPE_API_KEY),
        ) if value == development_value]
        listed = ", ".join(used[:-1]) + (" and " if len(used) > 1 else "") + used[-1] if used else ""
        using = f"using the repository's development {listed}" if used else "secrets as set"
        return f"development mode (FC_DEVELOPMENT=1): {using}; never use this outside a laptop"


# What to do about a value of the wrong type, by pydantic's error type.
_ADVICE = {
    "int_parsing": "is not a whole number; unset it or give an integer",
    "float_parsing": "is not a number; unset it or give a number",
    "bool_parsing": "is not a yes or no; unset it or give 1 or 0",
}


def _bad_values(exc: ValidationError) -> str:
    """One line per bad variable, each naming it: `FC_WORKER_PORT='x' is not a whole number; ...`."""
    variables = {name: str(field.validation_alias) for name, field in Settings.model_fields.items()}
    lines = []
    for error in exc.errors(include_url=False):
        if error["type"] == "default_factory_not_called":  # a consequence of another bad value
            continue
        variable = variables.get(str(error["loc"][0]), str(error["loc"][0])) if error["loc"] else "a setting"
        advice = _ADVICE.get(error["type"], f"is not valid ({error['msg']}); unset it or give a valid value")
        lines.append(f"{variable}={error['input']!r} {advice}")
    return "\n".join(lines)


def load() -> Settings:
    """The settings from the environment; a bad value exits with a line naming its variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit(_bad_values(exc)) from None


def load_for(process: str, settings: Settings | None = None) -> Settings:
    """`load()` for a process that holds the secrets (the gateway, a worker), or the `settings`
    it loaded already (to set up its logs first). Outside development mode it refuses missing,
    development or short secrets: SystemExit naming each variable to set, which exits 1 without a
    traceback. In development mode it logs so, as the process's first line."""
    settings = settings if settings is not None else load()
    problems = settings.secret_problems()
    if problems:
        raise SystemExit(
            f"the {process} refuses to start outside development mode (FC_DEVELOPMENT is off):\n"
            + "".join(f"  - {problem}\n" for problem in problems)
            + "On a laptop, FC_DEVELOPMENT=1 (what `make run` sets) uses the repository's development values."
        )
    if settings.development:
        logging.getLogger(process).warning("%s", settings.development_notice())
    return settings
