"""Runs untrusted Python under bubblewrap with rlimits, a uid of its own and a wall clock.

The layers, outermost first:

- ``setpriv`` to a non-root uid leased for this run alone (``uids.py``): RLIMIT_NPROC is
  ignored for root, so only a real uid contains a fork bomb; distinct uids also keep
  concurrent runs from signalling each other;
- ``prlimit``: CPU seconds, address space, processes, file size, open files;
- ``bwrap``: new user, pid, ipc, uts, cgroup and network namespaces (no network at all), the
  system's ``/usr`` read-only and nothing else of the host's files, a private size-limited
  tmpfs as the working directory, a cleared environment, a new session, death with its parent;
- a wall-clock timeout and a cap on what is read from stdout and stderr.

The program's results come back on a pipe of their own (see ``runner.py``), never from its
output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learnflow.exceptions import LearnFlowError
from learnflow.settings import GraderSettings

RUNNER = (Path(__file__).parent / "runner.py").read_text()


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


def command(settings: GraderSettings, uid: int) -> list[str]:
    """The argv of one sandboxed run of the runner under ``uid``."""
    mb = 1024 * 1024
    return [
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
        "prlimit",
        f"--cpu={settings.cpu_seconds}:{settings.cpu_seconds + 1}",
        f"--as={settings.memory_mb * mb}",
        f"--nproc={settings.processes}",
        f"--fsize={settings.file_size_kb * 1024}",
        "--nofile=64",
        "--core=0",
        "--",
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
        "--size", str(settings.tmp_size_mb * mb),
        "--tmpfs", "/tmp",  # noqa: S108
        "--chdir", "/tmp",  # noqa: S108
        str(settings.python), "-I", "-S", "-c", RUNNER,
    ]  # fmt: skip


async def run(settings: GraderSettings, uid: int, spec: dict[str, Any]) -> Run:
    """Run the runner with ``spec`` (the program and its calls) under ``uid``."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    began = time.perf_counter()
    try:
        process = await asyncio.create_subprocess_exec(
            *command(settings, uid),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(write_end,),
            start_new_session=True,
            cwd="/",
        )
    except (OSError, PermissionError) as err:
        os.close(read_end)
        os.close(write_end)
        raise SandboxUnavailableError(f"cannot start the sandbox: {err}") from err
    finally:
        with contextlib.suppress(OSError):
            os.close(write_end)

    cap = settings.output_kb * 1024
    outcome = Run()
    loop = asyncio.get_running_loop()
    results_reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(results_reader), os.fdopen(read_end, "rb")
    )
    if process.stdin is None or process.stdout is None or process.stderr is None:
        raise SandboxUnavailableError("the sandbox started without its pipes")
    process.stdin.write(json.dumps({**spec, "results_fd": write_end}).encode())
    with contextlib.suppress(ConnectionError):
        await process.stdin.drain()
    process.stdin.close()

    overflow = asyncio.Event()

    async def capped(stream: asyncio.StreamReader) -> bytes:
        kept = bytearray()
        while chunk := await stream.read(65536):
            if len(kept) < cap:
                kept += chunk[: cap - len(kept)]
            elif not overflow.is_set():
                overflow.set()
        return bytes(kept)

    async def results() -> bytes:
        kept = bytearray()
        while chunk := await results_reader.read(65536):
            kept += chunk[: max(0, cap * 4 - len(kept))]
        return bytes(kept)

    gathered: asyncio.Future[Any] = asyncio.gather(
        capped(process.stdout), capped(process.stderr), results(), process.wait()
    )
    overflow_wait: asyncio.Future[Any] = asyncio.ensure_future(overflow.wait())
    try:
        done, _ = await asyncio.wait(
            {gathered, overflow_wait},
            timeout=settings.wall_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if gathered not in done:
            outcome.limit = "output" if overflow.is_set() else "time"
            _kill(process)
        stdout, stderr, raw_results, _ = await asyncio.wait_for(gathered, timeout=5.0)
    finally:
        overflow_wait.cancel()
        transport.close()
        _kill(process)
    outcome.wall_ms = (time.perf_counter() - began) * 1000
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


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the sandbox's session: bwrap, and with it the whole pid namespace."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


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


async def check(settings: GraderSettings, uid: int) -> str:
    """Prove the sandbox works here (a trivial program runs and reports); say why if not."""
    for tool in ("setpriv", "prlimit", "bwrap"):
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
    )  # fmt: skip
    if outcome.results[-1:] != [{"i": 0, "ok": True, "value": 42}]:
        detail = (outcome.stderr or outcome.stdout).strip()[-500:]
        raise SandboxUnavailableError(
            f"bubblewrap sandbox does not run here (exit {outcome.exit_code}): {detail}"
        )
    return f"bubblewrap sandbox ok ({outcome.wall_ms:.0f} ms)"
