"""Runs untrusted Python under bubblewrap with rlimits, a uid of its own and a wall clock.

The layers, outermost first:

- ``setpriv`` to a non-root uid leased for this run alone (``uids.py``): RLIMIT_NPROC is
  ignored for root, so only a real uid contains a fork bomb; distinct uids also keep
  concurrent runs from signalling each other;
- per-process limits (the shell's ``ulimit``): CPU seconds, address space, processes, file
  size, open files, no core files;
- ``bwrap``: new user, pid, ipc, uts, cgroup and network namespaces (no network at all), the
  system's ``/usr`` read-only and nothing else of the host's files, a read-only root and
  ``/dev``, a private size-limited tmpfs as the working directory, a cleared environment, a new
  session, death with its parent;
- a control group per run (``cgroups.py``) bounding the memory, processes and CPU of all its
  processes together, where the host has one;
- a wall-clock timeout and a cap on what is read from stdout and stderr;
- no inherited descriptors but stdin, stdout, stderr and the results pipe.

The program's results come back on a pipe of their own (see ``runner.py``), never from its
output.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import marshal
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learnflow.deadline import Deadline
from learnflow.exceptions import LearnFlowError
from learnflow.settings import GraderSettings
from serve.grading import cgroups

RUNNER = (Path(__file__).parent / "runner.py").read_text()
BOOTSTRAP = "import marshal,sys;exec(marshal.load(sys.stdin.buffer))"
"""What the sandbox's interpreter starts with: the runner comes first on stdin, compiled ahead
by :func:`runner_code` (compiling its source on every run cost an eighth of a grade's CPU), and
the run's spec follows it."""
_COMPILE = (
    "import marshal,sys;"
    "sys.stdout.buffer.write(marshal.dumps(compile(sys.stdin.read(),'runner.py','exec')))"
)


class SandboxUnavailableError(LearnFlowError):
    """Bubblewrap (or the rest of the sandbox) cannot run here: no code is run at all."""


@dataclass(slots=True)
class Run:
    """What one sandboxed run produced."""

    results: list[dict[str, Any]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    signal: str | None = None
    limit: str | None = None
    """Which limit ended the run: time, cpu, memory, output, file size; None if none did."""
    wall_ms: float = 0.0
    cpu_ms: float | None = None
    """CPU time of all the run's processes together (None without a control group)."""


@functools.cache
def runner_code(python: Path) -> bytes:
    """The runner compiled by the sandbox's own interpreter and marshalled: a code object is
    only readable by the Python version that wrote it."""
    try:
        done = subprocess.run(  # noqa: S603 - our interpreter, our runner
            [str(python), "-I", "-S", "-c", _COMPILE],
            input=RUNNER.encode(),
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxUnavailableError(f"{python} cannot compile the runner: {err}") from err
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode("utf-8", "replace").strip()[-500:]
        raise SandboxUnavailableError(f"{python} cannot compile the runner: {detail}")
    return done.stdout


def command(settings: GraderSettings, uid: int) -> list[str]:
    """The argv of one sandboxed run of the runner under ``uid``: ``setpriv`` to the uid, then
    ``bwrap`` (the per-process limits are set by :func:`argv` before)."""
    return [
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
        "bwrap",
        "--unshare-all",  # pid, ipc, uts, cgroup and network namespaces
        "--unshare-user",
        "--die-with-parent",
        "--as-pid-1",  # the outer bwrap reaps the program itself: no orphan left behind
        "--new-session",
        "--disable-userns",
        "--clearenv",
        "--setenv", "PATH", "/usr/bin",
        "--setenv", "HOME", "/tmp",  # noqa: S108 - the sandbox's own private tmpfs
        "--setenv", "LANG", "C.UTF-8",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(settings.tmp_size_mb * 1024 * 1024),
        "--tmpfs", "/tmp",  # noqa: S108
        "--chdir", "/tmp",  # noqa: S108
        # Last, once everything is mounted: bwrap's root and /dev are tmpfs mounts the size of
        # host memory; read-only, only the size-limited /tmp can hold what the program writes.
        "--remount-ro", "/dev",
        "--remount-ro", "/",
        str(settings.python), "-I", "-S", "-c", BOOTSTRAP,
    ]  # fmt: skip


# Still as root: joins the run's control groups (the paths before "--"; every process the
# program will ever start inherits them), sets the per-process limits with the shell's own
# ulimit (an exec of prlimit cost as much CPU as a tenth of a grade), then becomes the sandbox.
# dash's ulimit: -t seconds, -v KiB, -p processes, -f 512-byte blocks; a bare limit sets soft
# and hard together, so CPU gets its hard limit first and then the lower soft one (SIGXCPU at
# the soft limit, SIGKILL at the hard).
_PREPARE = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; '
    'ulimit -t "$1" && ulimit -S -t "$2" && ulimit -v "$3" && ulimit -p "$4" && '
    'ulimit -f "$5" && ulimit -n 64 && ulimit -c 0 || exit 125; shift 5; exec "$@"'
)
_WATCH_S = 0.1
"""How often a run's CPU, summed over its processes, is compared with its budget."""


def argv(settings: GraderSettings, uid: int, groups: list[Path]) -> list[str]:
    """The full argv of a run: joining its control groups (if any) and setting the
    per-process limits, then :func:`command`."""
    limits = [
        str(settings.cpu_seconds + 1),
        str(settings.cpu_seconds),
        str(settings.memory_mb * 1024),
        str(settings.processes),
        str(settings.file_size_kb * 2),
    ]
    return [
        "/bin/sh", "-c", _PREPARE, "sandbox", *map(str, groups), "--", *limits,
        *command(settings, uid),
    ]  # fmt: skip


async def run(
    settings: GraderSettings,
    uid: int,
    spec: dict[str, Any],
    groups: cgroups.RunGroups | None = None,
) -> Run:
    """Run the runner with ``spec`` (the program and its calls) under ``uid``.

    The sandbox is spawned by ``subprocess`` with ``close_fds``, never by the event loop:
    uvloop (which Serve replicas run) spawns with libuv, which closes only descriptors marked
    close-on-exec, and a Ray worker holds others (its log files, its pipe to the raylet). So
    whatever loop runs this, the program inherits exactly stdin, stdout, stderr and its results
    pipe.
    """
    joined = groups.prepare(uid) if groups is not None else []
    cpu_before = groups.cpu_ns(uid) if groups is not None else None
    read_end, write_end = os.pipe()  # both close-on-exec; pass_fds hands on the write end only
    began = time.perf_counter()
    try:
        process = subprocess.Popen(  # noqa: S603 - our fixed argv; the program comes on stdin
            argv(settings, uid, joined),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_end,),
            close_fds=True,
            start_new_session=True,
            cwd="/",
        )
    except OSError as err:
        os.close(read_end)
        raise SandboxUnavailableError(f"cannot start the sandbox: {err}") from err
    finally:
        os.close(write_end)

    cap = settings.output_kb * 1024
    outcome = Run()
    loop = asyncio.get_running_loop()
    readers = [asyncio.StreamReader() for _ in range(3)]
    pipes = [process.stdout, process.stderr, os.fdopen(read_end, "rb")]
    transports: list[asyncio.BaseTransport] = []
    try:
        for reader, pipe in zip(readers, pipes, strict=True):
            read_transport, _ = await loop.connect_read_pipe(_protocol_for(reader), pipe)
            transports.append(read_transport)
        stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, process.stdin)
        transports.append(stdin)
        # marshal: the runner reads it without importing json (see runner.py)
        spec_bytes = marshal.dumps({**spec, "results_fd": write_end})
        stdin.write(runner_code(settings.python) + spec_bytes)
        stdin.close()  # after what is buffered is written

        overflow = asyncio.Event()

        async def capped(stream: asyncio.StreamReader) -> bytes:
            kept = bytearray()
            while chunk := await stream.read(65536):
                if len(kept) < cap:
                    kept += chunk[: cap - len(kept)]
                elif not overflow.is_set():
                    overflow.set()
            return bytes(kept)

        async def results(stream: asyncio.StreamReader) -> bytes:
            kept = bytearray()
            while chunk := await stream.read(65536):
                kept += chunk[: max(0, cap * 4 - len(kept))]
            return bytes(kept)

        gathered: asyncio.Future[Any] = asyncio.gather(
            capped(readers[0]), capped(readers[1]), results(readers[2]), _exit_of(process)
        )
        outcome.limit = await _watch(settings, uid, groups, cpu_before, gathered, overflow)
        if outcome.limit is not None:
            _kill(process, uid, groups)
        stdout, stderr, raw_results, _ = await asyncio.wait_for(gathered, timeout=5.0)
    finally:
        for transport in transports:
            transport.close()
        _kill(process, uid, groups)
    outcome.wall_ms = (time.perf_counter() - began) * 1000
    if groups is not None and cpu_before is not None:
        cpu_after = groups.cpu_ns(uid)
        outcome.cpu_ms = None if cpu_after is None else (cpu_after - cpu_before) / 1e6
    outcome.stdout = stdout.decode("utf-8", "replace")
    outcome.stderr = stderr.decode("utf-8", "replace")
    outcome.exit_code = process.returncode
    if process.returncode is not None and process.returncode < 0:
        outcome.signal = signal.Signals(-process.returncode).name
    for line in raw_results.decode("utf-8", "replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            outcome.results.append(item)
    outcome.limit = outcome.limit or _limit_of(outcome)
    return outcome


def _protocol_for(reader: asyncio.StreamReader) -> Callable[[], asyncio.StreamReaderProtocol]:
    return lambda: asyncio.StreamReaderProtocol(reader)


async def _watch(
    settings: GraderSettings,
    uid: int,
    groups: cgroups.RunGroups | None,
    cpu_before: int | None,
    gathered: asyncio.Future[Any],
    overflow: asyncio.Event,
) -> str | None:
    """Wait for the run to end; the limit that ended it first (wall clock, output, the CPU of
    all its processes together), or None if it ended by itself."""
    deadline = Deadline.after(settings.wall_seconds)
    budget_ns = settings.cpu_seconds * 1_000_000_000
    watching_cpu = groups is not None and cpu_before is not None
    overflow_wait: asyncio.Future[Any] = asyncio.ensure_future(overflow.wait())
    try:
        while not deadline.expired():
            done, _ = await asyncio.wait(
                {gathered, overflow_wait},
                timeout=deadline.cap(_WATCH_S) if watching_cpu else deadline.remaining(),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if gathered in done:
                return None
            if overflow_wait in done:
                return "output"
            if groups is not None and cpu_before is not None:
                used = groups.cpu_ns(uid)
                if used is not None and used - cpu_before > budget_ns:
                    return "cpu"
        return "time"
    finally:
        overflow_wait.cancel()


async def _exit_of(process: subprocess.Popen[bytes]) -> int:
    """The exit status, awaited on a pidfd (readable once the process has ended)."""
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(process.pid)
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await ended
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return process.wait()


def _kill(process: subprocess.Popen[bytes], uid: int, groups: cgroups.RunGroups | None) -> None:
    """SIGKILL the sandbox's session (bwrap, and with it the whole pid namespace) and anything
    left in the run's control group."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    if groups is not None:
        groups.kill(uid)


def _limit_of(outcome: Run) -> str | None:
    # bwrap exits with the status of the program; a signal shows up as 128 + signo.
    code = outcome.exit_code or 0
    signo = -code if code < 0 else code - 128 if code > 128 else 0
    if signo in (signal.SIGXCPU, signal.SIGKILL):  # soft, then hard RLIMIT_CPU
        return "cpu"
    if signo == signal.SIGXFSZ:
        return "file size"
    if "MemoryError" in outcome.stderr or any(r.get("limit") == "memory" for r in outcome.results):
        return "memory"
    return None


async def check(settings: GraderSettings, uid: int, groups: cgroups.RunGroups | None = None) -> str:
    """Prove the sandbox works here (a trivial program runs and reports); say why if not."""
    for tool in ("setpriv", "bwrap"):
        if shutil.which(tool) is None:
            raise SandboxUnavailableError(f"{tool} is not installed")
    if not settings.python.exists():
        raise SandboxUnavailableError(f"{settings.python} does not exist")
    if os.geteuid() != 0:
        raise SandboxUnavailableError(
            "the grader must start as root to run each slot under its own uid"
        )
    outcome = await run(
        settings, uid, {"kind": "function", "code": "def f():\n    return 42\n",
                      "tests": [{"function": "f", "args": []}]},
        groups,
    )  # fmt: skip
    if outcome.results[-1:] != [{"i": 0, "ok": True, "value": 42}]:
        detail = (outcome.stderr or outcome.stdout).strip()[-500:]
        raise SandboxUnavailableError(
            f"bubblewrap sandbox does not run here (exit {outcome.exit_code}): {detail}"
        )
    bounds = (
        f"cgroup {groups.kind} per run"
        if groups is not None and groups.kind != "none"
        else "no cgroup here: per-process limits only"
    )
    return f"bubblewrap sandbox ok ({outcome.wall_ms:.0f} ms, {bounds})"
