"""Grading: run a program in the sandbox and judge its values against the hidden tests.

The judging happens here, outside the sandbox: the program only ever sees the inputs.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from learnflow.settings import GraderSettings
from serve.grading import cgroups, sandbox
from serve.grading.catalog import Exercise
from serve.grading.uids import UidPool

LIMIT_MESSAGES = {
    "time": "time limit exceeded: the program ran longer than {wall:g} s",
    "cpu": "time limit exceeded: the program used more than {cpu} s of CPU",
    "memory": "memory limit exceeded: the program tried to use more than {memory} MB",
    "output": "output limit exceeded: the program printed more than {output} KB",
    "file size": "file size limit exceeded: a file grew past {fsize} KB",
}
_EXCERPT = 4000


@dataclass(frozen=True, slots=True)
class TestResult:
    name: str
    passed: bool
    message: str


@dataclass(frozen=True, slots=True)
class Grade:
    passed: bool
    tests_passed: int
    tests_total: int
    status: str
    """passed, failed, or what stopped the program (time limit, memory limit, …)."""
    message: str
    tests: tuple[TestResult, ...]
    stdout: str
    duration_ms: int

    @property
    def score(self) -> float:
        return self.tests_passed / self.tests_total

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["score"] = self.score
        return body


class Grader:
    """Grades programs: a uid lease per run, the sandbox, and the judging.

    If the sandbox cannot run here it refuses every program with the reason (checked again at
    most every ``_RECHECK_S``), never running code outside it.
    """

    _RECHECK_S = 30.0

    def __init__(self, settings: GraderSettings, lock_dir: Path) -> None:
        self._settings = settings
        self._uids = UidPool(settings.first_uid, settings.uid_pool, lock_dir)
        self._groups = cgroups.RunGroups(
            cgroups.Limits(
                memory_bytes=settings.run_memory_mb * 1024 * 1024,
                # the program's processes, plus the outer bwrap that waits for them
                processes=settings.processes + 1,
                cpus=settings.run_cpus,
            )
        )
        self._concurrency = asyncio.Semaphore(settings.slots)
        self._check_lock = asyncio.Lock()
        self._checked_at = float("-inf")
        self._problem: str | None = "not checked yet"

    async def ready(self) -> str:
        """Whether the sandbox works; raises SandboxUnavailableError saying why not."""
        if self._problem is None:  # checked and working: no lock on the grading path
            return "bubblewrap sandbox ok"
        async with self._check_lock:  # callers wait for one check instead of each running one
            if self._problem is not None and time.monotonic() - self._checked_at > self._RECHECK_S:
                self._checked_at = time.monotonic()
                try:
                    async with self._uids.lease() as lease:
                        detail = await sandbox.check(self._settings, lease.uid, self._groups)
                    self._problem = None
                    return detail
                except sandbox.SandboxUnavailableError as err:
                    self._problem = str(err)
            if self._problem is not None:
                raise sandbox.SandboxUnavailableError(self._problem)
        return "bubblewrap sandbox ok"

    async def grade(self, exercise: Exercise, code: str) -> Grade:
        await self.ready()
        spec = {"kind": exercise.kind, "code": code, "tests": [t.call() for t in exercise.tests]}
        async with self._concurrency, self._uids.lease() as lease:
            run = await sandbox.run(self._settings, lease.uid, spec, self._groups)
            lease.dirty = run.limit is not None or run.signal is not None
        return judge(self._settings, exercise, run)


def judge(settings: GraderSettings, exercise: Exercise, run: sandbox.Run) -> Grade:
    total = len(exercise.tests)
    loaded = [r for r in run.results if "load" in r]
    answers: dict[int, list[dict[str, Any]]] = {}
    for item in run.results:
        index = item.get("i")
        if isinstance(index, int) and 0 <= index < total:
            answers.setdefault(index, []).append(item)
    limit_message = _limit_message(settings, run.limit) if run.limit else None
    names = shown_names(exercise)

    if not loaded:
        message = limit_message or _stopped(run)
        results = tuple(TestResult(name, False, message) for name in names)
        return _grade(exercise, run, results, _status_of(run.limit) if run.limit else "error",
                      message)  # fmt: skip
    if len(loaded) > 1 or any(len(found) > 1 for found in answers.values()):
        # The runner writes one load line and one line per test; anything else was written by
        # the program itself to the grader's channel.
        status, message = "tampered", "the program wrote to the grader's result channel"
        results = tuple(TestResult(name, False, message) for name in names)
        return _grade(exercise, run, results, status, message)
    if not loaded[0]["load"]:
        error = loaded[0].get("error", "the program failed to load")
        status = "memory limit exceeded" if loaded[0].get("limit") == "memory" else "error"
        message = limit_message or error
        results = tuple(TestResult(name, False, message) for name in names)
        return _grade(exercise, run, results, status, message)

    results_list = []
    for index, (test, name) in enumerate(zip(exercise.tests, names, strict=True)):
        found = answers.get(index)
        if not found:
            reason = limit_message or _stopped(run)
            results_list.append(TestResult(name, False, reason))
            continue
        answer = found[0]
        if not answer.get("ok"):
            message = str(answer.get("error", "failed"))
            if answer.get("limit") == "memory":
                message = _limit_message(settings, "memory")
            elif "File too large" in message:
                message = _limit_message(settings, "file size")
            elif "No space left on device" in message:
                message = f"disk full: the work directory holds {settings.tmp_size_mb} MB"
            elif not test.example:
                # The error's text may quote the hidden input; its type and line may not.
                message = f"{message.partition(':')[0]} raised"
            trace = answer.get("trace") or []
            if trace:
                message = f"{message} ({trace[-1]})"
            results_list.append(TestResult(name, False, message))
            continue
        expected = test.expected_value()
        value = answer.get("value")
        if same(value, expected):
            results_list.append(TestResult(name, True, "passed"))
        elif test.example:
            results_list.append(
                TestResult(name, False, f"expected {_show(expected)}, got {_show(value)}")
            )
        else:
            results_list.append(TestResult(name, False, "wrong answer"))
    results = tuple(results_list)
    passed = sum(r.passed for r in results)
    if passed == total:
        status, message = "passed", f"all {total} tests passed"
    elif run.limit:
        status, message = _status_of(run.limit), limit_message or ""
    else:
        status, message = "failed", f"{passed} of {total} tests passed"
    return _grade(exercise, run, results, status, message)


def shown_names(exercise: Exercise) -> list[str]:
    """What each test is called in a grade: examples by name, hidden tests by number only (a
    name such as "100" could give the input away)."""
    names, hidden = [], 0
    for test in exercise.tests:
        if test.example:
            names.append(test.name)
        else:
            hidden += 1
            names.append(f"hidden test {hidden}")
    return names


def same(value: Any, expected: Any) -> bool:
    """Equal as JSON data; floats within a relative 1e-9; ``True`` is not ``1``."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(expected, float) or isinstance(value, float):
        if isinstance(value, int | float) and isinstance(expected, int | float):
            return math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)
        return False
    if isinstance(expected, list | tuple):
        return (
            isinstance(value, list)
            and len(value) == len(expected)
            and all(same(v, e) for v, e in zip(value, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(value, dict)
            and value.keys() == expected.keys()
            and all(same(value[k], expected[k]) for k in expected)
        )
    return type(value) is type(expected) and bool(value == expected)


def _grade(
    exercise: Exercise,
    run: sandbox.Run,
    results: tuple[TestResult, ...],
    status: str,
    message: str,
) -> Grade:
    passed = sum(r.passed for r in results)
    return Grade(
        passed=passed == len(results),
        tests_passed=passed,
        tests_total=len(results),
        status=status,
        message=message,
        tests=results,
        stdout=run.stdout[:_EXCERPT],
        duration_ms=round(run.wall_ms),
    )


def _status_of(limit: str) -> str:
    return "time limit exceeded" if limit in ("time", "cpu") else f"{limit} limit exceeded"


def _limit_message(settings: GraderSettings, limit: str) -> str:
    return LIMIT_MESSAGES[limit].format(
        wall=settings.wall_seconds,
        cpu=settings.cpu_seconds,
        memory=settings.memory_mb,
        output=settings.output_kb,
        fsize=settings.file_size_kb,
    )


def _stopped(run: sandbox.Run) -> str:
    if run.signal:
        return f"the program was stopped by {run.signal}"
    if run.exit_code:
        return f"the program exited with status {run.exit_code} before this test"
    return "the program ended before this test ran"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
