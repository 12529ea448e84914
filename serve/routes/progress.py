"""Mastery per component (now, and week by week)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from serve.deps import ProgressReader, Reader, ServicesDep
from serve.wire import HistoryResponse, ProgressResponse, WeekRow

router = APIRouter(tags=["progress"])


@router.get("/progress")
async def progress(
    request: Request,
    principal: ProgressReader,
    services: ServicesDep,
    min_offset: Annotated[
        int | None,
        Query(ge=0, description="Wait (bounded) until the attempt at this offset counts."),
    ] = None,
    timeout_s: Annotated[float | None, Query(gt=0, le=10)] = None,
) -> ProgressResponse:
    """Mastery and level per component, as checkpointed (Redis); with ``min_offset``, once
    that offset counts or the wait ends (``caught_up``)."""
    # serve.fast_reads answers the requests this route accepts, with the same checks and
    # answer; this route documents them and takes the rest.
    view = await services.progress(
        principal.student_id,
        request.state.reads,
        min_offset,
        timeout_s or services.settings.serve.progress_timeout_s,
    )
    return ProgressResponse.model_validate(view)


@router.get("/progress/history")
async def progress_history(
    principal: Reader,
    services: ServicesDep,
    weeks: Annotated[int, Query(ge=1, le=520)] = 12,
) -> HistoryResponse:
    """Weekly mastery aggregates (attempts, correct, P(mastered) at week's end)."""
    rows = await services.weekly(principal.student_id, weeks)
    return HistoryResponse(
        student_id=principal.student_id,
        weeks=[WeekRow.model_validate(dict(row)) for row in rows],
    )
