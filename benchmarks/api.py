"""Benchmark: the API at fixed rates against the floor any server could reach here.

1. ``GET /api/v1/progress`` at a constant 250, 500, 1,000 and 1,500 requests/s (vegeta, open
   loop) on the Serve app of ``make up``, then on the floor app (``benchmarks/floor_app.py``: bare
   Starlette on uvicorn, the same cached JWT verification and the same one Redis round trip) at
   the same rates, in the same run: p50/p95/p99, errors and CPU per rate, the highest rate
   with p95 <= 5 ms for each and their ratio. Requests rotate over many students' tokens so the
   per-student limit is not what is measured.
2. ``POST /api/v1/attempts`` (a correct solution to grade) at fixed rates from 10/s up, each
   request a student and key of its own, until a rate misses p95 <= 300 ms or has errors (503s
   from the grader's admission count): the highest rate that fits and how busy the CPUs were.
3. JWT verification per request: a repeated token (the cache) and a new one (RSA), in µs.
4. The grader: the sandbox's overhead over a bare ``python3 -c pass``, and the median time to
   grade a trivial correct solution.

Run with ``make bench-api`` (``make vegeta`` builds vegeta v12.13.0 from the Go module proxy).
"""

from __future__ import annotations

from learnflow.settings import Settings
from ops.platform import ray as local_ray

local_ray.use_cluster_env(Settings())

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks import rates
from learnflow import keyring
from learnflow.deadline import Deadline
from serve.auth import TokenVerifier
from serve.grading import catalog, grader, sandbox
from serve.services import grader_lock_dir

READ_RATES = (250, 500, 1000, 1500)
SUBMIT_RATES = range(10, 201, 10)
"""Climbed until a rate misses p95 <= ``SUBMIT_P95_MS`` or has errors: the rate just below is
where the CPU must be the limit."""
SECONDS = 10
STUDENTS = 3000
FLOOR_PORT = 8101
PATH = "/api/v1/progress"
READ_P95_MS = 5.0
SUBMIT_P95_MS = 300.0


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - a benchmark prints its figures


def mint(settings: Settings, prefix: str, count: int) -> list[str]:
    ring = keyring.load(settings.auth.keys_dir)
    return [keyring.mint(ring, settings.auth, f"{prefix}-{n}", ttl_s=3600)[0] for n in range(count)]


def start_floor(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor_app", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = Deadline.after(60)
    while not deadline.expired():
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
        if process.poll() is not None:
            raise RuntimeError(f"floor app exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    raise RuntimeError("the floor app did not answer within 60 s")


def read_rates(
    base_url: str, tokens: list[str], scratch: Path, label: str
) -> list[rates.RateResult]:
    targets = rates.write_targets(
        scratch / f"{label}-progress.jsonl", rates.get_targets(f"{base_url}{PATH}", tokens)
    )
    rates.attack(targets, 100, 3)  # warm connections and caches
    say(f"\n{label}: GET {PATH}, {SECONDS} s per rate\n{rates.HEADER}")
    results = []
    for rate in READ_RATES:
        result = rates.attack(targets, rate, SECONDS)
        say(rates.row(result))
        results.append(result)
    return results


def submit_rates(settings: Settings, scratch: Path) -> list[rates.RateResult]:
    exercise = catalog.load()["sum-to-n"]
    say(
        f"\nServe: POST /api/v1/attempts (a correct solution), {SECONDS} s per rate\n{rates.HEADER}"
    )
    results = []
    for rate in SUBMIT_RATES:
        tokens = mint(settings, f"bench-submit-{rate}-{os.getpid()}", rate * SECONDS)
        targets = rates.write_targets(
            scratch / f"submit-{rate}.jsonl",
            rates.submit_targets(
                f"{settings.serve.url}/api/v1/attempts", tokens, exercise.id, exercise.solution
            ),
        )
        result = rates.attack(targets, rate, SECONDS)
        say(rates.row(result))
        results.append(result)
        if result.p95_ms > SUBMIT_P95_MS or result.errors:
            break  # past the highest rate that fits: the next ones only queue
        time.sleep(3)  # let the ingest catch up before the next rate
    return results


def best(results: list[rates.RateResult], p95_ms: float) -> rates.RateResult | None:
    fit = [r for r in results if r.p95_ms <= p95_ms and r.errors == 0]
    return max(fit, key=lambda r: r.rate) if fit else None


def jwt_costs(settings: Settings) -> tuple[float, float]:
    ring = keyring.load(settings.auth.keys_dir)
    verifier = TokenVerifier(settings.auth)
    repeated, _ = keyring.mint(ring, settings.auth, "bench-jwt")
    verifier.verify(repeated)
    cached = []
    for _ in range(20_000):
        began = time.perf_counter_ns()
        verifier.verify(repeated)
        cached.append(time.perf_counter_ns() - began)
    fresh_tokens = [keyring.mint(ring, settings.auth, f"bench-jwt-{n}")[0] for n in range(500)]
    fresh = []
    for token in fresh_tokens:
        began = time.perf_counter_ns()
        verifier.verify(token)
        fresh.append(time.perf_counter_ns() - began)
    return statistics.median(cached) / 1000, statistics.median(fresh) / 1000


def grader_costs(settings: Settings) -> tuple[float, float, float, float]:
    """(bare python3 -c pass, the same in the sandbox, overhead, median trivial grade) in ms."""
    python = str(settings.grader.python)
    bare = []
    for _ in range(30):
        began = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        bare.append((time.perf_counter() - began) * 1000)
    boxed_argv = sandbox.argv(settings.grader, settings.grader.first_uid, [])
    boxed_argv = boxed_argv[: boxed_argv.index(python)] + [python, "-c", "pass"]
    boxed = []
    for _ in range(30):
        began = time.perf_counter()
        subprocess.run(boxed_argv, check=True)
        boxed.append((time.perf_counter() - began) * 1000)
    exercise = catalog.load()["sum-to-n"]

    async def grades() -> list[float]:
        judge = grader.Grader(settings.grader, grader_lock_dir(settings))
        await judge.ready()
        times = []
        for _ in range(30):
            began = time.perf_counter()
            result = await judge.grade(exercise, exercise.solution)
            if not result.passed:
                raise RuntimeError(f"the reference solution failed: {result}")
            times.append((time.perf_counter() - began) * 1000)
        return times

    graded = asyncio.run(grades())
    b, s = statistics.median(bare), statistics.median(boxed)
    return b, s, s - b, statistics.median(graded)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-submits", action="store_true", help="reads, JWT and grader only")
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        tokens = mint(settings, "bench-api", STUDENTS)
        say(f"{STUDENTS:,} students' tokens; vegeta, {SECONDS} s per rate")
        serve = read_rates(settings.serve.url, tokens, scratch, "Serve (HAProxy, the API)")
        floor_process = start_floor(FLOOR_PORT)
        try:
            floor = read_rates(
                f"http://127.0.0.1:{FLOOR_PORT}", tokens, scratch, "floor (Starlette on uvicorn)"
            )
        finally:
            floor_process.send_signal(signal.SIGINT)
            try:
                floor_process.wait(20)
            except subprocess.TimeoutExpired:
                floor_process.kill()
        submits = [] if args.skip_submits else submit_rates(settings, scratch)

    cached_us, fresh_us = jwt_costs(settings)
    say(
        f"\nJWT verification p50: repeated token {cached_us:.1f} µs, new token {fresh_us:.1f} µs "
        "(RSA-2048 verify)"
    )
    bare, boxed, overhead, grade_ms = grader_costs(settings)
    say(
        f"grader: bare python3 -c pass {bare:.1f} ms, in the sandbox {boxed:.1f} ms "
        f"(overhead {overhead:.1f} ms); a trivial correct solution graded in {grade_ms:.1f} ms "
        "(median)"
    )

    at_1000 = next(r for r in serve if r.rate == 1000)
    serve_best, floor_best = best(serve, READ_P95_MS), best(floor, READ_P95_MS)
    ratio = (serve_best.rate if serve_best else 0) / (floor_best.rate if floor_best else 1)
    say("")
    checks = [
        (
            "GET /progress at 1,000/s: p95 <= 5 ms, no errors",
            at_1000.p95_ms <= READ_P95_MS and at_1000.errors == 0,
            f"p95 {at_1000.p95_ms:.2f} ms, {at_1000.errors} errors",
        ),
        (
            "highest read rate with p95 <= 5 ms, Serve / floor >= 0.5",
            ratio >= 0.5,
            f"Serve {serve_best.rate if serve_best else 0}/s, "
            f"floor {floor_best.rate if floor_best else 0}/s, ratio {ratio:.2f}",
        ),
        ("JWT p50 <= 0.05 ms for a repeated token", cached_us <= 50, f"{cached_us / 1000:.4f} ms"),
    ]
    if submits:
        top = best(submits, SUBMIT_P95_MS)
        checks.append(
            (
                "submits: highest rate with p95 <= 300 ms >= 40/s, CPU >= 90 % busy there",
                top is not None and top.rate >= 40 and top.cpu_busy >= 0.9,
                f"{top.rate}/s at {top.cpu_busy:.0%} CPU" if top else "none",
            )
        )
    for label, ok, figure in checks:
        say(f"  [{'met' if ok else 'MISSED'}] {label}: {figure}")


if __name__ == "__main__":
    main()
