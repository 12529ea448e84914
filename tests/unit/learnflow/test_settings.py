from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from ingest.producer import producer_config
from ingest.topics import consumer_config
from learnflow.exceptions import ConfigurationError
from learnflow.settings import KafkaSettings, PostgresSettings, Settings


def test_defaults_are_the_local_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEARNFLOW_ENVIRONMENT", raising=False)
    settings = Settings()

    assert settings.kafka.partitions == 12
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.local.run_dir.is_absolute()


def test_nested_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNFLOW_KAFKA__PARTITIONS", "24")
    monkeypatch.setenv("LEARNFLOW_REDIS__URL", "redis://cache:6379/1")

    settings = Settings()

    assert settings.kafka.partitions == 24
    assert settings.redis.url == "redis://cache:6379/1"


def test_dev_password_is_refused_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNFLOW_ENVIRONMENT", "prod")

    with pytest.raises(ConfigurationError, match="LEARNFLOW_POSTGRES__PASSWORD"):
        Settings()


def test_prod_with_its_own_password_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNFLOW_ENVIRONMENT", "prod")
    monkeypatch.setenv("LEARNFLOW_POSTGRES__PASSWORD", "a-real-secret")

    settings = Settings()

    assert settings.postgres.password.get_secret_value() == "a-real-secret"
    assert "a-real-secret" not in repr(settings)


def test_isr_above_replication_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNFLOW_KAFKA__MIN_INSYNC_REPLICAS", "2")

    with pytest.raises(ValidationError, match="min_insync_replicas"):
        Settings()


def test_level_thresholds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNFLOW_MASTERY__PROFICIENT", "0.85")

    assert Settings().mastery.thresholds().proficient == 0.85


def test_unordered_thresholds_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNFLOW_MASTERY__FAMILIAR", "0.9")

    with pytest.raises(ValidationError, match="familiar < proficient"):
        Settings()


def test_dev_tokens_are_refused_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNFLOW_ENVIRONMENT", "prod")
    monkeypatch.setenv("LEARNFLOW_POSTGRES__PASSWORD", "a-real-secret")
    monkeypatch.setenv("LEARNFLOW_AUTH__DEV_TOKENS", "true")

    with pytest.raises(ConfigurationError, match="LEARNFLOW_AUTH__DEV_TOKENS"):
        Settings()


def test_the_ray_head_is_found_where_the_settings_say(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LEARNFLOW_RAY__HOST", "LEARNFLOW_RAY__GCS_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().ray.address == "127.0.0.1:6380"  # one machine: loopback
    monkeypatch.setenv("LEARNFLOW_RAY__HOST", "10.0.0.5")
    monkeypatch.setenv("LEARNFLOW_RAY__GCS_PORT", "6390")
    assert Settings().ray.address == "10.0.0.5:6390"


def test_kafka_clients_share_the_security_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    kafka = KafkaSettings(
        bootstrap_servers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="learnflow",
        sasl_password=SecretStr("s3cret"),
        ssl_ca_location=ca,
    )

    assert kafka.client_config("feed") == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "client.id": "learnflow-feed",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "learnflow",
        "sasl.password": "s3cret",
        "ssl.ca.location": str(ca),
    }
    assert producer_config(kafka)["security.protocol"] == "sasl_ssl"
    assert consumer_config(kafka, "g", "c")["sasl.username"] == "learnflow"
    assert "security.protocol" not in KafkaSettings().client_config()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs kafka.sasl_mechanism"),
        ({"sasl_username": "x"}, "use SASL_SSL or SASL_PLAINTEXT"),
        ({"ssl_ca_location": Path("/ca.pem")}, "use SSL or SASL_SSL"),
    ],
)
def test_incomplete_kafka_security_is_refused_with_the_reason(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(**changes)


def test_postgres_tls_follows_libpq_modes(tmp_path: Path) -> None:
    assert PostgresSettings().ssl_context() is None
    assert "sslmode" not in PostgresSettings().dsn()

    required = PostgresSettings(ssl_mode="require").ssl_context()
    assert required is not None and required.verify_mode == ssl.CERT_NONE

    full = PostgresSettings(ssl_mode="verify-full")
    context = full.ssl_context()
    assert context is not None and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert full.dsn().endswith("?sslmode=verify-full")


def test_librdkafka_accepts_the_security_properties() -> None:
    from confluent_kafka import Producer

    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="learnflow",
        sasl_password=SecretStr("s3cret"),
    )

    Producer(producer_config(kafka)).flush(0)  # an unknown property or value raises here
