"""eras rebuild-rollups and eras verify: recompute the rollups from the raw tables, compare."""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import Float, delete, insert, literal, select, update

from eras.store.rollups import ROLLUP_NAMES, rebuild_rollups
from eras.store.schema import ROLLUP_TABLES
from tests import stored
from tests.bulk_helpers import run_eras
from tests.factories import classification, comment, post_events

DAY = date(2023, 9, 18)


def events() -> list[dict[str, object]]:
    """Groups, anonymous volunteers, an update that empties rows, and comments."""
    return [
        classification(1, user=100, groups=[1, 2]),
        classification(2, user=100, project=2, workflow=20),
        classification(3, user=None, groups=[1]),
        classification(4, user=101, groups=[2], created_at="2023-09-19T08:00:00.000Z"),
        classification(
            4,
            user=102,
            groups=[3],
            project=3,
            created_at="2023-09-19T08:00:00.000Z",
            updated_at="2023-09-20T00:00:00.000Z",
        ),
        comment(1),
        comment(2, project_id=None, user_id=101),
    ]


def corrupt(database) -> None:
    """One changed count, one changed session time, one missing row and one extra row."""
    user_project = ROLLUP_TABLES["classification_user_project_daily"]
    with database.write() as connection:
        connection.execute(
            update(user_project)
            .where(user_project.c.user_id == 100, user_project.c.project_id == 1)
            .values(count=user_project.c.count + 5)
        )
        group_daily = ROLLUP_TABLES["group_daily"]
        connection.execute(
            update(group_daily).where(group_daily.c.user_group_id == 1).values(session_ms=7)
        )
        comment_user = ROLLUP_TABLES["comment_user_daily"]
        connection.execute(delete(comment_user).where(comment_user.c.user_id == 101))
        connection.execute(
            insert(ROLLUP_TABLES["classification_workflow_daily"]).values(
                workflow_id=999, day=DAY, count=1, session_ms=0
            )
        )


class TestVerify:
    async def test_rollups_kept_by_ingest_pass(self, client, database_url):
        await post_events(client, events())
        result = run_eras(database_url, "verify", "--no-progress")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout == "all 38 rollups match the raw tables\n"

    async def test_every_difference_is_named(self, client, database_url, database):
        await post_events(client, events())
        corrupt(database)
        result = run_eras(database_url, "verify", "--no-progress")
        assert result.returncode == 1
        assert result.stdout.splitlines() == [
            "classification_user_project_daily user_id=100 project_id=1 day=2023-09-18: "
            "stored count=6 session_ms=10000 first_at=2023-09-18T12:00:00 "
            "last_at=2023-09-18T12:00:00, expected count=1 session_ms=10000 "
            "first_at=2023-09-18T12:00:00 last_at=2023-09-18T12:00:00",
            "classification_workflow_daily workflow_id=999 day=2023-09-18: "
            "stored count=1 session_ms=0, expected no row",
            "comment_user_daily user_id=101 day=2023-09-18: stored no row, expected count=1",
            "group_daily user_group_id=1 day=2023-09-18: "
            "stored count=1 session_ms=7, expected count=1 session_ms=10000",
            "4 rollup rows differ from the raw tables, in 4 rollups",
        ]

    async def test_the_limit_caps_the_listing_not_the_count(self, client, database_url, database):
        await post_events(client, events())
        corrupt(database)
        result = run_eras(database_url, "verify", "--no-progress", "--limit", "1")
        assert result.returncode == 1
        lines = result.stdout.splitlines()
        assert lines[0].startswith("classification_user_project_daily user_id=100")
        assert lines[1:] == [
            "... 3 more not shown",
            "4 rollup rows differ from the raw tables, in 4 rollups",
        ]


class TestRebuild:
    async def test_rebuild_repairs_the_rollups_and_verify_then_passes(
        self, client, database_url, database
    ):
        await post_events(client, events())
        kept_by_ingest = stored.all_rollups(database)
        corrupt(database)

        rebuilt = run_eras(database_url, "rebuild-rollups")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "rebuilt 38 rollups from the raw tables" in rebuilt.stdout
        assert "rebuilding" in rebuilt.stderr  # the progress bar's final state
        assert stored.all_rollups(database) == kept_by_ingest

        verified = run_eras(database_url, "verify", "--no-progress")
        assert verified.returncode == 0, verified.stdout

    async def test_rebuilding_an_empty_database_leaves_it_empty(self, database_url, database):
        result = run_eras(database_url, "rebuild-rollups", "--no-progress")
        assert result.returncode == 0, result.stderr
        assert all(not rows for rows in stored.all_rollups(database).values())

    async def test_queries_answer_the_old_totals_until_the_rebuild_commits(self, client, database):
        await post_events(client, events())
        before = await client.get("/classifications", params={"period": "day"})
        answers = []

        def query(_name: str, _rows: int) -> None:
            # Each rollup has been deleted and refilled in the open transaction by now.
            answers.append(stored.rollup(database, "classification_daily"))

        with database.write() as connection:
            connection.execute(delete(ROLLUP_TABLES["classification_daily"]))
            rebuild_rollups(connection, database.backend, on_rollup=query)
        assert len(answers) == len(ROLLUP_NAMES)
        assert all(answer == answers[0] for answer in answers)
        assert answers[0] == {(DAY,): (3, 30000), (date(2023, 9, 19),): (1, 10000)}
        assert (await client.get("/classifications", params={"period": "day"})).json() == (
            before.json()
        )


def test_session_milliseconds_round_as_python_does(database):
    """SQL rounding of session time matches ``round(seconds * 1000)`` at ingest, ties too."""
    rng = random.Random(7)
    values = [0.0, 0.0005, 0.0015, 0.0025, 1.0005, 2.5e-3, 10.2345, 10_800.0, 16.224]
    values += [round(rng.uniform(0, 10_800), rng.randint(0, 4)) for _ in range(300)]
    values += [rng.randint(0, 10_800_000) / 1000 + 0.0005 for _ in range(300)]
    with database.read() as connection:
        computed = [
            connection.execute(
                select(database.backend.session_ms_of(literal(value, Float)))
            ).scalar_one()
            for value in values
        ]
    assert computed == [round(value * 1000) for value in values]
