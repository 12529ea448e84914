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
from learnflow.settings import KafkaSettings

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
