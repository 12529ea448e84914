"""Runs inside the sandbox (system Python, standard library only): the student's program and
the calls of the hidden tests, reporting each result as one JSON line on the results pipe.

Only arguments and stdin ever come in; the expected values stay outside, where the grader
compares. Whatever the student's code writes (to stdout, or to the results pipe itself) can
therefore claim nothing but values: a fake "all tests passed" changes no verdict.

The example tests run first; what the program prints there is shown to the student. Before the
first hidden test the program is cut off from anything a student sees: every other process in
the sandbox is killed, every descriptor but stdin and the results pipe is closed, and stdout and
stderr lead to /dev/null, so a hidden test's inputs cannot be printed out and learnt.
"""

from __future__ import annotations

import io
import marshal
import os
import sys
from _json import encode_basestring_ascii  # the C string escaper json itself uses

# Every import here is paid for on every grade: json (re, enum), traceback (linecache,
# tokenize), signal (enum) and typing cost 20 ms of the interpreter's CPU together, as much as
# the rest of a run. So the spec comes in marshalled, results go out through a small JSON
# writer, tracebacks are walked by hand, and the one signal is a number.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SIGKILL = 9
_CODE_NAME = "<student>"


def _dumps(value: Any) -> str:
    """JSON of plain data (what ``_plain`` returns); floats as Python's json writes them."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if isinstance(value, list):
        return "[" + ", ".join(_dumps(item) for item in value) + "]"
    return (
        "{"
        + ", ".join(f"{encode_basestring_ascii(k)}: {_dumps(v)}" for k, v in value.items())
        + "}"
    )


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:500]


def _plain(value: Any, depth: int = 0) -> Any:
    """The value as JSON data, or a marker with its repr if it is not plain data."""
    if depth > 20:
        return {"__repr__": "<nested too deeply>"}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    return {"__repr__": repr(value)[:200]}


def _error(err: BaseException, lines: list[str]) -> dict[str, Any]:
    if isinstance(err, MemoryError):
        return {"ok": False, "limit": "memory", "error": "MemoryError"}
    if isinstance(err, RecursionError):
        return {"ok": False, "error": "RecursionError: maximum recursion depth exceeded"}
    return {"ok": False, "error": _describe(err), "trace": _trace(err, lines)}


def _trace(err: BaseException, lines: list[str]) -> list[str]:
    """The last three frames of the student's own code: line number and text."""
    found = []
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _CODE_NAME:
            number = tb.tb_lineno
            text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
            found.append(f"line {number}: {text}")
        tb = tb.tb_next
    return found[-3:]


def _close_all_but(channel: int) -> None:
    """Close every descriptor above stderr except the results pipe."""
    os.closerange(3, channel)
    os.closerange(channel + 1, 1 << 20)


def _enter_hidden_phase(channel: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    if os.getpid() == 1:  # only as the init of the sandbox's own pid namespace
        try:
            os.kill(-1, _SIGKILL)  # every other process of the namespace
        except OSError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
    _close_all_but(channel)
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


def main() -> None:
    spec = marshal.loads(sys.stdin.buffer.read())  # noqa: S302 - the grader writes it
    channel = spec["results_fd"]
    _close_all_but(channel)  # whatever else was inherited, the program gets none of it
    results = os.fdopen(channel, "w", buffering=1)
    sys.stdin = io.StringIO("")
    code = spec["code"]
    lines = code.splitlines()

    def emit(item: dict[str, Any]) -> None:
        results.write(_dumps(item) + "\n")

    tests = spec["tests"]
    # Examples come first (the catalog insists): the hidden phase starts at the first other.
    first_hidden = next((i for i, t in enumerate(tests) if not t.get("example")), len(tests))
    if spec["kind"] == "program":
        try:
            compiled = compile(code, _CODE_NAME, "exec")
        except SyntaxError as err:
            emit({"load": False, "error": f"SyntaxError: {err.msg} (line {err.lineno})"})
            return
        emit({"load": True})
        for index, test in enumerate(tests):
            if index == first_hidden:
                _enter_hidden_phase(channel)
            captured = io.StringIO()
            outcome: dict[str, Any] = {"ok": True}
            sys.stdin, sys.stdout = io.StringIO(test.get("stdin", "")), captured
            try:
                exec(compiled, {"__name__": "__main__"})
            except SystemExit:
                pass
            except BaseException as err:  # the student's failure is the test's result
                outcome = _error(err, lines)
            finally:
                sys.stdout = sys.__stdout__
            if index < first_hidden:
                print(captured.getvalue()[-2000:], end="")
            outcome.update(i=index, value=captured.getvalue())
            emit(outcome)
        return

    namespace = {"__name__": "student"}
    try:
        exec(compile(code, _CODE_NAME, "exec"), namespace)
    except SyntaxError as err:
        emit({"load": False, "error": f"SyntaxError: {err.msg} (line {err.lineno})"})
        return
    except BaseException as err:  # failing at import is a result too
        emit({"load": False, **_error(err, lines)})
        return
    emit({"load": True})
    for index, test in enumerate(tests):
        if index == first_hidden:
            _enter_hidden_phase(channel)
            sys.stdout = io.StringIO()  # what the hidden calls print goes nowhere
        function = namespace.get(test["function"])
        if not callable(function):
            emit({"i": index, "ok": False, "error": f"no function named {test['function']}"})
            continue
        try:
            value = function(*test.get("args", []))
            emit({"i": index, "ok": True, "value": _plain(value)})
        except BaseException as err:  # the student's failure is the test's result
            emit({"i": index, **_error(err, lines)})


main()
