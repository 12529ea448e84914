"""Settings, read once from ``LEARNFLOW_…`` environment variables and passed to each component.

Each component takes its own section (``settings.kafka``, ``settings.redis``, …); nested values are
set with a double underscore, e.g. ``LEARNFLOW_KAFKA__BOOTSTRAP_SERVERS=broker:9092``.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from learnflow.exceptions import ConfigurationError
from learnflow.levels import LevelThresholds

DEV_POSTGRES_PASSWORD = "learnflow-dev"  # noqa: S105 - the dev default, refused outside dev

Environment = Literal["dev", "test", "prod"]


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    events_topic: str = "learning.events"
    dlq_topic: str = "learning.events.dlq"
    partitions: int = Field(default=12, ge=1, le=1000)
    dlq_partitions: int = Field(default=1, ge=1, le=1000)
    replication_factor: int = Field(default=1, ge=1, le=7)
    min_insync_replicas: int = Field(default=1, ge=1, le=7)
    client_id: str = "learnflow"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every Kafka client of the platform talks to the brokers (librdkafka's names)."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    """CA bundle that signed the brokers' certificates (the system store if unset)."""
    ssl_certificate_location: Path | None = None
    """Client certificate, for brokers that authenticate clients by TLS."""
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None

    def client_config(self, client: str | None = None) -> dict[str, Any]:
        """The librdkafka properties every client shares: brokers, client id, security.

        ``client`` is appended to the client id (``learnflow-<client>``)."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": f"{self.client_id}-{client}" if client else self.client_id,
        }
        if self.security_protocol != "PLAINTEXT":
            config["security.protocol"] = self.security_protocol.lower()
        if self.security_protocol.startswith("SASL") and self.sasl_password is not None:
            config.update({
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.sasl_username,
                "sasl.password": self.sasl_password.get_secret_value(),
            })  # fmt: skip
        optional = {
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": (
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            ),
        }
        config.update({name: str(value) for name, value in optional.items() if value is not None})
        return config

    @model_validator(mode="after")
    def _security_is_complete(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(
                f"kafka.security_protocol={self.security_protocol} needs kafka.sasl_mechanism, "
                "kafka.sasl_username and kafka.sasl_password"
            )
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(
                "kafka.sasl_* are set but kafka.security_protocol is "
                f"{self.security_protocol}: use SASL_SSL or SASL_PLAINTEXT"
            )
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        files = (self.ssl_ca_location, self.ssl_certificate_location, self.ssl_key_location)
        if not tls and any(files):
            raise ValueError(
                "kafka.ssl_* files are set but kafka.security_protocol is "
                f"{self.security_protocol}: use SSL or SASL_SSL"
            )
        return self

    @model_validator(mode="after")
    def _isr_fits_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"kafka.min_insync_replicas={self.min_insync_replicas} exceeds "
                f"kafka.replication_factor={self.replication_factor}: no write could succeed"
            )
        return self


class RedisSettings(BaseModel):
    url: str = "redis://127.0.0.1:6390/0"
    password: SecretStr | None = None
    socket_timeout_s: float = Field(default=2.0, gt=0)
    ssl_ca_certs: Path | None = None
    """CA bundle for a ``rediss://`` URL (TLS); the system store if unset."""


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=5440, ge=1, le=65535)
    database: str = "learnflow"
    user: str = "learnflow"
    password: SecretStr = SecretStr(DEV_POSTGRES_PASSWORD)
    connect_timeout_s: float = Field(default=3.0, gt=0)
    ssl_mode: Literal["disable", "require", "verify-ca", "verify-full"] = "disable"
    """TLS to the server, as libpq's ``sslmode``: ``require`` encrypts without checking the
    certificate, ``verify-ca`` checks it against ``ssl_root_cert``, ``verify-full`` the host too."""
    ssl_root_cert: Path | None = None

    def dsn(self, database: str | None = None) -> str:
        """A libpq URI with the password filled in; never log it."""
        uri = (
            f"postgresql://{self.user}:{self.password.get_secret_value()}"
            f"@{self.host}:{self.port}/{database or self.database}"
        )
        if self.ssl_mode == "disable":
            return uri
        root = f"&sslrootcert={self.ssl_root_cert}" if self.ssl_root_cert else ""
        return f"{uri}?sslmode={self.ssl_mode}{root}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context asyncpg connects with (``None``: no TLS)."""
        if self.ssl_mode == "disable":
            return None
        if self.ssl_mode == "require":  # encrypted, certificate unchecked (libpq's meaning)
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        context = ssl.create_default_context(
            cafile=str(self.ssl_root_cert) if self.ssl_root_cert else None
        )
        context.check_hostname = self.ssl_mode == "verify-full"
        return context


class RaySettings(BaseModel):
    host: str = "127.0.0.1"
    """The head's address: where ``learnflow up`` starts it and where every client finds it
    (``LEARNFLOW_RAY__HOST`` to reach a head on another machine)."""
    gcs_port: int = Field(default=6380, ge=1, le=65535)
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8265, ge=1, le=65535)
    namespace: str = "learnflow"
    metrics_port: int = Field(default=8267, ge=1, le=65535)
    """Where the head exports Prometheus metrics (Ray's and LearnFlow's, ``ray_learnflow_*``)."""
    num_cpus: int = Field(default=2, ge=1)
    object_store_mb: int = Field(default=512, ge=75)
    worker_niceness: int = Field(default=0, ge=0, le=19)
    """Niceness of the worker processes (shards, ingest, API). At Ray's default of 15 they get
    the CPU only when Kafka, PostgreSQL and Redis leave it: at 1,000 events/s the shards' p99
    produce-to-checkpointed latency was 169–238 ms, at 0 it was 105–131 ms."""
    extra_env: dict[str, str] = Field(default_factory=dict)
    """Environment for every Ray process of the head (e.g. Serve's proxy modes)."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.dashboard_host}:{self.dashboard_port}"


class ServeSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    app_name: str = "learnflow"
    ingress_replicas: int = Field(default=1, ge=1)
    ingress_num_cpus: float = Field(default=0.1, ge=0, le=2)
    max_replicas_per_node: int | None = Field(default=None, ge=1)
    """At most this many ingress replicas on one Ray node (none: no limit); the cluster profile
    sets 1 with 2 replicas, one on each node."""
    readiness_timeout_s: float = Field(default=2.0, gt=0)
    proxy: Literal["ray", "haproxy"] = "haproxy"
    """``haproxy``: Serve's HAProxy mode with its throughput-optimized settings (Debian's
    haproxy forwards straight to the replicas: 2-3x the requests/s of Ray's Python proxy here);
    ``ray``: Ray's Python proxy. Takes effect when the Ray head starts."""
    max_ongoing_requests: int = Field(default=512, ge=1, le=10_000)
    """Requests one ingress replica works on at once (Serve's default of 5 queues the rest).
    High, so that reads never wait behind submits: submits have a cap of their own."""
    max_submits_in_flight: int = Field(default=64, ge=1, le=10_000)
    """Submits one ingress replica has with the grader at once, graded or waiting for a place;
    one more is answered 503 with ``Retry-After`` at once."""
    submit_queue_s: float = Field(default=0.5, ge=0, le=30)
    """The longest a submit may expect to wait for a grading place (the submits ahead of it
    times a grade's recent time, over the places); a longer wait is answered 503 with
    ``Retry-After`` at once, so bursts are graded but a full grader never holds requests."""
    rate_limit_per_minute: int = Field(default=100, ge=1)
    """Requests one student may make in any 60 s window, across all replicas."""
    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    progress_timeout_s: float = Field(default=3.0, gt=0, le=30)
    """How long a progress read waits for the shard (and for ``min_offset``) before Redis."""
    frontend_dir: Path | None = None
    """The built web editor (``frontend/dist``) served at ``/``; none means no frontend."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class IngestSettings(BaseModel):
    """How the shard hosts read ``learning.events`` (each its own partitions, from their
    checkpoints) and the ingest deployment that keeps the hosts up."""

    group_id: str = "learnflow-ingest"
    """The consumer group the hosts commit their checkpointed offsets to (for lag figures)."""
    replicas: int = Field(default=1, ge=1, le=64)
    num_cpus: float = Field(default=0.25, ge=0, le=2)
    max_batch: int = Field(default=40_000, ge=1, le=100_000)
    """The most records one read of a host takes from Kafka (one checkpoint). Only a backlog
    fills a read: the larger it is, the more of a student's events one checkpoint writes as
    one state (at 40,000, about eight per student in ``make bench-ingest``; the full path spent
    40–54 µs of CPU per event there in seven runs, 41 the median, against 45–50 at 20,000)."""
    linger_ms: float = Field(default=5.0, ge=0, le=1000)
    """While records keep coming (the last read found some), a shard host waits this long
    after a read's first record for more before it checkpoints, so a checkpoint carries a few
    milliseconds of events instead of one or two. After a quiet spell the first record goes at
    once."""
    retry_backoff_s: float = Field(default=0.2, gt=0, le=30)
    """How long a host waits after a failed read or checkpoint before it reads again from its
    checkpoints."""


class AuthSettings(BaseModel):
    """JWT verification (the API) and minting (the CLI, the dev token endpoint)."""

    keys_dir: Path = Path(".run/keys")
    issuer: str = "learnflow"
    audience: str = "learnflow-api"
    max_lifetime_s: int = Field(default=86_400, ge=60, le=86_400)
    """No token may live longer (exp - iat); 24 h at most."""
    default_ttl_s: int = Field(default=3_600, ge=60, le=86_400)
    leeway_s: int = Field(default=30, ge=0, le=300)
    """Clock skew tolerated on exp, nbf and iat."""
    dev_tokens: bool = False
    """``POST /api/v1/dev/token`` mints a token for any student id: refused outside
    ``environment=dev``; ``learnflow up`` turns it on in dev unless told otherwise."""

    @model_validator(mode="after")
    def _absolute_keys_dir(self) -> AuthSettings:
        self.keys_dir = self.keys_dir.expanduser().resolve()
        return self


class GraderSettings(BaseModel):
    """The sandbox that runs student code (bubblewrap + rlimits + a uid per slot)."""

    placement: Literal["ingress", "deployment"] = "ingress"
    """Where the sandbox is started from. ``ingress``: the API replica that took the submit
    starts it itself (on 2 cores here: 50 submits/s at p95 204 ms, against 30/s at 193 ms through
    a second deployment; the Serve call and a second replica's event loop cost 6 ms of CPU per
    grade). ``deployment``: a ``Grader`` Serve deployment of ``replicas`` replicas, to size
    grading apart from the API (e.g. on nodes of their own)."""
    slots: int = Field(default=4, ge=1, le=64)
    """Programs graded at once per process that grades; each run has a uid of its own."""
    first_uid: int = Field(default=20_000, ge=1000)
    uid_pool: int = Field(default=64, ge=1, le=10_000)
    """Uids ``first_uid …`` leased to runs across every grader process on a host."""
    replicas: int = Field(default=1, ge=1)
    """``Grader`` replicas with ``placement = "deployment"``."""
    num_cpus: float = Field(default=0.1, ge=0, le=2)
    python: Path = Path("/usr/bin/python3")
    """The interpreter inside the sandbox (the system one: read-only /usr)."""
    cpu_seconds: int = Field(default=2, ge=1, le=60)
    """CPU time per process (RLIMIT_CPU) and, where the host has control groups, for all of a
    run's processes together."""
    memory_mb: int = Field(default=256, ge=32, le=4096)
    """Address space per process (RLIMIT_AS)."""
    run_memory_mb: int = Field(default=384, ge=32, le=65_536)
    """Memory of all of a run's processes together, its /tmp files included (control group)."""
    run_cpus: float = Field(default=1.0, gt=0, le=64)
    """Cores one run may use at once, all its processes together (control group)."""
    processes: int = Field(default=32, ge=1, le=1024)
    file_size_kb: int = Field(default=1024, ge=1)
    tmp_size_mb: int = Field(default=8, ge=1, le=1024)
    wall_seconds: float = Field(default=5.0, gt=0, le=120)
    output_kb: int = Field(default=64, ge=1, le=4096)
    code_kb: int = Field(default=64, ge=1, le=1024)
    """Largest program accepted for grading."""


class ShardSettings(BaseModel):
    """The ``StudentShard`` of each partition, held by ``hosts`` Ray actors."""

    name_prefix: str = "shard"
    hosts: int = Field(default=2, ge=1, le=256)
    """Shard host actors (processes): host ``i`` holds every partition ``p`` with
    ``p % hosts == i``. Fewer processes cost less CPU and memory per event; more spread the
    partitions over more cores (or Ray nodes)."""
    max_resident_students: int = Field(default=200_000, ge=1)
    """Clean students beyond this many are evicted, least recently used first."""
    daily_mastery_ttl_days: int = Field(default=35, ge=1)
    attempts_kept: int = Field(default=50, ge=1)
    """Latest attempts kept per (student, exercise) in Redis."""
    postgres_pool_size: int = Field(default=2, ge=1, le=20)
    read_timeout_s: float = Field(default=5.0, gt=0, le=60)
    latency_samples: int = Field(default=20_000, ge=0)
    task_retries: int = Field(default=3, ge=0, le=100)
    """How often Ray resends a shard call caught by a crash of the shard's process.

    Every shard method may run twice (batches are skipped by the watermarks, reads change
    nothing), so a call is resent to the restarted actor as soon as it is up, instead of
    failing after Ray's wait for the death report and being sent again by the caller.
    """


class MasterySettings(BaseModel):
    """Level thresholds on P(mastered) and where fitted parameters come from."""

    familiar: float = Field(default=0.5, gt=0, lt=1)
    proficient: float = Field(default=0.8, gt=0, lt=1)
    mastered: float = Field(default=0.95, gt=0, lt=1)
    parameters_file: Path | None = None
    """A ``learnflow fit`` output, used until a version is published (``learnflow model
    publish``); without either every component uses the default parameters."""
    model_poll_s: float = Field(default=1.0, gt=0, le=60)
    """How often shards and API replicas look for a newly published model version."""

    def thresholds(self) -> LevelThresholds:
        return LevelThresholds(self.familiar, self.proficient, self.mastered)

    @model_validator(mode="after")
    def _ordered(self) -> MasterySettings:
        if not self.familiar < self.proficient <= self.mastered:
            raise ValueError(
                "mastery thresholds must satisfy familiar < proficient <= mastered, got "
                f"{self.familiar}, {self.proficient}, {self.mastered}"
            )
        return self


class LocalPlatformSettings(BaseModel):
    """Where ``learnflow up`` keeps the local services' data, logs and pid files."""

    run_dir: Path = Path(".run")
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    ray_worker_nodes: int = Field(default=0, ge=0, le=8)
    """Ray nodes started on this host beside the head (``ray start --address``), each its own
    process tree: what a node loss is tested on."""
    ray_worker_cpus: int = Field(default=1, ge=1)
    ray_worker_port_base: int = Field(default=20000, ge=1024, le=32000)
    """Worker node ``k`` (from 1) takes the 100 ports from ``base + 100 * (k - 1)``: its node
    manager, object manager, metrics, agents, and its workers (``+10`` to ``+60``)."""
    kafka_heap_mb: int = Field(default=512, ge=128)
    kafka_libs_dir: Path = Path(".run/kafka/libs")
    """The broker's jars, as ``make bootstrap`` fetches them: shared by every profile and run
    directory."""
    kafka_ssl_keystore: Path | None = None
    """For local nodes that speak SSL or SASL_SSL: one PEM file holding the nodes' private key
    (PKCS#8, not encrypted) and their certificate chain, signed by ``kafka.ssl_ca_location``'s
    CA and naming the nodes' host."""
    postgres_os_user: str = "postgres"
    start_timeout_s: float = Field(default=60.0, gt=0)
    stop_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _absolute_run_dir(self) -> LocalPlatformSettings:
        self.run_dir = self.run_dir.expanduser().resolve()
        self.kafka_libs_dir = self.kafka_libs_dir.expanduser().resolve()
        return self


PROFILE_FILE = Path(".run/profile.env")
"""Settings of the local profile that ``learnflow up --cluster`` started, as ``LEARNFLOW_*``
lines; read after the environment (which wins), so every command and test sees the platform
that runs. ``learnflow down`` removes it."""


class Settings(BaseSettings):
    """Every component's section; build once per process with ``Settings()``."""

    model_config = SettingsConfigDict(
        env_prefix="LEARNFLOW_",
        env_nested_delimiter="__",
        env_file=PROFILE_FILE,
        extra="forbid",
        frozen=False,
    )

    environment: Environment = "dev"
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    postgres: PostgresSettings = PostgresSettings()
    ray: RaySettings = RaySettings()
    serve: ServeSettings = ServeSettings()
    mastery: MasterySettings = MasterySettings()
    ingest: IngestSettings = IngestSettings()
    shards: ShardSettings = ShardSettings()
    auth: AuthSettings = AuthSettings()
    grader: GraderSettings = GraderSettings()
    local: LocalPlatformSettings = LocalPlatformSettings()

    @model_validator(mode="after")
    def _no_dev_secrets_outside_dev(self) -> Settings:
        if self.environment == "dev":
            return self
        if self.postgres.password.get_secret_value() == DEV_POSTGRES_PASSWORD:
            raise ConfigurationError(
                f"environment={self.environment} uses the dev PostgreSQL password; "
                "set LEARNFLOW_POSTGRES__PASSWORD"
            )
        if self.auth.dev_tokens:
            raise ConfigurationError(
                f"environment={self.environment} with auth.dev_tokens on would let anyone mint "
                "a token for any student; unset LEARNFLOW_AUTH__DEV_TOKENS (dev only)"
            )
        return self
