"""The domain kernel imports no service client: it must run where none is installed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


UPPER_PACKAGES = ("actors", "ingest", "serve", "jobs", "ops")


def test_no_kernel_module_imports_the_packages_above_it() -> None:
    probe = (
        "import importlib, pkgutil, sys, learnflow\n"
        "for info in pkgutil.walk_packages(learnflow.__path__, 'learnflow.'):\n"
        "    importlib.import_module(info.name)\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        f"print(','.join(sorted(roots & {set(UPPER_PACKAGES)!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == ""


def test_no_kernel_source_imports_the_packages_above_it_even_inside_a_function() -> None:
    kernel = Path(__file__).resolve().parents[3] / "learnflow"
    found = []
    for path in sorted(kernel.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in UPPER_PACKAGES]

    assert found == []
