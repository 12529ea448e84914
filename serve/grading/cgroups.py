"""Control groups that bound one sandboxed run as a whole: memory, processes and CPU.

The rlimits of ``sandbox.py`` hold per process: 32 processes of 256 MB each could still take
8 GB and both cores. A run's group caps the sum over all of its processes, the files it writes
to its tmpfs included (tmpfs pages are charged to the writer's memory group), and lets the
grader read the CPU the run used in all.

Which kind is used depends on the host:

- **cgroup v2** (``/sys/fs/cgroup`` is the unified hierarchy with the memory, pids and cpu
  controllers delegated): ``memory.max``, ``memory.swap.max``, ``pids.max``, ``cpu.max``, CPU
  read from ``cpu.stat``;
- **cgroup v1** (hybrid hosts, such as containers with the legacy hierarchies mounted
  writable): ``memory.limit_in_bytes`` (and ``memsw`` where swap accounting is on), ``pids.max``,
  ``cpu.cfs_quota_us``, CPU read from ``cpuacct.usage``;
- **none** (no writable hierarchy, e.g. an unprivileged container): the per-process rlimits
  and the wall clock remain the only bounds; :attr:`RunGroups.kind` says so, and the grader's
  readiness detail reports it, so an operator can see that the host weakens the sandbox.

One group per uid slot, made once and reused: a run's processes all carry its leased uid, so
the slot's group is never shared by two runs at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")
GROUP = "learnflow-sandbox"
_V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
_PERIOD_US = 100_000

Kind = Literal["v2", "v1", "none"]


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int
    """All processes of a run together, tmpfs files included; no swap."""
    processes: int
    cpus: float
    """How many cores the run may use at once (its CPU quota per period)."""


class RunGroups:
    """The control groups of the uid slots on this host."""

    def __init__(self, limits: Limits, root: Path = ROOT) -> None:
        self._limits = limits
        self._root = root
        self.kind: Kind = _detect(root)
        self._made: set[int] = set()

    def prepare(self, uid: int) -> list[Path]:
        """The ``cgroup.procs`` files a run of ``uid`` joins before it starts (empty: none).

        Creates the slot's groups with their limits on first use and empties them of any
        process a previous run left behind.
        """
        if self.kind == "none":
            return []
        try:
            directories = self._directories(uid)
            if uid not in self._made:
                for directory in directories:
                    directory.mkdir(parents=True, exist_ok=True)
                self._write_limits(directories)
                self._made.add(uid)
            self.kill(uid)
        except OSError as err:
            logger.warning("sandbox control groups unusable (%s): per-process limits only", err)
            self.kind = "none"
            return []
        return [directory / "cgroup.procs" for directory in directories]

    def cpu_ns(self, uid: int) -> int | None:
        """CPU time used by every process the slot's group has held, if known (a running sum)."""
        try:
            if self.kind == "v2":
                for line in (self._directories(uid)[0] / "cpu.stat").read_text().splitlines():
                    name, _, value = line.partition(" ")
                    if name == "usage_usec":
                        return int(value) * 1000
                return None
            if self.kind == "v1":
                return int((self._v1(uid, "cpuacct") / "cpuacct.usage").read_text())
        except (OSError, ValueError):
            return None
        return None

    def kill(self, uid: int) -> None:
        """SIGKILL whatever still runs in the slot's group."""
        if self.kind == "none":
            return
        directory = self._directories(uid)[0]
        if self.kind == "v2" and (directory / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (directory / "cgroup.kill").write_text("1")
            return
        with contextlib.suppress(OSError):
            for pid in (directory / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)

    def _directories(self, uid: int) -> list[Path]:
        if self.kind == "v2":
            return [self._root / GROUP / f"uid-{uid}"]
        return [self._v1(uid, controller) for controller in _V1_CONTROLLERS]

    def _v1(self, uid: int, controller: str) -> Path:
        return self._root / controller / GROUP / f"uid-{uid}"

    def _write_limits(self, directories: list[Path]) -> None:
        limits = self._limits
        quota = max(1000, int(limits.cpus * _PERIOD_US))
        if self.kind == "v2":
            group = directories[0]
            (group / "memory.max").write_text(str(limits.memory_bytes))
            with contextlib.suppress(FileNotFoundError):  # no swap accounting on this kernel
                (group / "memory.swap.max").write_text("0")
            (group / "pids.max").write_text(str(limits.processes))
            (group / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
            return
        memory, pids, cpu, _ = directories
        (memory / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
        with contextlib.suppress(OSError):  # memsw exists only with swap accounting on
            (memory / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))
        (pids / "pids.max").write_text(str(limits.processes))
        (cpu / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(quota))


def _detect(root: Path) -> Kind:
    """v2 if the unified hierarchy delegates what is needed, else v1 if writable, else none."""
    if os.geteuid() != 0:
        return "none"
    controllers = root / "cgroup.controllers"
    if controllers.exists():
        wanted = {"memory", "pids", "cpu"}
        group = root / GROUP
        try:
            if not wanted <= set(controllers.read_text().split()):
                return "none"
            enabled = set((root / "cgroup.subtree_control").read_text().split())
            if not wanted <= enabled:
                (root / "cgroup.subtree_control").write_text(
                    " ".join(f"+{name}" for name in sorted(wanted - enabled))
                )
            group.mkdir(exist_ok=True)
            (group / "cgroup.subtree_control").write_text(
                " ".join(f"+{name}" for name in sorted(wanted))
            )
        except OSError as err:
            logger.warning("cgroup v2 is not delegated here (%s)", err)
            return "none"
        return "v2"
    if all(os.access(root / controller, os.W_OK) for controller in _V1_CONTROLLERS):
        return "v1"
    return "none"
