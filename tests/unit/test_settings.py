"""Settings from the environment: every variable keeps its name, bad values name their variable, and
outside development mode the gateway and the workers refuse missing, development or short secrets."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from streams.settings import Settings, load, load_for

# Written out here, not imported: the tests pin the repository's development values.
REPOSITORY_JWT_SECRET = "fusioncommerce-development-secret-change-me"
REPOSITORY_WEBHOOK_SECRET = "whsec_fusioncommerce_development"
STRONG_JWT_SECRET = "j" * 32
STRONG_WEBHOOK_SECRET = "whsec_" + "w" * 26  # 32 bytes, prefix included
STRIPE_KEY = "sk_test_unit"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without any setting of the machine's own (`make test` may run with
    KAFKA_BOOTSTRAP_SERVERS or STRIPE_API_BASE set)."""
    for name in list(os.environ):
        if name.startswith(("FC_", "GATEWAY_", "STRIPE_", "KAFKA_")):
            monkeypatch.delenv(name)
    return monkeypatch


def production(env: pytest.MonkeyPatch, **variables: str) -> None:
    """Strong secrets, then `variables` on top (an empty value unsets)."""
    values = {"GATEWAY_JWT_SECRET": STRONG_JWT_SECRET, "STRIPE_WEBHOOK_SECRET": STRONG_WEBHOOK_SECRET,
              "CARRIER_WEBHOOK_SECRET": "c" * 32, "STRIPE_API_KEY": STRIPE_KEY, **variables}
    for name, value in values.items():
        if value:
            env.setenv(name, value)
        else:
            env.delenv(name, raising=False)


def test_strong_secrets_start_outside_development_mode(env: pytest.MonkeyPatch) -> None:
    # Given strong secrets and no development mode
    production(env)
    # When a process loads its settings
    settings = load_for("gateway")
    # Then it starts with exactly those secrets
    assert settings.development is False
    assert (settings.jwt_secret, settings.stripe_webhook_secret, settings.stripe_api_key) == (
        STRONG_JWT_SECRET, STRONG_WEBHOOK_SECRET, STRIPE_KEY)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"GATEWAY_JWT_SECRET": ""}, "GATEWAY_JWT_SECRET is not set"),
        ({"GATEWAY_JWT_SECRET": REPOSITORY_JWT_SECRET}, "GATEWAY_JWT_SECRET is the repository's development value"),
        ({"GATEWAY_JWT_SECRET": "j" * 31}, "GATEWAY_JWT_SECRET is 31 bytes, shorter than 32"),
        # 16 characters, 31 bytes in UTF-8: the length that counts is the key's bytes
        ({"GATEWAY_JWT_SECRET": "é" * 15 + "j"}, "GATEWAY_JWT_SECRET is 31 bytes, shorter than 32"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET is not set"),
        ({"STRIPE_WEBHOOK_SECRET": REPOSITORY_WEBHOOK_SECRET},
         "STRIPE_WEBHOOK_SECRET is the repository's development value"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_short"}, "STRIPE_WEBHOOK_SECRET is 11 bytes, shorter than 32"),
        ({"STRIPE_API_KEY": ""}, "STRIPE_API_KEY is not set"),
    ],
)
@pytest.mark.parametrize("process", ["gateway", "worker"])
def test_a_missing_development_or_short_secret_is_refused_naming_its_variable(
    env: pytest.MonkeyPatch, variables: dict[str, str], expected: str, process: str
) -> None:
    # Given strong secrets but one, and no development mode
    production(env, **variables)
    # When the process loads its settings
    with pytest.raises(SystemExit) as refused:
        load_for(process)
    # Then it exits (a string code: status 1, the message on stderr, no traceback) naming that variable
    message = refused.value.code
    assert isinstance(message, str)
    assert message.startswith(f"the {process} refuses to start outside development mode")
    assert expected in message
    assert "FC_DEVELOPMENT=1" in message
    # and only that one: the other secrets are fine
    (variable,) = variables
    assert [name for name in ("GATEWAY_JWT_SECRET", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY")
            if f"- {name} " in message] == [variable]


def test_every_weak_secret_is_listed_at_once(env: pytest.MonkeyPatch) -> None:
    # Given nothing set at all
    # When the gateway loads its settings
    with pytest.raises(SystemExit) as refused:
        load_for("gateway")
    # Then one message lists every variable to set
    message = str(refused.value.code)
    for line in ("GATEWAY_JWT_SECRET is not set", "STRIPE_WEBHOOK_SECRET is not set", "STRIPE_API_KEY is not set"):
        assert f"  - {line}: set it to " in message


def test_32_bytes_are_enough(env: pytest.MonkeyPatch) -> None:
    production(env, GATEWAY_JWT_SECRET="é" * 16, STRIPE_WEBHOOK_SECRET="w" * 32)
    assert load_for("worker").jwt_secret == "é" * 16


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_development_mode_uses_the_repository_values_and_says_so_first(
    env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    # Given development mode and no secrets
    env.setenv("FC_DEVELOPMENT", value)
    # When the gateway loads its settings
    with caplog.at_level(logging.INFO):
        settings = load_for("gateway")
    # Then it starts with the repository's values and logs that it does, as its first line
    assert settings.development is True
    assert settings.jwt_secret == REPOSITORY_JWT_SECRET
    assert settings.stripe_webhook_secret == REPOSITORY_WEBHOOK_SECRET
    assert settings.stripe_api_key == "sk_test_123"
    first = caplog.records[0]
    assert first.levelno == logging.WARNING and first.name == "gateway"
    assert first.getMessage() == (
        "development mode (FC_DEVELOPMENT=1): using the repository's development JWT secret, webhook secret, "
        "carrier webhook secret and Stripe test key; never use this outside a laptop"
    )


def test_development_mode_keeps_secrets_that_are_set_and_accepts_weak_ones(
    env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env.setenv("FC_DEVELOPMENT", "1")
    env.setenv("GATEWAY_JWT_SECRET", "short")
    with caplog.at_level(logging.INFO):
        settings = load_for("worker")
    assert settings.jwt_secret == "short"
    assert "development webhook secret, carrier webhook secret and Stripe test key;" in caplog.records[0].getMessage()


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_development_mode_is_off_unless_asked(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("FC_DEVELOPMENT", value)
    settings = load()
    assert settings.development is False
    # the repository's values are no defaults then: unset means empty, which load_for refuses
    assert (settings.jwt_secret, settings.stripe_webhook_secret, settings.stripe_api_key) == ("", "", "")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("FC_WORKER_PORT", "sixty", "FC_WORKER_PORT='sixty' is not a whole number; unset it or give an integer"),
        ("FC_COMMIT_INTERVAL", "soon", "FC_COMMIT_INTERVAL='soon' is not a number; unset it or give a number"),
        ("FC_DEVELOPMENT", "maybe", "FC_DEVELOPMENT='maybe' is not a yes or no; unset it or give 1 or 0"),
        ("FC_TOPIC_PARTITIONS", "0", "FC_TOPIC_PARTITIONS='0' is not valid"),
        ("FC_COMMIT_INTERVAL", "0", "FC_COMMIT_INTERVAL='0' is not valid"),
    ],
)
def test_a_bad_value_exits_naming_its_variable(
    env: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(SystemExit) as refused:
        load()
    assert str(refused.value.code).startswith(expected)


def test_several_bad_values_are_each_named(env: pytest.MonkeyPatch) -> None:
    env.setenv("FC_WORKER_PORT", "x")
    env.setenv("FC_STRIPE_MOCK_PORT", "y")
    with pytest.raises(SystemExit) as refused:
        load()
    assert str(refused.value.code).splitlines() == [
        "FC_WORKER_PORT='x' is not a whole number; unset it or give an integer",
        "FC_STRIPE_MOCK_PORT='y' is not a whole number; unset it or give an integer",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092", "bootstrap_servers", "kafka-1:9092"),
        ("FC_BROKER_PORT", "19092", "bootstrap_servers", "127.0.0.1:19092"),
        ("FC_CONTROLLER_PORT", "19093", "controller_port", 19093),
        ("FC_BROKER_DATA_DIR", "/tmp/broker", "broker_data_dir", Path("/tmp/broker")),
        ("FC_KAFKA_CACHE_DIR", "/tmp/kafka-cache", "kafka_cache_dir", Path("/tmp/kafka-cache")),
        ("FC_TOPIC_PARTITIONS", "3", "topic_partitions", 3),
        ("FC_TOPIC_NAMESPACE", "t1.", "topic_namespace", "t1."),
        ("FC_TOPIC_REPLICATION_FACTOR", "3", "topic_replication_factor", 3),
        ("FC_TOPIC_MIN_INSYNC_REPLICAS", "2", "topic_min_insync_replicas", 2),
        ("FC_APP_ID", "shop", "app_id", "shop"),
        ("FC_WORKER_DATA_DIR", "/tmp/w2", "worker_data_dir", Path("/tmp/w2")),
        ("FC_WORKER_HOST", "127.0.0.2", "worker_url", "http://127.0.0.2:6066"),
        ("FC_WORKER_PORT", "6067", "worker_id", "127.0.0.1-6067"),
        ("FC_WORKER_ADVERTISED_URL", "http://w.example:80", "worker_url", "http://w.example:80"),
        ("FC_WORKER_ID", "w-7", "worker_id", "w-7"),
        ("FC_READ_MISS_WAIT", "0", "read_miss_wait_seconds", 0.0),
        ("FC_COMMIT_INTERVAL", "0.5", "commit_interval_seconds", 0.5),
        ("FC_COMMIT_BATCH_SIZE", "10", "commit_batch_size", 10),
        ("FC_TRANSACTION_TIMEOUT", "30", "transaction_timeout_seconds", 30.0),
        ("FC_INJECT_FAULTS", "produce=0.02", "inject_faults", "produce=0.02"),
        ("FC_HOLD_TTL_SECONDS", "2.5", "hold_ttl_seconds", 2.5),
        ("FC_RECOMMENDATION_HALF_LIFE_DAYS", "7.5", "recommendation_half_life_days", 7.5),
        ("FC_EXPIRY_SCAN_INTERVAL", "0.2", "expiry_scan_interval_seconds", 0.2),
        ("GATEWAY_PORT", "8081", "gateway_port", 8081),
        ("GATEWAY_JWT_ISSUER", "https://id.example", "jwt_issuer", "https://id.example"),
        ("GATEWAY_JWT_AUDIENCE", "fusioncommerce", "jwt_audience", "fusioncommerce"),
        ("FC_WORKER_URLS", "http://a:1, http://b:2,", "worker_urls", ("http://a:1", "http://b:2")),
        ("FC_STRIPE_MOCK_PORT", "12999", "stripe_api_base", "http://127.0.0.1:12999"),
        ("STRIPE_API_BASE", "https://api.stripe.com", "uses_stripe_mock", False),
        ("FC_STRIPE_TIMEOUT", "2", "stripe_timeout_seconds", 2.0),
        ("FC_STRIPE_ATTEMPTS", "1", "stripe_attempts", 1),
        ("FC_STRIPE_CALL_DEADLINE", "7", "stripe_call_deadline_seconds", 7.0),
        ("FC_STRIPE_CALL_LOG", "/tmp/calls.jsonl", "stripe_call_log", Path("/tmp/calls.jsonl")),
    ],
)
def test_each_variable_reaches_its_attribute(
    env: pytest.MonkeyPatch, variable: str, value: str, attribute: str, expected: object
) -> None:
    env.setenv(variable, value)
    assert getattr(load(), attribute) == expected


def test_unset_and_empty_variables_give_the_local_defaults(env: pytest.MonkeyPatch) -> None:
    env.setenv("FC_WORKER_PORT", "")
    env.setenv("FC_STRIPE_CALL_LOG", "")
    settings = load()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.worker_url == "http://127.0.0.1:6066"
    assert settings.worker_urls == ("http://127.0.0.1:6066",)
    assert settings.gateway_host == "127.0.0.1" and settings.gateway_port == 8080
    assert settings.stripe_api_base == "http://127.0.0.1:12111" and settings.uses_stripe_mock
    assert settings.stripe_call_log is None
    assert (settings.jwt_issuer, settings.jwt_audience) == ("", "")


def test_code_may_still_give_settings_by_attribute_name(env: pytest.MonkeyPatch) -> None:
    # Given the variable set and the attribute given in code, the code's value wins
    env.setenv("FC_TOPIC_NAMESPACE", "from-env.")
    settings = Settings(external_bootstrap="kafka-9:9092", topic_namespace="t2.", topic_partitions=4)
    assert (settings.bootstrap_servers, settings.topic_namespace, settings.topic_partitions) == (
        "kafka-9:9092", "t2.", 4)


def test_the_secrets_stay_out_of_a_logged_settings(env: pytest.MonkeyPatch) -> None:
    production(env)
    shown = repr(load())
    assert STRONG_JWT_SECRET not in shown and STRONG_WEBHOOK_SECRET not in shown and STRIPE_KEY not in shown
