"""Background processes owned by the local platform, tracked by pid file.

Every service runs in its own session (``start_new_session``), so stopping it can signal the whole
process group and leave nothing of ours behind.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from learnflow.deadline import Deadline
from ops.platform.exceptions import ServiceStartError

logger = logging.getLogger(__name__)

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True, slots=True)
class ServiceFiles:
    """Where one service keeps its pid file and log under the run directory."""

    name: str
    pidfile: Path
    logfile: Path

    @classmethod
    def under(cls, run_dir: Path, name: str) -> ServiceFiles:
        return cls(name, run_dir / f"{name}.pid", run_dir / f"{name}.log")


def spawn(
    files: ServiceFiles,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached, append its output to the service log, record its pid."""
    files.logfile.parent.mkdir(parents=True, exist_ok=True)
    with files.logfile.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            user=user,
            cwd=cwd,
            start_new_session=True,
        )
    # Keep the handle: the service outlives this call, and a dropped Popen warns while it runs.
    _CHILDREN[proc.pid] = proc
    files.pidfile.write_text(f"{proc.pid}\n")
    logger.info("started %s pid=%d", files.name, proc.pid)
    return proc.pid


def running_pid(files: ServiceFiles) -> int | None:
    """The service's pid if its pid file names a live (non-zombie) process."""
    try:
        pid = int(files.pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if is_alive(pid) else None


def is_alive(pid: int) -> bool:
    _reap(pid)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def stop(files: ServiceFiles, deadline: Deadline, sig: int = signal.SIGTERM) -> bool:
    """Signal the service, wait for it within the deadline, then kill its process group.

    Returns whether a process was running.
    """
    pid = running_pid(files)
    if pid is None:
        files.pidfile.unlink(missing_ok=True)
        return False
    logger.info("stopping %s pid=%d", files.name, pid)
    _signal(pid, sig)
    while is_alive(pid) and not deadline.expired():
        time.sleep(0.05)
    if is_alive(pid):
        logger.warning(
            "%s pid=%d ignored %s; killing it", files.name, pid, signal.Signals(sig).name
        )
    # Children in the service's session (workers, helpers) go too, whether or not it was polite.
    _killpg(pid)
    while is_alive(pid):
        time.sleep(0.05)
    files.pidfile.unlink(missing_ok=True)
    return True


def wait_until(
    files: ServiceFiles,
    ready: Callable[[], bool],
    deadline: Deadline,
    what: str,
    pid: int | None = None,
) -> None:
    """Poll ``ready`` until it holds; fail with the service log's tail when time runs out."""
    while True:
        try:
            if ready():
                return
        except Exception as err:  # any failure of a probe means "not yet"
            logger.debug("%s not ready yet: %s", what, err)
        if pid is not None and not is_alive(pid):
            raise ServiceStartError(
                f"{what} exited during start-up; last lines of {files.logfile}:\n"
                f"{log_tail(files.logfile)}"
            )
        if deadline.expired():
            raise ServiceStartError(
                f"{what} did not become ready within {deadline.budget:.0f} s; last lines of "
                f"{files.logfile}:\n{log_tail(files.logfile)}"
            )
        time.sleep(deadline.cap(0.2))


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return "  (no log written)"
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> None:
    """Collect a child of this process that has exited, so it is not mistaken for a live one."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
