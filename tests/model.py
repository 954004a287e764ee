"""An independent model of the rollups, computed from the events a test posted.

Written separately from ``eras.domain`` and ``eras.store`` on purpose: the tests compare the
service's stored rollups with what this plain reading of the spec says they should be.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def session_ms(event: dict[str, Any]) -> int:
    metadata = event["data"].get("metadata") or {}
    started, finished = _time(metadata.get("started_at")), _time(metadata.get("finished_at"))
    if started is None or finished is None:
        return 0
    seconds = max(0.0, min((finished - started).total_seconds(), 10_800.0))
    return round(seconds * 1000)


def final_versions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The classification each (id, created_at) ends up as: the one with the latest updated_at."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        if event["source"] != "panoptes" or event["type"] != "classification":
            continue
        data = event["data"]
        key = (str(data["id"]), data["created_at"])
        if key not in latest or data["updated_at"] > latest[key]["data"]["updated_at"]:
            latest[key] = event
    return list(latest.values())


def expected_classification_rollups(
    events: list[dict[str, Any]],
) -> dict[str, dict[tuple[Any, ...], tuple[int, int]]]:
    totals: dict[str, dict[tuple[Any, ...], list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0])
    )

    def add(name: str, key: tuple[Any, ...], ms: int) -> None:
        totals[name][key][0] += 1
        totals[name][key][1] += ms

    for event in final_versions(events):
        data = event["data"]
        created = _time(data["created_at"])
        assert created is not None
        day: date = created.date()
        links = data["links"]
        project, workflow = int(links["project"]), int(links["workflow"])
        user = int(links["user"]) if links.get("user") else None
        ms = session_ms(event)
        add("classification_daily", (day,), ms)
        add("classification_project_daily", (project, day), ms)
        add("classification_workflow_daily", (workflow, day), ms)
        add("classification_project_workflow_daily", (project, workflow, day), ms)
        if user is None:
            continue
        add("classification_user_daily", (user, day), ms)
        add("classification_user_project_daily", (user, project, day), ms)
        add("classification_user_workflow_daily", (user, workflow, day), ms)
        for group in {int(g) for g in (data.get("metadata") or {}).get("user_group_ids") or []}:
            add("group_daily", (group, day), ms)
            add("group_project_daily", (group, project, day), ms)
            add("group_workflow_daily", (group, workflow, day), ms)
            add("group_user_daily", (group, user, day), ms)
            add("group_user_project_daily", (group, user, project, day), ms)
            add("group_user_workflow_daily", (group, user, workflow, day), ms)
    return with_levels(
        {
            name: {key: (value[0], value[1]) for key, value in rows.items()}
            for name, rows in totals.items()
        }
    )


def expected_comment_rollups(
    events: list[dict[str, Any]],
) -> dict[str, dict[tuple[Any, ...], tuple[int]]]:
    """Comment counts: Talk never re-publishes, so the first copy of (id, created_at) counts."""
    totals: dict[str, dict[tuple[Any, ...], int]] = defaultdict(lambda: defaultdict(int))
    seen: set[tuple[int, str]] = set()
    for event in events:
        if event["source"] != "talk" or event["type"] != "comment":
            continue
        data = event["data"]
        key = (int(data["id"]), data["created_at"])
        if key in seen:
            continue
        seen.add(key)
        created = _time(data["created_at"])
        assert created is not None
        day = created.date()
        project = int(data["project_id"]) if data.get("project_id") else None
        user = int(data["user_id"]) if data.get("user_id") else None
        totals["comment_daily"][(day,)] += 1
        if project is not None:
            totals["comment_project_daily"][(project, day)] += 1
        if user is not None:
            totals["comment_user_daily"][(user, day)] += 1
        if project is not None and user is not None:
            totals["comment_project_user_daily"][(project, user, day)] += 1
    return with_levels(
        {name: {key: (n,) for key, n in rows.items()} for name, rows in totals.items()}
    )


# Families kept as all-time totals too, besides by the day and by the month.
TOTALS = ("classification_user_project", "group_project", "group_user", "group_user_project")


def with_levels(
    daily: dict[str, dict[tuple[Any, ...], tuple[int, ...]]],
) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """The daily rows, and what they sum to by calendar month and (for ``TOTALS``) for all
    time: keys with the month's first day instead of the day, or with no time at all."""
    levels = dict(daily)
    for name, rows in daily.items():
        family = name.removesuffix("_daily")
        months: dict[tuple[Any, ...], list[int]] = {}
        all_time: dict[tuple[Any, ...], list[int]] = {}
        for key, values in rows.items():
            for target, grouped in (
                (months, (*key[:-1], key[-1].replace(day=1))),
                (all_time, key[:-1]),
            ):
                sums = target.setdefault(grouped, [0] * len(values))
                for index, value in enumerate(values):
                    sums[index] += value
        levels[f"{family}_monthly"] = {key: tuple(sums) for key, sums in months.items()}
        if family in TOTALS:
            levels[f"{family}_total"] = {key: tuple(sums) for key, sums in all_time.items()}
    return levels
