"""Kafka over TLS end to end: a local node that only speaks SSL (and demands client
certificates) takes the events topic, the producer's events and a consumer through
``KafkaSettings.client_config()``; a client that does not trust the node's CA, one without a
certificate, and one without TLS are refused.

The CA, the node's certificate (for 127.0.0.1) and the client's are made for the test. The node
runs in a run directory and on ports of its own (19492; controller 19493).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ingest import topics
from ingest.producer import EventProducer
from learnflow.deadline import Deadline
from learnflow.events import parse_event
from learnflow.settings import KafkaSettings, Settings
from ops.platform import kafka
from ops.platform.exceptions import ServiceStartError
from tests.integration.pipeline import make_events

ADDRESS = "127.0.0.1:19492"


class Authority:
    """A throwaway CA that signs certificates for 127.0.0.1 and writes them as PEM files."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.name = subject
        self.certificate = (
            self._builder(subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self._write(f"{name}.pem", self._cert_pem(self.certificate))

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(getattr(self, "name", subject))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) files for ``name`` at 127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key()
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return (
            self._write(f"{name}.crt", self._cert_pem(certificate)),
            self._write(f"{name}.key", key_pem),
        )

    @staticmethod
    def _cert_pem(certificate: x509.Certificate) -> bytes:
        return certificate.public_bytes(serialization.Encoding.PEM)

    def _write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path


def tls_settings(settings: Settings, run_dir: Path, certs: Path) -> Settings:
    (run_dir / kafka.NAME).mkdir(parents=True)
    (run_dir / kafka.NAME / "libs").symlink_to(kafka.libs_dir(settings))
    authority = Authority(certs, "learnflow-test-ca")
    node_cert, node_key = authority.issue("kafka-node")
    keystore = certs / "kafka-node.pem"
    keystore.write_bytes(node_key.read_bytes() + node_cert.read_bytes())
    client_cert, client_key = authority.issue("learnflow-client")
    secured = KafkaSettings(
        bootstrap_servers=ADDRESS,
        events_topic="tls.events",
        dlq_topic="tls.events.dlq",
        partitions=3,
        security_protocol="SSL",
        ssl_ca_location=authority.pem,
        ssl_certificate_location=client_cert,
        ssl_key_location=client_key,
    )
    return settings.model_copy(
        update={
            "kafka": secured,
            "local": settings.local.model_copy(
                update={
                    "run_dir": run_dir,
                    "kafka_controller_port": 19493,
                    "kafka_heap_mb": 256,
                    "kafka_ssl_keystore": keystore,
                }
            ),
        }
    )


def refused(config: dict[str, str]) -> bool:
    try:
        AdminClient({**config, "log_level": 0}).list_topics(timeout=5)
    except KafkaException:
        return True
    return False


def test_events_flow_over_tls_and_untrusted_or_plain_clients_are_refused(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "certs").mkdir()
    secured = tls_settings(settings, tmp_path / "run", tmp_path / "certs")
    config = (tmp_path / "run" / kafka.NAME / "server.properties").resolve()
    kafka.start(secured, Deadline.after(120))
    try:
        assert f"SSL://{ADDRESS}" in config.read_text()
        assert "ssl.client.auth=required" in config.read_text()
        topics.ensure_topics(
            topics.admin_client(secured.kafka),
            topics.learnflow_topics(secured.kafka),
            Deadline.after(60),
        )
        events = make_events(students=5, total=50, seed=29)
        producer = EventProducer(secured.kafka)
        try:
            deliveries = producer.publish_many(events, Deadline.after(60))
        finally:
            producer.close(Deadline.after(30))
        assert len(deliveries) == len(events)

        consumer = Consumer({**secured.kafka.client_config("check"), "group.id": "tls-check"})
        consumer.assign([TopicPartition("tls.events", p, 0) for p in range(3)])
        seen: list[str] = []
        deadline = Deadline.after(30)
        try:
            while len(seen) < len(events) and not deadline.expired():
                batch = consumer.consume(100, timeout=1.0)
                seen += [str(parse_event(m.value()).event_id) for m in batch if m.error() is None]
        finally:
            consumer.close()
        assert sorted(seen) == sorted(str(e.event_id) for e in events)

        good = secured.kafka.client_config()
        assert not refused(good)
        stranger = Authority(tmp_path / "certs", "another-ca")
        assert refused({**good, "ssl.ca.location": str(stranger.pem)})  # the node is not trusted
        anonymous = {
            k: v for k, v in good.items() if not k.startswith(("ssl.certificate", "ssl.key"))
        }
        assert refused(anonymous)  # no client certificate
        assert refused({"bootstrap.servers": ADDRESS})  # no TLS
    finally:
        assert kafka.stop(secured, Deadline.after(60))


def test_a_tls_node_without_its_keystore_is_refused_with_the_setting_named(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "certs").mkdir()
    secured = tls_settings(settings, tmp_path / "run", tmp_path / "certs")
    bare = secured.model_copy(
        update={"local": secured.local.model_copy(update={"kafka_ssl_keystore": None})}
    )
    with pytest.raises(ServiceStartError, match="local.kafka_ssl_keystore"):
        kafka.start(bare, Deadline.after(30))
