"""Build the web editor (``frontend/``) into ``frontend/dist`` when its sources changed.

``npm ci`` installs exactly what ``package-lock.json`` pins (only when the lock changed), then
``npm run build`` generates the API client from ``openapi.json``, type-checks and bundles. A
stamp of every source file's content decides whether anything needs doing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from ops.platform.exceptions import MissingDependencyError, ServiceStartError

ROOT = Path(__file__).resolve().parents[2] / "frontend"
_SOURCES = ("package.json", "package-lock.json", "index.html", "vite.config.ts", "tsconfig.json",
            "openapi.json")  # fmt: skip


def dist_dir() -> Path:
    return ROOT / "dist"


def _stamp(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _sources() -> list[Path]:
    files = [ROOT / name for name in _SOURCES if (ROOT / name).exists()]
    files += [p for p in (ROOT / "src").rglob("*") if p.is_file() and p.name != "schema.ts"]
    files += [p for p in (ROOT / "scripts").rglob("*") if p.is_file()]
    return files


def build(timeout_s: float = 600.0) -> Path:
    """Install and build if needed; return ``frontend/dist``."""
    npm = shutil.which("npm")
    if npm is None:
        raise MissingDependencyError("npm is not installed: the web editor needs Node 20 and npm")
    modules_stamp = ROOT / "node_modules" / ".learnflow-lock-stamp"
    lock = _stamp([ROOT / "package-lock.json"])
    if not modules_stamp.exists() or modules_stamp.read_text() != lock:
        _run([npm, "ci", "--no-audit", "--no-fund"], timeout_s)
        modules_stamp.write_text(lock)
    dist = dist_dir()
    build_stamp = dist / ".learnflow-build-stamp"
    sources = _stamp(_sources())
    if not build_stamp.exists() or build_stamp.read_text() != sources:
        _run([npm, "run", "build"], timeout_s)
        build_stamp.write_text(sources)
    return dist


def _run(argv: list[str], timeout_s: float) -> None:
    try:
        done = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise ServiceStartError(
            f"`{' '.join(argv[1:])}` in {ROOT} took over {timeout_s:.0f} s"
        ) from err
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-3000:]
        raise ServiceStartError(f"`npm {' '.join(argv[1:])}` failed in {ROOT}:\n{tail}")
