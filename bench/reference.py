"""The original service's design, small, as a peer to race against: and the stack's floor.

``app`` answers the calls the benchmark makes the way the original does: from the same daily
rollup rows eras keeps, bucketed by ``date_trunc`` (PostgreSQL) or by cutting the date text
(SQLite) at query time, with one or two statements per call, through an async driver (psycopg's
``AsyncConnection``; SQLite's standard module in worker threads, as aiosqlite does), and no
token check at all. It is what a lean implementation of that design costs; eras' figures are
reported as ratios against it.

``floor`` is FastAPI with one route that returns a constant: what the web stack costs before
any query runs.

    REFERENCE_DATABASE_URL=postgresql://... uvicorn bench.reference:app --workers 2
    uvicorn bench.reference:floor --workers 2
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

_URL = os.environ.get("REFERENCE_DATABASE_URL", "sqlite:///eras.db")
_POSTGRES = _URL.startswith("postgres")
_POOL = 10


class _Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# --- the driver ------------------------------------------------------------------------------


class _Postgres:
    def __init__(self) -> None:
        self._idle: asyncio.Queue[Any] = asyncio.Queue()

    async def open(self) -> None:
        import psycopg

        for _ in range(_POOL):
            connection = await psycopg.AsyncConnection.connect(_URL, autocommit=True)
            self._idle.put_nowait(connection)

    async def fetch(self, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        connection = await self._idle.get()
        try:
            cursor = await connection.execute(sql.replace("?", "%s"), values, prepare=True)
            return list(await cursor.fetchall())
        finally:
            self._idle.put_nowait(connection)


class _SQLite:
    def __init__(self) -> None:
        self._local = threading.local()
        self._path = _URL.removeprefix("sqlite:///")

    async def open(self) -> None:
        pass

    def _run(self, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = sqlite3.connect(self._path)
        return connection.execute(sql, list(values)).fetchall()

    async def fetch(self, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._run, sql, values)


_DATABASE = _Postgres() if _POSTGRES else _SQLite()


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await _DATABASE.open()
    yield


app = FastAPI(lifespan=_lifespan)
floor = FastAPI()


@floor.get("/")
async def floor_status() -> Response:
    return _Json({"revision": "floor"})


# --- query building --------------------------------------------------------------------------


def _bucket(period: str) -> str:
    if _POSTGRES:
        return f"CAST(date_trunc('{period}', CAST(day AS timestamp)) AS date)"
    return {
        "day": "day",
        "week": "date(day, '-6 days', 'weekday 1')",
        "month": "substr(day, 1, 8) || '01'",
        "year": "substr(day, 1, 5) || '01-01'",
    }[period]


def _where(query: dict[str, str], fixed: dict[str, int]) -> tuple[str, list[Any]]:
    conditions: list[str] = []
    values: list[Any] = []
    for column, value in fixed.items():
        conditions.append(f"{column} = ?")
        values.append(value)
    for column in ("project_id", "workflow_id"):
        if query.get(column):
            ids = [int(piece) for piece in query[column].split(",")]
            conditions.append(f"{column} IN ({', '.join('?' * len(ids))})")
            values.extend(ids)
    if query.get("start_date"):
        conditions.append("day >= ?")
        values.append(date.fromisoformat(query["start_date"]))
    if query.get("end_date"):
        conditions.append("day <= ?")
        values.append(date.fromisoformat(query["end_date"]))
    if not _POSTGRES:
        values = [value.isoformat() if isinstance(value, date) else value for value in values]
    return " AND ".join(conditions) or "1 = 1", values


def _period(value: Any) -> str:
    day = value if isinstance(value, str) else value.isoformat()
    return f"{day}T00:00:00.000Z"


def _seconds(milliseconds: Any) -> float:
    return int(milliseconds) / 1000


# --- the routes ------------------------------------------------------------------------------


@app.get("/")
async def status() -> Response:
    return _Json({"revision": "reference"})


@app.get("/classifications/")
@app.get("/classifications")
async def classifications(request: Request) -> Response:
    query = dict(request.query_params)
    table = (
        "classification_workflow_daily"
        if query.get("workflow_id")
        else "classification_project_daily"
        if query.get("project_id")
        else "classification_daily"
    )
    where, values = _where(query, {})
    period = query.get("period")
    if not period:
        rows = await _DATABASE.fetch(f"SELECT sum(count) FROM {table} WHERE {where}", values)
        return _Json({"total_count": int(rows[0][0] or 0)})
    rows = await _DATABASE.fetch(
        f"SELECT {_bucket(period)} AS period, sum(count) FROM {table} WHERE {where} "
        "GROUP BY 1 ORDER BY 1",
        values,
    )
    return _Json(
        {
            "total_count": sum(int(row[1]) for row in rows),
            "data": [{"period": _period(row[0]), "count": int(row[1])} for row in rows],
        }
    )


@app.get("/classifications/users/{user_id}/")
@app.get("/classifications/users/{user_id}")
async def user_stats(user_id: int, request: Request) -> Response:
    query = dict(request.query_params)
    where, values = _where(query, {"user_id": user_id})
    period = query.get("period") or "year"
    time_spent = query.get("time_spent", "").lower() == "true"
    rows = await _DATABASE.fetch(
        f"SELECT {_bucket(period)} AS period, sum(count), sum(session_ms) "
        f"FROM classification_user_project_daily WHERE {where} GROUP BY 1 ORDER BY 1",
        values,
    )
    body: dict[str, Any] = {"total_count": sum(int(row[1]) for row in rows)}
    if time_spent:
        body["time_spent"] = sum(int(row[2]) for row in rows) / 1000
    if query.get("project_contributions", "").lower() == "true":
        projects = await _DATABASE.fetch(
            "SELECT project_id, sum(count) AS total FROM classification_user_project_daily "
            f"WHERE {where} GROUP BY project_id ORDER BY total DESC, project_id",
            values,
        )
        body["project_contributions"] = [
            {"project_id": row[0], "count": int(row[1])} for row in projects
        ]
    if query.get("period"):
        body["data"] = [
            {"period": _period(row[0]), "count": int(row[1])}
            | ({"session_time": _seconds(row[2])} if time_spent else {})
            for row in rows
        ]
    return _Json(body)


@app.get("/classifications/user_groups/{group_id}/")
@app.get("/classifications/user_groups/{group_id}")
async def group_stats(group_id: int, request: Request) -> Response:
    query = dict(request.query_params)
    where, values = _where(query, {"user_group_id": group_id})
    if query.get("individual_stats_breakdown", "").lower() == "true":
        rows = await _DATABASE.fetch(
            "SELECT user_id, project_id, sum(count) AS total, sum(session_ms) "
            f"FROM group_user_project_daily WHERE {where} GROUP BY user_id, project_id",
            values,
        )
        members: dict[int, dict[str, Any]] = {}
        for user, project, count, session in rows:
            member = members.setdefault(
                user,
                {"user_id": user, "count": 0, "session_ms": 0, "project_contributions": []},
            )
            member["count"] += int(count)
            member["session_ms"] += int(session)
            member["project_contributions"].append(
                {"project_id": project, "count": int(count), "session_time": _seconds(session)}
            )
        breakdown = []
        for member in sorted(members.values(), key=lambda m: (-m["count"], m["user_id"])):
            member["project_contributions"].sort(key=lambda p: (-p["count"], p["project_id"]))
            breakdown.append(
                {
                    "user_id": member["user_id"],
                    "count": member["count"],
                    "session_time": _seconds(member.pop("session_ms")),
                    "project_contributions": member["project_contributions"],
                }
            )
        return _Json({"group_member_stats_breakdown": breakdown})
    period = query.get("period")
    members_rows = await _DATABASE.fetch(
        "SELECT user_id, sum(count) AS total, sum(session_ms) FROM group_user_daily "
        f"WHERE {where} GROUP BY user_id ORDER BY total DESC, user_id",
        values,
    )
    body: dict[str, Any] = {
        "total_count": sum(int(row[1]) for row in members_rows),
        "time_spent": sum(int(row[2]) for row in members_rows) / 1000,
        "active_users": len(members_rows),
    }
    projects = await _DATABASE.fetch(
        "SELECT project_id, sum(count) AS total, sum(session_ms) FROM group_project_daily "
        f"WHERE {where} GROUP BY project_id ORDER BY total DESC, project_id",
        values,
    )
    body["project_contributions"] = [
        {"project_id": row[0], "count": int(row[1]), "session_time": _seconds(row[2])}
        for row in projects
    ]
    if query.get("top_contributors"):
        body["top_contributors"] = [
            {"user_id": row[0], "count": int(row[1]), "session_time": _seconds(row[2])}
            for row in members_rows[: int(query["top_contributors"])]
        ]
    if period:
        rows = await _DATABASE.fetch(
            f"SELECT {_bucket(period)} AS period, sum(count), sum(session_ms) FROM group_daily "
            f"WHERE {where} GROUP BY 1 ORDER BY 1",
            values,
        )
        body["data"] = [
            {"period": _period(row[0]), "count": int(row[1]), "session_time": _seconds(row[2])}
            for row in rows
        ]
    return _Json(body)
