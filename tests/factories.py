"""Plain functions that build stream events and request helpers, with sensible defaults."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).parent / "fixtures"
INGEST_USER = "stream-forwarder"
INGEST_PASSWORD = "correct horse battery staple"


def basic_auth(username: str = INGEST_USER, password: str = INGEST_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def fixture_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return event


def classification(
    classification_id: int | str = 1,
    *,
    created_at: str = "2023-09-18T12:00:00.000Z",
    updated_at: str | None = None,
    project: int | str | None = 1,
    workflow: int | str | None = 10,
    user: int | str | None = 100,
    groups: list[Any] | None = None,
    started_at: str | None = "2023-09-18T11:59:50.000Z",
    finished_at: str | None = "2023-09-18T12:00:00.000Z",
    already_seen: object = "false",
) -> dict[str, Any]:
    """A Panoptes classification envelope shaped like the real fixture."""
    metadata: dict[str, Any] = {
        "source": "api",
        "subject_selection_state": {"already_seen": already_seen, "retired": False},
    }
    if started_at is not None:
        metadata["started_at"] = started_at
    if finished_at is not None:
        metadata["finished_at"] = finished_at
    if groups is not None:
        metadata["user_group_ids"] = groups
    return {
        "source": "panoptes",
        "type": "classification",
        "version": "1.0.0",
        "timestamp": created_at,
        "data": {
            "id": str(classification_id),
            "created_at": created_at,
            "updated_at": updated_at or created_at,
            "annotations": [{"task": "T0", "value": []}],
            "metadata": metadata,
            "links": {
                "project": None if project is None else str(project),
                "workflow": None if workflow is None else str(workflow),
                "user": None if user is None else str(user),
                "subjects": ["104961209"],
            },
        },
        "linked": {},
    }


def comment(
    comment_id: int = 1,
    *,
    created_at: str = "2023-09-18T12:00:00.000Z",
    project_id: int | None = 1,
    user_id: int | str | None = "100",
) -> dict[str, Any]:
    """A Talk comment envelope shaped like the real fixture."""
    return {
        "source": "talk",
        "type": "comment",
        "version": "1.0.0",
        "timestamp": created_at,
        "data": {
            "id": comment_id,
            "board_id": 230,
            "discussion_id": 353,
            "project_id": project_id,
            "section": f"project-{project_id}",
            "body": "a comment",
            "user_id": None if user_id is None else str(user_id),
            "created_at": created_at,
        },
        "linked": {},
    }


async def post_events(client: httpx.AsyncClient, events: list[Any]) -> dict[str, int]:
    """POST a batch to /kinesis, expecting success; returns the summary counts."""
    response = await client.post("/kinesis", json={"payload": events}, headers=basic_auth())
    assert response.status_code == 200, response.text
    summary: dict[str, int] = response.json()
    return summary
