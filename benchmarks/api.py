"""Benchmark: the API on Ray Serve against plain uvicorn, JWT verification, grader overhead.

1. ``GET /api/v1/progress`` (auth, rate limit, shard read) with wrk at 1, 16 and 64 connections,
   on the Serve app of ``make up`` and on uvicorn running the same FastAPI app (same handlers,
   same Ray shards) in the same run: requests/s, p50/p99 and the ratio Serve / uvicorn.
   Requests rotate over many students' tokens so the per-student limit is not what is measured.
2. With ``--modes``, Serve variants, each on a freshly started Ray head: Ray's Python proxy
   (with our ``max_ongoing_requests`` and with Serve's default of 5, and throughput-optimized)
   and the HAProxy mode alone; the default setup is HAProxy + throughput-optimized.
3. JWT verification per request: a repeated token (the cache) and a new one (RSA), in µs.
4. The grader: the sandbox's overhead over a bare ``python3 -c pass``, and the median time to
   grade a trivial correct solution.

Run with ``make bench-api`` (``--modes all`` for every Serve variant; it restarts Ray).
"""

from __future__ import annotations

from learnflow.platform import ray as local_ray
from learnflow.settings import Settings

local_ray.use_cluster_env(Settings())

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from learnflow import keyring
from learnflow.deadline import Deadline
from learnflow.platform import stack
from learnflow.platform.exceptions import ServiceStartError
from serve.auth import TokenVerifier
from serve.grading import catalog, grader, sandbox
from serve.services import grader_lock_dir

CONNECTIONS = (1, 16, 64)
SECONDS = 8
STUDENTS = 3000
UVICORN_PORT = 8100
PATH = "/api/v1/progress"

WRK_SCRIPT = """
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = line end
local n = 0
request = function()
  n = n + 1
  local token = tokens[(n * 7919 + math.random(1, #tokens)) %% #tokens + 1]
  return wrk.format("GET", "%s", {["Authorization"] = "Bearer " .. token})
end
local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
"""


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - a benchmark prints its figures


@dataclass(frozen=True, slots=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def wrk(url: str, connections: int, script: Path) -> Load:
    threads = 1 if connections == 1 else 2
    run = subprocess.run(
        [
            "wrk", f"-t{threads}", f"-c{connections}", f"-d{SECONDS}s", "--latency",
            "--timeout", "10s", "-s", str(script), url,
        ],
        capture_output=True, text=True, check=True, timeout=SECONDS + 60,
    )  # fmt: skip
    out = run.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Load(
        rps, _percentile(out, "50%"), _percentile(out, "99%"), int(bad.group(1)) if bad else 0
    )


def _percentile(out: str, label: str) -> float:
    found = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no {label} latency:\n{out}")
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def token_file(settings: Settings, directory: Path) -> Path:
    ring = keyring.load(settings.auth.keys_dir)
    path = directory / "tokens.txt"
    path.write_text(
        "\n".join(
            keyring.mint(ring, settings.auth, f"bench-api-{n}", ttl_s=3600)[0]
            for n in range(STUDENTS)
        )
        + "\n"
    )
    return path


def start_uvicorn(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.api_server", str(port)],
        env={**os.environ, **local_ray.client_env(settings)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = Deadline.after(90)
    while not deadline.expired():
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    raise RuntimeError("uvicorn did not answer within 90 s")


def compare(settings: Settings, tokens: Path, label: str) -> dict[int, Load]:
    script = tokens.with_name("progress.lua")
    script.write_text(WRK_SCRIPT % (tokens, PATH))
    results: dict[int, Load] = {}
    for connections in CONNECTIONS:
        results[connections] = wrk(f"{settings.serve.url}{PATH}", connections, script)
    return results


def print_table(name: str, serve: dict[int, Load], plain: dict[int, Load]) -> None:
    say(f"\n{name}: GET {PATH}, {SECONDS} s per row")
    say(
        f"{'conns':>6} {'serve req/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}   "
        f"{'uvicorn req/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}   {'ratio':>6}"
    )
    for c in CONNECTIONS:
        s, u = serve[c], plain[c]
        say(
            f"{c:>6} {s.rps:>12,.0f} {s.p50_ms:>8.1f} {s.p99_ms:>8.1f} {s.non_2xx:>8}   "
            f"{u.rps:>13,.0f} {u.p50_ms:>8.1f} {u.p99_ms:>8.1f} {u.non_2xx:>8}   "
            f"{s.rps / u.rps:>6.2f}"
        )


def uvicorn_loads(settings: Settings, tokens: Path) -> dict[int, Load]:
    server = start_uvicorn(settings, UVICORN_PORT)
    try:
        plain_settings = settings.model_copy(
            update={"serve": settings.serve.model_copy(update={"port": UVICORN_PORT})}
        )
        return compare(plain_settings, tokens, "uvicorn")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def restart_ray(settings: Settings, app_env: dict[str, str]) -> None:
    """Restart the Ray head with ``settings`` (its env) and redeploy the apps with the
    ``LEARNFLOW_…`` overrides in ``app_env`` (secrets never leave the environment)."""
    from learnflow.platform import ray as platform_ray

    platform_ray.stop(settings, Deadline.after(60))
    platform_ray.start(settings, Deadline.after(120))
    subprocess.run(
        [str(Path(sys.executable).with_name("learnflow")), "up"],
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **local_ray.client_env(settings), **app_env},
    )
    stack.wait_ready(settings, Deadline.after(120))


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
    boxed_argv = sandbox.command(settings.grader, settings.grader.first_uid)
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
    parser.add_argument(
        "--modes",
        default="",
        help="comma list of Serve variants to restart Ray for: ray-proxy, "
        "ray-proxy-concurrency-5, ray-proxy-throughput, haproxy-only, or all",
    )
    args = parser.parse_args()
    modes = (
        ["ray-proxy", "ray-proxy-concurrency-5", "ray-proxy-throughput", "haproxy-only"]
        if args.modes == "all"
        else [m for m in args.modes.split(",") if m]
    )
    settings = Settings()
    with tempfile.TemporaryDirectory() as scratch:
        tokens = token_file(settings, Path(scratch))
        say(f"{STUDENTS:,} students' tokens; wrk {SECONDS} s per row")

        serve = compare(settings, tokens, "serve")
        plain = uvicorn_loads(settings, tokens)
        print_table(
            f"Serve (proxy={settings.serve.proxy}, "
            f"max_ongoing_requests={settings.serve.max_ongoing_requests}) vs uvicorn",
            serve,
            plain,
        )
        app_env = {"ray-proxy-concurrency-5": {"LEARNFLOW_SERVE__MAX_ONGOING_REQUESTS": "5"}}
        ray_proxy = settings.model_copy(
            update={"serve": settings.serve.model_copy(update={"proxy": "ray"})}
        )

        def with_env(env: dict[str, str]) -> Settings:
            return ray_proxy.model_copy(
                update={"ray": ray_proxy.ray.model_copy(update={"extra_env": env})}
            )

        variants = {
            "ray-proxy": ray_proxy,
            "ray-proxy-concurrency-5": ray_proxy,
            "ray-proxy-throughput": with_env({"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}),
            "haproxy-only": with_env(
                {
                    "RAY_SERVE_ENABLE_HA_PROXY": "1",
                    "RAY_SERVE_HAPROXY_BINARY_PATH": str(local_ray.HAPROXY_LOOPBACK),
                }
            ),
        }
        try:
            for mode in modes:
                say(f"\nrestarting Ray for Serve variant {mode!r} …")
                try:
                    restart_ray(variants[mode], app_env.get(mode, {}))
                    print_table(f"Serve variant {mode}", compare(settings, tokens, mode), plain)
                except (subprocess.SubprocessError, RuntimeError, ServiceStartError) as err:
                    say(f"  variant {mode} did not run: {err}")
        finally:
            if modes:
                say("\nrestoring the default Serve setup …")
                restart_ray(settings, {})

    cached_us, fresh_us = jwt_costs(settings)
    say(
        f"\nJWT verification p50: repeated token {cached_us:.1f} µs "
        f"({cached_us / 1000:.4f} ms), new token {fresh_us:.1f} µs (RSA-2048 verify); "
        "Kong's published figure: 200 µs"
    )
    bare, boxed, overhead, grade_ms = grader_costs(settings)
    say(
        f"grader: bare python3 -c pass {bare:.1f} ms, in the sandbox {boxed:.1f} ms "
        f"(overhead {overhead:.1f} ms); a trivial correct solution graded in {grade_ms:.1f} ms "
        "(median)"
    )
    ratio = min(serve[c].rps / plain[c].rps for c in CONNECTIONS)
    say("")
    for label, ok, figure in [
        ("Serve >= 0.5 of uvicorn (worst of 1/16/64)", ratio >= 0.5, f"{ratio:.2f}"),
        ("JWT p50 <= 0.05 ms for a repeated token", cached_us <= 50, f"{cached_us / 1000:.4f} ms"),
        ("grader overhead <= 15 ms", overhead <= 15, f"{overhead:.1f} ms"),
        ("trivial grade <= 150 ms (median)", grade_ms <= 150, f"{grade_ms:.1f} ms"),
    ]:
        say(f"  [{'met' if ok else 'MISSED'}] {label}: {figure}")


if __name__ == "__main__":
    main()
