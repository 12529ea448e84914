"""The uids sandboxed programs run under: one per concurrent run, across every process here.

A run's uid is leased with an exclusive ``flock`` on ``<lock_dir>/uid-<n>.lock``, so two
grader replicas (or a test next to the Serve app) never share one: RLIMIT_NPROC counts every
process of a uid, and a uid shared by two runs would let one starve or signal the other.

A run that ended abnormally (a limit, a kill) may leave processes of its uid behind for a
moment, killed but not yet reaped; such a uid is reused only once no process of it remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

_RETRY_S = 0.02


def processes_of(uid: int) -> int:
    """How many processes (zombies included) belong to ``uid`` right now."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += 1
    return count


class UidPool:
    def __init__(self, first_uid: int, size: int, lock_dir: Path) -> None:
        self._uids = range(first_uid, first_uid + size)
        self._lock_dir = lock_dir
        self._held: dict[int, int] = {}
        self._dirty: set[int] = set()
        lock_dir.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def lease(self, timeout_s: float = 30.0) -> AsyncIterator[Lease]:
        uid = await asyncio.wait_for(self._acquire(), timeout_s)
        lease = Lease(uid)
        try:
            yield lease
        finally:
            if lease.dirty:
                self._dirty.add(uid)
            descriptor = self._held.pop(uid)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    async def _acquire(self) -> int:
        while True:
            for uid in self._uids:
                if uid in self._held:
                    continue
                descriptor = os.open(self._lock_dir / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(descriptor)
                    continue
                if uid in self._dirty:
                    if processes_of(uid):
                        fcntl.flock(descriptor, fcntl.LOCK_UN)
                        os.close(descriptor)
                        continue
                    self._dirty.discard(uid)
                self._held[uid] = descriptor
                return uid
            await asyncio.sleep(_RETRY_S)


class Lease:
    def __init__(self, uid: int) -> None:
        self.uid = uid
        self.dirty = False
