"""What ``learnflow status`` reports for one component."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    name: str
    running: bool
    pid: int | None = None
    port: int | None = None
    url: str | None = None
    detail: str = ""
