"""The domain kernel imports no service client: it must run where none is installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

DOMAIN_MODULES = [
    "learnflow.events",
    "learnflow.settings",
    "learnflow.deadline",
    "learnflow.bkt",
    "learnflow.levels",
    "learnflow.student_state",
    "learnflow.fitting",
    "learnflow.sequences",
    "learnflow.synthetic",
    "learnflow.param_file",
    "learnflow.metrics",
    "learnflow.batches",
    "learnflow.batch_fold",
]
ADAPTERS = ["ray", "confluent_kafka", "redis", "asyncpg"]


@pytest.mark.parametrize("module", DOMAIN_MODULES)
def test_domain_module_imports_no_adapter(module: str) -> None:
    probe = f"import sys, {module}; print(','.join(m for m in {ADAPTERS!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == ""
