"""Query parameter declarations shared by the read routes, so OpenAPI describes them once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

IdList = Annotated[
    str | None,
    Query(description="One id or a comma-separated list; the counts of all listed ids are summed."),
]
DateParam = Annotated[
    str | None, Query(description="YYYY-MM-DD, inclusive, on the UTC day of the event.")
]
PeriodParam = Annotated[
    str | None,
    Query(description="day, week, month or year (case-insensitive); adds a bucketed `data` list."),
]
FlagParam = Annotated[str | None, Query(description="`true` (any case) turns it on.")]
