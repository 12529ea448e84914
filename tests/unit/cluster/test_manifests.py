"""The manifests in ``cluster/`` against the custom resource definitions their operators install,
offline: each document is checked with its CRD's ``openAPIV3Schema``, as the API server would.

CRD schemas list the fields they know without forbidding others, which would let a misspelt
field through silently; here every object schema that names its properties refuses the rest
(what ``kubeconform -strict`` does with converted schemas), unless it says it keeps unknown
fields (``x-kubernetes-preserve-unknown-fields``, such as a broker's free-form config).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

from ingest.topics import learnflow_topics
from learnflow.settings import KafkaSettings, Settings

CLUSTER = Path(__file__).resolve().parents[3] / "cluster"
SCHEMAS = CLUSTER / "schemas"


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def _validators() -> dict[tuple[str, str], Draft4Validator]:
    """A validator per (apiVersion, kind) of every CRD version served."""
    found = {}
    for path in sorted(SCHEMAS.glob("*/*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = _strict(version["schema"]["openAPIV3Schema"])
                # metadata is the API server's to check; the CRD only says it is an object
                schema["properties"]["metadata"] = {"type": "object"}
                found[(f"{group}/{version['name']}", kind)] = Draft4Validator(schema)
    return found


def errors_of(document: dict[str, Any]) -> list[str]:
    """Why ``document`` would be refused (empty: it would be accepted)."""
    key = (document.get("apiVersion"), document.get("kind"))
    validator = _validators().get(key)  # type: ignore[arg-type]
    if validator is None:
        return [f"no served custom resource definition for {key}"]
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((CLUSTER / name).read_text()) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_the_kafka_manifests_validate_against_strimzis_crds() -> None:
    docs = documents("kafka.yaml")
    assert {doc["kind"] for doc in docs} == {"KafkaNodePool", "Kafka", "KafkaTopic"}
    for doc in docs:
        assert errors_of(doc) == [], doc["metadata"]["name"]


@pytest.mark.parametrize(
    ("kind", "break_it", "expected"),
    [
        ("KafkaTopic", lambda d: d["spec"].update(partitions="twelve"), "'twelve' is not of type"),
        ("KafkaTopic", lambda d: d["spec"].update(partitons=12), "'partitons' was unexpected"),
        ("KafkaNodePool", lambda d: d["spec"]["roles"].append("zookeeper"), "'zookeeper' is not"),
        ("KafkaNodePool", lambda d: d["spec"].pop("storage"), "'storage' is a required property"),
        ("Kafka", lambda d: d["spec"]["kafka"]["listeners"][0].pop("tls"), "'tls' is a required"),
        ("Kafka", lambda d: d.update(apiVersion="kafka.strimzi.io/v1beta1"), "no served"),
    ],
)
def test_a_broken_kafka_manifest_is_refused(kind: str, break_it: Any, expected: str) -> None:
    broken = copy.deepcopy(of_kind(documents("kafka.yaml"), kind)[0])
    break_it(broken)
    assert any(expected in error for error in errors_of(broken)), errors_of(broken)


def test_the_topics_are_the_layout_learnflow_creates_with_replication_three() -> None:
    """One topic layout: the manifests say what ``learnflow up`` creates (ingest/topics.py) for
    replication factor 3 and two in-sync replicas."""
    settings = KafkaSettings(replication_factor=3, min_insync_replicas=2)
    topics = {
        doc["spec"]["topicName"]: (
            doc["spec"]["partitions"],
            doc["spec"]["replicas"],
            {key: str(value) for key, value in doc["spec"]["config"].items()},
        )
        for doc in of_kind(documents("kafka.yaml"), "KafkaTopic")
    }
    assert topics == {
        spec.name: (spec.partitions, spec.replication_factor, dict(spec.config))
        for spec in learnflow_topics(settings)
    }


def test_the_brokers_refuse_a_write_that_two_replicas_do_not_have() -> None:
    (kafka,) = of_kind(documents("kafka.yaml"), "Kafka")
    (pool,) = of_kind(documents("kafka.yaml"), "KafkaNodePool")
    config = kafka["spec"]["kafka"]["config"]
    assert pool["spec"]["replicas"] >= config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["auto.create.topics.enable"] is False  # a typo in a topic name fails loudly


def the_rayservice() -> dict[str, Any]:
    (service,) = documents("rayservice.yaml")
    return service


def head_env() -> list[dict[str, Any]]:
    """The environment of the RayService's head container (the workers share it)."""
    head = the_rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]
    env: list[dict[str, Any]] = head["template"]["spec"]["containers"][0]["env"]
    return env


def test_the_rayservice_validates_against_kuberays_crd() -> None:
    assert errors_of(the_rayservice()) == []


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: d["spec"]["rayClusterConfig"]["authOptions"].update(mode="on"), "'on' is not"),
        (lambda d: d["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].pop("maxReplicas"),
         "'maxReplicas' is a required property"),
        (lambda d: d["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
         ["containers"][0].update(imagePullPolcy="Always"), "'imagePullPolcy' was unexpected"),
    ],
)  # fmt: skip
def test_a_broken_rayservice_is_refused(break_it: Any, expected: str) -> None:
    broken = copy.deepcopy(the_rayservice())
    break_it(broken)
    assert any(expected in error for error in errors_of(broken)), errors_of(broken)


def serve_config(service: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(service["spec"]["serveConfigV2"])
    return config


def serve_config_errors(config: dict[str, Any]) -> list[str]:
    """Ray's own schema, then what it lets by: an application that is not one of ours, a
    deployment option on a name the application does not have (Serve ignores those)."""
    from ray.serve.schema import ServeDeploySchema

    from serve.app import DEPLOYMENTS

    try:
        ServeDeploySchema.model_validate(config)
    except Exception as err:  # Ray's pydantic error, whatever its version
        return [str(err)]
    errors = []
    for application in config["applications"]:
        known = DEPLOYMENTS.get(application["import_path"])
        if known is None:
            errors.append(f"{application['name']}: no application {application['import_path']}")
            continue
        errors += [
            f"{application['name']}: no deployment {deployment['name']} in it"
            for deployment in application.get("deployments", ())
            if deployment["name"] not in known
        ]
    return errors


def test_the_serve_config_names_our_applications_and_their_deployments() -> None:
    from serve.deployment import INGEST_APP

    config = serve_config(the_rayservice())
    assert serve_config_errors(config) == []
    names = {application["name"] for application in config["applications"]}
    assert names == {Settings().serve.app_name, INGEST_APP}


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda c: c["applications"][0]["deployments"][0].update(name="ApiIngres"),
         "no deployment ApiIngres"),
        (lambda c: c["applications"][1].update(import_path="serve.app:ingester"),
         "no application serve.app:ingester"),
        (lambda c: c["applications"][0]["deployments"][0].update(num_replicas="many"),
         "num_replicas"),
    ],
)  # fmt: skip
def test_a_broken_serve_config_is_refused(break_it: Any, expected: str) -> None:
    config = serve_config(the_rayservice())
    break_it(config)
    assert any(expected in error for error in serve_config_errors(config))


def test_the_applications_import_and_build_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every ``LEARNFLOW_*`` variable the pods get is a setting, the settings they make
    validate (a production environment: no dev tokens, a real database password), and each
    ``import_path`` builds its application from them."""
    import importlib

    from ray.serve import Application

    for variable in head_env():
        path = variable["name"].removeprefix("LEARNFLOW_").lower().split("__")
        model: Any = Settings
        for part in path:
            assert part in model.model_fields, variable["name"]
            model = model.model_fields[part].annotation
        secret = variable.get("valueFrom", {}).get("secretKeyRef")
        value = f"from-{secret['name']}" if secret else variable["value"]
        monkeypatch.setenv(variable["name"], value)
    settings = Settings()
    assert settings.environment == "prod"
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 2)
    assert settings.postgres.password.get_secret_value() == "from-learnflow-postgres"
    for application in serve_config(the_rayservice())["applications"]:
        module, _, builder = application["import_path"].partition(":")
        built = getattr(importlib.import_module(module), builder)({})
        assert isinstance(built, Application), application["import_path"]


KUBERNETES = "1.33"
"""The Kubernetes version the core kinds are checked against."""


def core_errors_of(document: dict[str, Any]) -> list[str]:
    """Why Kubernetes would refuse a core-kind document (strict: unknown fields too)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [str(err)]
    return []


@pytest.mark.parametrize("name", ["redis.yaml", "postgres.yaml"])
def test_the_store_manifests_are_valid_kubernetes(name: str) -> None:
    docs = documents(name)
    assert {doc["kind"] for doc in docs} == {"Service", "StatefulSet"}
    for doc in docs:
        assert core_errors_of(doc) == [], (name, doc["kind"])


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: d["spec"].update(replicas="one"), "'one' is not of type"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolcy="Always"),
         "'imagePullPolcy' was unexpected"),
        (lambda d: d["spec"].pop("selector"), "'selector' is a required property"),
    ],
)  # fmt: skip
def test_a_broken_store_manifest_is_refused(break_it: Any, expected: str) -> None:
    broken = copy.deepcopy(of_kind(documents("redis.yaml"), "StatefulSet")[0])
    break_it(broken)
    assert any(expected in error for error in core_errors_of(broken)), core_errors_of(broken)


def test_the_rayservice_reaches_the_stores_at_their_services() -> None:
    """The addresses the pods are given are the Services the store manifests make, and the
    Secrets the stores read are those the pods read."""
    from urllib.parse import urlsplit

    env = {variable["name"]: variable for variable in head_env()}
    services = {
        doc["metadata"]["name"]: {port["port"] for port in doc["spec"]["ports"]}
        for name in ("redis.yaml", "postgres.yaml")
        for doc in of_kind(documents(name), "Service")
    }
    redis_url = urlsplit(env["LEARNFLOW_REDIS__URL"]["value"])
    assert redis_url.port in services[str(redis_url.hostname)]
    postgres_host = env["LEARNFLOW_POSTGRES__HOST"]["value"]
    assert int(env["LEARNFLOW_POSTGRES__PORT"]["value"]) in services[postgres_host]
    for name, variable in (("redis.yaml", "LEARNFLOW_REDIS__PASSWORD"),
                           ("postgres.yaml", "LEARNFLOW_POSTGRES__PASSWORD")):  # fmt: skip
        (store,) = of_kind(documents(name), "StatefulSet")
        read = {
            (ref["name"], ref["key"])
            for item in store["spec"]["template"]["spec"]["containers"][0]["env"]
            if (ref := item.get("valueFrom", {}).get("secretKeyRef"))
        }
        secret = env[variable]["valueFrom"]["secretKeyRef"]
        assert read == {(secret["name"], secret["key"])}, name
