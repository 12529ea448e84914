"""The ``learnflow`` command as a user runs it (no Ray imported here: conftest uses it)."""

from __future__ import annotations

import subprocess
import sys


def cli(*args: str, timeout_s: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Run ``learnflow …`` (``python -m ops``); the caller checks the return code."""
    return subprocess.run(
        [sys.executable, "-m", "ops", *args], capture_output=True, text=True, timeout=timeout_s
    )
