"""Fixed-rate load with vegeta (open loop: requests go out on schedule whether or not earlier
ones have answered, so a slow server shows as latency, not as a lower offered rate).

Each run prints the offered rate, what was achieved, p50/p95/p99, errors (non-2xx and transport)
and how busy the machine's CPUs were while it ran (``/proc/stat``, every process included).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

VEGETA = Path(".run/go/bin/vegeta")


@dataclass(frozen=True, slots=True)
class RateResult:
    rate: int
    achieved: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_busy: float
    """Share of both cores busy during the run (0–1)."""
    statuses: dict[str, int]


def vegeta_binary() -> str:
    found = VEGETA if VEGETA.exists() else shutil.which("vegeta")
    if not found:
        raise RuntimeError("vegeta is not installed: `make vegeta` builds it from the Go proxy")
    return str(found)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def write_targets(path: Path, targets: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(target) + "\n" for target in targets))
    return path


def get_targets(url: str, tokens: list[str]) -> list[dict[str, object]]:
    return [
        {"method": "GET", "url": url, "header": {"Authorization": [f"Bearer {t}"]}} for t in tokens
    ]


def submit_targets(
    url: str, tokens: list[str], exercise_id: str, code: str
) -> list[dict[str, object]]:
    """One target per submit: each its own student (under the per-student limit) and key."""
    body = base64.b64encode(
        json.dumps({"exercise_id": exercise_id, "code": code}).encode()
    ).decode()
    return [
        {
            "method": "POST",
            "url": url,
            "body": body,
            "header": {
                "Authorization": [f"Bearer {token}"],
                "Idempotency-Key": [str(uuid.uuid4())],
                "Content-Type": ["application/json"],
            },
        }
        for token in tokens
    ]


def attack(targets: Path, rate: int, seconds: float) -> RateResult:
    """Offer ``rate`` requests/s for ``seconds`` from ``targets`` (used round robin)."""
    busy0, total0 = cpu_ticks()
    attack_run = subprocess.run(
        [
            vegeta_binary(), "attack", "-format=json", f"-targets={targets}", f"-rate={rate}/s",
            f"-duration={seconds}s", "-timeout=10s", "-max-workers=2000",
        ],
        capture_output=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    busy1, total1 = cpu_ticks()
    report = subprocess.run(
        [vegeta_binary(), "report", "-type=json"],
        input=attack_run.stdout, capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    figures = json.loads(report.stdout)
    latencies = figures["latencies"]
    statuses = {str(k): int(v) for k, v in figures.get("status_codes", {}).items()}
    ok = sum(v for k, v in statuses.items() if k.startswith("2"))
    requests = int(figures["requests"])
    return RateResult(
        rate=rate,
        achieved=float(figures["throughput"]),
        p50_ms=latencies["50th"] / 1e6,
        p95_ms=latencies["95th"] / 1e6,
        p99_ms=latencies["99th"] / 1e6,
        errors=requests - ok,
        requests=requests,
        cpu_busy=(busy1 - busy0) / max(1, total1 - total0),
        statuses=statuses,
    )


HEADER = (
    f"{'offered/s':>9} {'achieved/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
    f"{'errors':>7} {'CPU busy':>8}"
)


def row(result: RateResult) -> str:
    return (
        f"{result.rate:>9} {result.achieved:>10.1f} {result.p50_ms:>8.2f} {result.p95_ms:>8.2f} "
        f"{result.p99_ms:>8.2f} {result.errors:>7} {result.cpu_busy:>7.0%}"
        + ("" if not result.errors else f"  {result.statuses}")
    )
