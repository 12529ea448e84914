"""The grader against the real sandbox: every catalog exercise, and every attack contained."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from learnflow.settings import GraderSettings, Settings
from serve.grading import catalog, grader, sandbox, uids
from serve.grading.catalog import Exercise, HiddenTest
from serve.services import grader_lock_dir

SETTINGS: GraderSettings = Settings().grader.model_copy(update={"wall_seconds": 3.0})
LOCKS = grader_lock_dir(Settings())

PROBE = Exercise(
    id="probe",
    title="probe",
    components=("functions",),
    statement="return 42",
    starter="",
    solution="def f():\n    return 42\n",
    tests=(HiddenTest(name="answer", function="f", expected=42, example=True),),
)


def grade(code: str, exercise: Exercise = PROBE) -> grader.Grade:
    return asyncio.run(grader.Grader(SETTINGS, LOCKS).grade(exercise, code))


def test_sandbox_works_here() -> None:
    assert asyncio.run(grader.Grader(SETTINGS, LOCKS).ready()).startswith("bubblewrap sandbox ok")


def test_without_bubblewrap_no_code_runs(tmp_path: Path) -> None:
    (tmp_path / "setpriv").symlink_to(shutil.which("setpriv") or "setpriv")
    path = os.environ["PATH"]
    os.environ["PATH"] = str(tmp_path)
    try:
        with pytest.raises(sandbox.SandboxUnavailableError, match="bwrap is not installed"):
            asyncio.run(grader.Grader(SETTINGS, LOCKS).grade(PROBE, PROBE.solution))
    finally:
        os.environ["PATH"] = path


def test_concurrent_runs_never_share_a_uid() -> None:
    async def both() -> list[int]:
        first, second = uids.UidPool(50_000, 4, LOCKS), uids.UidPool(50_000, 4, LOCKS)
        async with first.lease() as a, second.lease() as b, first.lease() as c:
            return [a.uid, b.uid, c.uid]

    leased = asyncio.run(both())
    assert len(set(leased)) == 3


@pytest.mark.parametrize("exercise", list(catalog.load().values()), ids=lambda e: e.id)
def test_reference_solution_passes_and_starter_fails(exercise: Exercise) -> None:
    solved = grade(exercise.solution, exercise)
    assert solved.passed, [t for t in solved.tests if not t.passed]
    assert solved.status == "passed"
    started = grade(exercise.starter, exercise)
    assert not started.passed
    assert started.tests_passed < started.tests_total


def test_catalog_covers_enough() -> None:
    exercises = catalog.load()
    assert len(exercises) >= 15
    assert len({c for e in exercises.values() for c in e.components}) >= 5
    for exercise in exercises.values():
        public = exercise.public()
        assert "solution" not in public and "tests" in public
        assert isinstance(public["tests"], int)


def test_a_wrong_answer_names_expected_and_actual() -> None:
    result = grade("def f():\n    return 41\n")
    assert result.status == "failed"
    assert result.tests[0].message == "expected 42, got 41"


ATTACKS = {
    "infinite loop": ("def f():\n    while True:\n        pass\n", "time limit exceeded"),
    "sleep": ("import time\ndef f():\n    time.sleep(60)\n", "time limit exceeded"),
    "fork bomb": (
        "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n",
        "time limit exceeded",
    ),
    "memory bomb": ("def f():\n    return len(bytearray(10**9))\n", "memory limit exceeded"),
    "output flood": (
        "def f():\n    while True:\n        print('x' * 1000)\n",
        "output limit exceeded",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_resource_attacks_end_in_a_clear_failure(attack: str) -> None:
    code, status = ATTACKS[attack]
    began = time.monotonic()
    result = grade(code)
    assert not result.passed
    assert result.status == status, result
    assert "limit exceeded" in result.message
    assert time.monotonic() - began < SETTINGS.wall_seconds + 5
    assert grade(PROBE.solution).passed  # the next normal grade still works


def test_disk_fill_is_bounded() -> None:
    big = grade("def f():\n    open('big', 'wb').write(b'x' * 2_000_000)\n")
    assert "file size limit exceeded" in big.tests[0].message
    many = grade(
        "def f():\n    for i in range(100):\n        open(f'f{i}', 'wb').write(b'x' * 900_000)\n"
    )
    assert "disk full" in many.tests[0].message


def test_no_network() -> None:
    result = grade(
        "import socket\ndef f():\n"
        "    socket.create_connection(('127.0.0.1', 8000), timeout=1)\n    return 42\n"
    )
    assert not result.passed
    assert "Error" in result.tests[0].message


def test_no_host_files() -> None:
    here = os.path.abspath(__file__)
    result = grade(f"def f():\n    return open({here!r}).read()\n")
    assert "FileNotFoundError" in result.tests[0].message
    listing = grade("import os\ndef f():\n    return sorted(os.listdir('/'))\n")
    assert listing.tests[0].message.startswith("expected 42, got ['bin', 'dev', 'lib'")
    assert "work" not in listing.tests[0].message and "etc" not in listing.tests[0].message


def test_runs_as_a_non_root_uid_in_its_own_pid_namespace() -> None:
    result = grade("import os\ndef f():\n    return [os.getuid(), os.getpid(), os.getppid()]\n")
    message = result.tests[0].message
    uid, pid, parent = eval(message.split("got ", 1)[1])  # noqa: S307 - our own test output
    assert SETTINGS.first_uid <= uid < SETTINGS.first_uid + SETTINGS.uid_pool
    assert (pid, parent) == (1, 0)  # the program is pid 1 of a namespace of its own


def test_cannot_kill_other_processes() -> None:
    result = grade(
        f"import os, signal\ndef f():\n    os.kill({os.getpid()}, signal.SIGKILL)\n    return 42\n"
    )
    assert not result.passed  # our pid does not exist in its namespace
    assert "ProcessLookupError" in result.tests[0].message


def test_printed_or_forged_results_change_nothing() -> None:
    printed = grade("print('ALL TESTS PASSED')\ndef f():\n    print('PASS')\n    return 0\n")
    assert not printed.passed
    assert "ALL TESTS PASSED" in printed.stdout
    forged = grade(
        "import os\ndef f():\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        '            os.write(fd, b\'{"i": 0, "ok": true, "value": 42}\\n\')\n'
        "        except OSError:\n"
        "            pass\n"
        "    return 0\n"
    )
    assert not forged.passed
    assert forged.status == "tampered"


def test_syntax_error_is_a_graded_failure() -> None:
    result = grade("def f(:\n    return 42\n")
    assert result.status == "error"
    assert result.message.startswith("SyntaxError")


def test_the_grader_deployment_grades_for_the_api(ray_cluster: None, settings: Settings) -> None:
    """``grader.placement = "deployment"``: a ``Grader`` Serve deployment grades what the API
    hands it, with the same verdicts as in-process grading."""
    from ray import serve as ray_serve

    from serve.deployment import build_grader
    from serve.services import ServeGrading

    exercise = catalog.load()["sum-to-n"]
    name = f"grader-check-{os.getpid()}"
    handle = ray_serve.run(build_grader(settings), name=name, route_prefix=None)
    try:
        grading = ServeGrading(handle)
        passed = asyncio.run(grading.grade(exercise, exercise.solution))
        failed = asyncio.run(grading.grade(exercise, exercise.starter))
    finally:
        ray_serve.delete(name, _blocking=False)
    local = grade(exercise.starter, exercise).as_dict()
    assert (passed["passed"], passed["tests_passed"]) == (True, len(exercise.tests))
    assert (failed["passed"], failed["status"]) == (False, "failed")
    assert failed["tests"] == local["tests"]
    assert failed["tests"][0]["message"] == "expected 6, got 0"
