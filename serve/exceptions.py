"""The API's errors, each answered as JSON ``{"detail": …}`` with the status named here (see
``serve.api``'s handlers). Authentication errors live with the token check (``serve.auth``)."""

from __future__ import annotations

from learnflow.exceptions import LearnFlowError


class NotFoundError(LearnFlowError):
    """No such resource (404)."""


class RateLimitedError(LearnFlowError):
    """The student made more requests in the last minute than allowed (429 with Retry-After)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


class GraderBusyError(LearnFlowError):
    """The grading places of this replica are taken for longer than a submit may wait: the
    client retries after ``retry_after_s`` (503)."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class OffsetBeyondEndError(LearnFlowError):
    """A read-your-writes offset that no event has (yet) on the student's partition (422)."""


class IdempotencyConflictError(LearnFlowError):
    """The key came with another body, is still being graded, or was interrupted (409)."""

    def __init__(self, reason: str, retry_after_s: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
