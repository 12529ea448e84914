"""What an outside attacker tried against a running stack, kept fixed: the sandbox's descriptors
and file systems, run-wide resource bounds, event ids per student, malformed tokens, HAProxy's
admin socket and error pages, dev tokens, one student-id rule, hidden tests, Redis passwords."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
import uvloop
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from learnflow import keyring, keys
from learnflow.settings import GraderSettings, RedisSettings, Settings
from ops.platform import partitions
from serve.grading import catalog, grader
from serve.grading.catalog import Exercise, HiddenTest
from serve.services import grader_lock_dir

SETTINGS: GraderSettings = Settings().grader.model_copy(update={"wall_seconds": 4.0})
LOCKS = grader_lock_dir(Settings())
LIST_FDS = (
    "import os\n"
    "def descriptors():\n"
    "    found = {}\n"
    "    for name in os.listdir('/proc/self/fd'):\n"
    "        try:\n"
    "            found[int(name)] = os.readlink('/proc/self/fd/' + name)\n"
    "        except OSError:\n"
    "            pass  # the descriptor listdir itself used, closed by now\n"
    "    return found\n"
)


def probe(expected: Any, example: bool = True) -> Exercise:
    return Exercise(
        id="probe",
        title="probe",
        components=("functions",),
        statement="probe",
        starter="",
        solution="",
        tests=(HiddenTest(name="probe", function="f", expected=expected, example=example),),
    )


def grade_under_uvloop(code: str, exercise: Exercise) -> grader.Grade:
    """Grade as a Serve replica does: on uvloop, in a process holding descriptors that are not
    close-on-exec (as a Ray worker holds its log files)."""
    leaked = os.open(__file__, os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        return uvloop.run(grader.Grader(SETTINGS, LOCKS).grade(exercise, code))
    finally:
        os.close(leaked)


def assert_only_stdio_and_results(descriptors: dict[int, str]) -> None:
    assert sorted(descriptors)[:3] == [0, 1, 2], descriptors
    assert len(descriptors) == 4, (
        f"the program holds more than stdio and its results pipe: {descriptors}"
    )
    assert all(target.startswith("pipe:") for target in descriptors.values()), descriptors


# 1. Descriptors


def test_the_sandbox_inherits_no_descriptor_of_the_grader() -> None:
    code = LIST_FDS + "def f():\n    return {str(k): v for k, v in descriptors().items()}\n"
    result = grade_under_uvloop(code, probe("never"))
    shown = result.tests[0].message.split("got ", 1)[1]
    found = {int(k): v for k, v in eval(shown).items()}  # noqa: S307 - our own test output
    assert_only_stdio_and_results(found)


def test_through_the_api_the_program_holds_only_stdio_and_its_results_pipe(
    api: httpx.Client, token: str
) -> None:
    code = LIST_FDS + "print(descriptors())\ndef sum_to(n):\n    return 0\n"
    answer = submit(api, token, "sum-to-n", code)
    assert answer.status_code == 201, answer.text
    found = eval(answer.json()["stdout"])  # noqa: S307 - our own test output
    assert_only_stdio_and_results(found)


# 2. File systems and run-wide bounds


def test_root_and_dev_are_not_writable_and_tmp_is_bounded() -> None:
    code = (
        "import os\n"
        "def f():\n"
        "    outcome = {}\n"
        "    for place in ('/', '/dev', '/dev/shm', '/tmp'):\n"
        "        try:\n"
        "            for n in range(200):  # files under the 1 MB file size limit\n"
        "                with open(os.path.join(place, f'fill{n}'), 'wb') as handle:\n"
        "                    handle.write(b'x' * 1_000_000)\n"
        "            outcome[place] = 'wrote 200 MB'\n"
        "        except OSError as err:\n"
        "            outcome[place] = type(err).__name__ + ' ' + str(err.errno)\n"
        "    return outcome\n"
    )
    result = grade_under_uvloop(code, probe("never"))
    outcome = eval(result.tests[0].message.split("got ", 1)[1])  # noqa: S307
    assert outcome["/"] == outcome["/dev"] == "OSError 30", outcome  # EROFS
    assert "200 MB" not in outcome["/dev/shm"], outcome  # noqa: S108 - the sandbox's own
    assert "200 MB" not in outcome["/tmp"], outcome  # noqa: S108 - size-limited tmpfs


def test_a_fork_bomb_gets_one_runs_cpu_budget_in_all() -> None:
    bomb = (
        "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n"
    )
    exercise = probe(42)

    async def run_it() -> tuple[str, Any]:
        pool = grader.Grader(SETTINGS, LOCKS)
        assert "cgroup v" in await pool.ready(), "this host should bound runs with a cgroup"
        spec = {"kind": "function", "code": bomb, "tests": [t.call() for t in exercise.tests]}
        async with pool._uids.lease() as lease:
            from serve.grading import sandbox

            run = await sandbox.run(SETTINGS, lease.uid, spec, pool._groups)
            lease.dirty = True
        return run.limit or "", run.cpu_ms

    limit, cpu_ms = uvloop.run(run_it())
    assert limit in ("cpu", "time")
    assert cpu_ms is not None
    # Every process of the run together: its CPU budget, plus what one watch period lets by.
    assert cpu_ms <= SETTINGS.cpu_seconds * 1000 + 2 * SETTINGS.run_cpus * 100 + 250, cpu_ms


def test_the_processes_of_a_run_share_one_memory_bound() -> None:
    # Eight processes of 100 MB each stay under the per-process limit; together they exceed
    # the run's, so they cannot all hold their memory at once. A process counts only if it
    # held its block to the end and exited by itself: the bound may end any of them, not only
    # the one allocating.
    code = (
        "import os, time\n"
        "def f():\n"
        "    children = []\n"
        "    for _ in range(8):\n"
        "        child = os.fork()\n"
        "        if child == 0:\n"
        "            try:\n"
        "                block = b'x' * 100_000_000\n"
        "                time.sleep(1.5)\n"
        "                os._exit(0 if len(block) else 1)\n"
        "            except BaseException:\n"
        "                os._exit(1)\n"
        "        children.append(child)\n"
        "    held = 0\n"
        "    for child in children:\n"
        "        held += os.waitpid(child, 0)[1] == 0\n"
        "    return held\n"
    )
    assert 8 * 100 > SETTINGS.run_memory_mb
    result = grade_under_uvloop(code, probe(8))
    assert not result.passed, "eight 100 MB processes ran at once"


# 3. Event ids per student


def test_one_students_key_never_erases_another_students_attempt(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing
) -> None:
    first, second = student(), student()
    key = str(uuid.uuid4())
    answers = [
        submit(api, keyring.mint(ring, settings.auth, sid)[0], "sum-to-n", SUM_TO, key)
        for sid in (first, second)
    ]
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    ids = {a.json()["event"]["event_id"] for a in answers}
    assert len(ids) == 2 and key not in ids

    async def rows() -> dict[str, str]:
        connection = await asyncpg.connect(settings.postgres.dsn())
        try:
            found = await connection.fetch(
                "SELECT student_id, event_id::text FROM attempts WHERE student_id = ANY($1)",
                [first, second],
            )
        finally:
            await connection.close()
        return {row["student_id"]: row["event_id"] for row in found}

    deadline = time.monotonic() + 30
    recorded: dict[str, str] = {}
    while time.monotonic() < deadline and len(recorded) < 2:
        recorded = asyncio.run(rows())
        time.sleep(0.2)
    assert set(recorded) == {first, second}, recorded
    assert set(recorded.values()) == ids


def test_the_nil_uuid_is_not_an_idempotency_key(api: httpx.Client, token: str) -> None:
    refused = submit(api, token, "sum-to-n", SUM_TO, str(uuid.UUID(int=0)))
    assert refused.status_code == 422
    assert "nil UUID" in refused.json()["detail"]


# 4. Malformed tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(ring: keyring.KeyRing, settings: Settings, header: dict[str, Any]) -> str:
    """A token with exactly this header, signed by the real key (PyJWT would refuse to make
    some of these)."""
    now = int(time.time())
    claims = {
        "sub": student(), "iss": settings.auth.issuer, "aud": settings.auth.audience,
        "iat": now, "exp": now + 600, "jti": str(uuid.uuid4()),
        "permissions": list(keyring.PERMISSIONS),
    }  # fmt: skip
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = ring.private_key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


@pytest.mark.parametrize(
    "header",
    [
        {"kid": 7},
        {"kid": None},
        {"kid": ["a"]},
        {"kid": {"a": 1}},
        {"kid": True},
        {"crit": ["exp"]},
        {"crit": ["b64"], "b64": True},
        {"crit": "nonsense"},
    ],
    ids=["kid number", "kid null", "kid list", "kid object", "kid bool", "crit", "crit b64",
         "crit string"],
)  # fmt: skip
def test_every_malformed_token_is_a_401_with_a_json_reason(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing, header: dict[str, Any]
) -> None:
    full = {"alg": "RS256", "typ": "JWT", "kid": ring.signing, **header}
    answer = api.get(
        "/progress", headers={"Authorization": f"Bearer {signed(ring, settings, full)}"}
    )
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["detail"]


# 5. HAProxy's admin socket and its own error pages


def haproxy_config() -> Path:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"haproxy") and b"-f" in argv:
            return Path(argv[argv.index(b"-f") + 1].decode())
    pytest.fail("no haproxy process: the platform runs with serve.proxy=haproxy")


def test_haproxy_admin_socket_is_for_its_owner_only() -> None:
    config = haproxy_config().read_text()
    socket_line = re.search(r"^\s*stats socket (\S+) .*level admin", config, re.MULTILINE)
    assert socket_line is not None, config
    mode = stat.S_IMODE(os.stat(socket_line.group(1)).st_mode)
    assert mode == 0o600, oct(mode)


def test_errors_haproxy_answers_itself_are_json(settings: Settings) -> None:
    with httpx.Client(base_url=settings.serve.url, timeout=10) as client:
        long_url = client.get("/api/v1/exercises", params={"q": "a" * 20_000})
        long_header = client.get("/api/v1/exercises", headers={"X-Filler": "b" * 20_000})
    assert (long_url.status_code, long_header.status_code) == (414, 431)
    for answer in (long_url, long_header):
        assert answer.headers["content-type"] == "application/json", answer.text
        assert "too long" in answer.json()["detail"]


def test_a_request_over_haproxys_buffer_is_refused_at_once(settings: Settings) -> None:
    """Over HAProxy's 48 KB buffer the API never sees the request: HAProxy 2.6's HTTP/1 layer
    answers it with its compiled-in 400 page (it reads the proxy's error files only to learn
    that a page is empty). The promise kept there: a 400 and the connection closed, never a
    hang (the client's timeout) or a 5xx."""
    with httpx.Client(base_url=settings.serve.url, timeout=10) as client:
        answer = client.get("/api/v1/exercises", headers={"X-Filler": "c" * 60_000})
        after = client.get("/api/v1/exercises")
    assert answer.status_code == 400
    assert answer.headers.get("connection", "").lower() == "close"
    assert after.status_code == 200  # the proxy serves on


# 6. Dev tokens only in dev


def test_dev_tokens_are_refused_outside_dev() -> None:
    environment = {
        **os.environ,
        "LEARNFLOW_ENVIRONMENT": "prod",
        "LEARNFLOW_POSTGRES__PASSWORD": "a-real-secret",
    }
    began = subprocess.run(
        [str(Path(sys.executable).with_name("learnflow")), "up", "--dev-tokens"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert began.returncode == 1
    assert "dev_tokens" in began.stderr.replace("\n", " ")


# Also: one student-id rule, hidden tests, the Redis password


LOOKALIKES = ["\u0430lice", "alice ", "alice\n", "{alice}", "a" * 65, "", "-alice"]


@pytest.mark.parametrize("bad", LOOKALIKES, ids=repr)
def test_one_student_id_rule_for_the_cli_and_the_dev_login(api: httpx.Client, bad: str) -> None:
    minted = subprocess.run(
        [str(Path(sys.executable).with_name("learnflow")), "token", "--student", bad],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert minted.returncode != 0 and not minted.stdout.strip(), minted.stdout
    assert api.post("/dev/token", json={"student_id": bad}).status_code == 422


def test_hidden_tests_reveal_neither_expected_values_nor_inputs(
    api: httpx.Client, token: str
) -> None:
    exercise = catalog.load()["sum-to-n"]
    hidden = [t for t in exercise.tests if not t.example]
    assert hidden and any(t.example for t in exercise.tests)
    leaky = "def sum_to(n):\n    print('input', n)\n    raise ValueError(f'input was {n}')\n"
    answer = submit(api, token, "sum-to-n", leaky).json()
    text = json.dumps([answer["tests"][1:], answer["stdout"]])
    for test in hidden:
        for secret in (*test.args, test.expected_value(), test.name):
            assert not re.search(rf"\b{re.escape(str(secret))}\b", text), (secret, text)
    assert [t["name"] for t in answer["tests"][1:]] == [
        f"hidden test {n}" for n in range(1, len(hidden) + 1)
    ]
    example = exercise.tests[0]
    assert f"input {example.args[0]}" in answer["stdout"]  # what an example prints is shown


def test_forging_the_results_pipe_cannot_pass_an_exercise(api: httpx.Client, token: str) -> None:
    # Learn what the grader reveals, then write those values to the results pipe and stop.
    revealed = submit(api, token, "sum-to-n", "def sum_to(n):\n    return -1\n").json()["tests"]
    values = [
        json.loads(m.group(1)) if (m := re.match(r"expected (.+), got", t["message"])) else 0
        for t in revealed
    ]
    forge = (
        "import json, os\n"
        "lines = [{'load': True}]"
        f" + [{{'i': i, 'ok': True, 'value': v}} for i, v in enumerate({values!r})]\n"
        "for fd in range(3, 1024):\n"
        "    try:\n"
        "        os.write(fd, ''.join(json.dumps(x) + '\\n' for x in lines).encode())\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    )
    forged = submit(api, token, "sum-to-n", forge).json()
    assert not forged["passed"], forged


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[RedisSettings]:
    """A second, real redis-server that requires a password."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by make bootstrap"
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "s3cret",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        settings = RedisSettings(url=f"redis://127.0.0.1:{port}/0", password="s3cret")
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, password="s3cret").ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the protected redis-server did not start"
                time.sleep(0.05)
        yield settings
    finally:
        server.kill()
        server.wait()


def test_partition_status_reads_redis_with_its_password(
    settings: Settings, protected_redis: RedisSettings
) -> None:
    client = redis.Redis.from_url(
        protected_redis.url, password=protected_redis.password.get_secret_value()
    )
    topic = settings.kafka.events_topic
    client.hset(keys.partition_stats(topic, 0), mapping={"resident": 17, "applied": 99})
    configured = settings.model_copy(update={"redis": protected_redis})
    rows = partitions.partition_status(configured)
    assert (rows[0].resident_students, rows[0].applied) == (17, 99)


# Helpers and fixtures


SUM_TO = "def sum_to(n):\n    return n * (n + 1) // 2\n"


def student() -> str:
    return f"sec-{uuid.uuid4().hex[:10]}"


def submit(
    api: httpx.Client, token: str, exercise_id: str, code: str, key: str | None = None
) -> httpx.Response:
    return api.post(
        "/attempts",
        json={"exercise_id": exercise_id, "code": code},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key or str(uuid.uuid4())},
    )


@pytest.fixture
def token(settings: Settings, ring: keyring.KeyRing) -> str:
    return keyring.mint(ring, settings.auth, student())[0]
