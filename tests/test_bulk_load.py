"""eras ingest: Panoptes exports, ndjson, the original's tables; idempotency, compression,
rejected rows, and the migration from the original service."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from eras.cli.progress import LoadProgress
from eras.services.loading.loader import BLOCK_SIZE, LoadOptions, load, open_inputs
from eras.store.backend import driver_url
from eras.store.database import Database
from eras.store.migrate import current_revision, head_revision
from eras.store.schema import classification_events, comment_events
from tests import stored
from tests.bulk_helpers import ERAS, another_database, dump_original_tables, ingest, run_eras
from tests.conftest import client_for, make_settings
from tests.environment import child_environment
from tests.factories import FIXTURES, classification, comment, fixture_event, post_events
from tests.model import expected_classification_rollups, expected_comment_rollups

# Runs argv[1:] with SIGINT at its default, so the Python it starts turns Ctrl-C into
# KeyboardInterrupt whatever the test runner inherited.
_WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)

EXAMPLE = FIXTURES / "panoptes-export-example.csv"
CAT_PROJECT = FIXTURES / "panoptes-export-cat-project.csv"
EXPORTS = {EXAMPLE: 1001, CAT_PROJECT: 1002}  # export -> the project it is loaded for
CLASSIFICATION_ROLLUPS = [name for name in stored.ROLLUP_TABLES if not name.startswith("comm")]


def write_ndjson(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def raw_counts(database: Database) -> tuple[int, int]:
    with database.read() as connection:
        classifications = connection.execute(
            select(func.count()).select_from(classification_events)
        )
        comments = connection.execute(select(func.count()).select_from(comment_events))
        return classifications.scalar_one(), comments.scalar_one()


async def classifications(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/classifications", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- an independent reading of a Panoptes export -------------------------------------------


def _export_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def export_totals(path: Path) -> dict[str, Any]:
    """Counts per user, workflow and day, and session milliseconds per user, from the CSV."""
    csv.field_size_limit(2**31 - 1)
    per_user: Counter[int] = Counter()
    user_ms: Counter[int] = Counter()
    per_workflow: Counter[int] = Counter()
    per_day: Counter[str] = Counter()
    with path.open(newline="") as export:
        for row in csv.DictReader(export):
            metadata = json.loads(row["metadata"])
            seconds = (
                _export_time(metadata["finished_at"]) - _export_time(metadata["started_at"])
            ).total_seconds()
            milliseconds = round(min(max(seconds, 0.0), 10_800.0) * 1000)
            per_workflow[int(row["workflow_id"])] += 1
            per_day[row["created_at"][:10]] += 1
            if row["user_id"]:
                per_user[int(row["user_id"])] += 1
                user_ms[int(row["user_id"])] += milliseconds
    return {"user": per_user, "user_ms": user_ms, "workflow": per_workflow, "day": per_day}


class TestPanoptesExports:
    async def test_totals_per_user_workflow_and_day_match_the_exports(
        self, database_url, database, client
    ):
        for export, project_id in EXPORTS.items():
            result = ingest(database_url, "--project-id", str(project_id), export)
            assert result.returncode == 0, result.stderr

        expected = [export_totals(export) for export in EXPORTS]
        per_user: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for (user, _day), (count, milliseconds) in stored.rollup(
            database, "classification_user_daily"
        ).items():
            per_user[user][0] += count
            per_user[user][1] += milliseconds
        users = Counter[int]()
        users_ms = Counter[int]()
        for totals in expected:
            users.update(totals["user"])
            users_ms.update(totals["user_ms"])
        assert {user: tuple(values) for user, values in per_user.items()} == {
            user: (users[user], users_ms[user]) for user in users
        }

        workflows = sum((totals["workflow"] for totals in expected), Counter[int]())
        for workflow, count in workflows.items():
            body = await classifications(client, workflow_id=str(workflow))
            assert body == {"total_count": count}, workflow

        days = sum((totals["day"] for totals in expected), Counter[str]())
        body = await classifications(client, period="day")
        assert body["total_count"] == sum(days.values()) == 316
        assert {bucket["period"][:10]: bucket["count"] for bucket in body["data"]} == days

        for export, project_id in EXPORTS.items():
            body = await classifications(client, project_id=str(project_id))
            assert body == {"total_count": sum(export_totals(export)["day"].values())}

    async def test_loading_twice_changes_nothing(self, database_url, database):
        first = ingest(database_url, "--project-id", "1001", EXAMPLE)
        assert first.returncode == 0, first.stderr
        assert "inserted 163, duplicates 0" in first.stdout
        rollups, raw = stored.all_rollups(database), stored.classifications(database)

        second = ingest(database_url, "--project-id", "1001", EXAMPLE)
        assert second.returncode == 0, second.stderr
        assert "inserted 0, duplicates 163, updated 0" in second.stdout
        assert stored.all_rollups(database) == rollups
        assert stored.classifications(database) == raw

    def test_progress_shows_rows_and_their_rate(self, database_url):
        result = run_eras(database_url, "ingest", "--project-id", "1001", str(EXAMPLE))
        assert result.returncode == 0, result.stderr
        # Standard error is not a terminal here, so the bar is printed once, in its final state.
        assert EXAMPLE.name in result.stderr and "100%" in result.stderr
        assert "163 rows" in result.stderr and "rows/s" in result.stderr

    def test_project_id_is_required_before_reading_anything(self, database_url, database, tmp_path):
        # With --format given, the files are not even opened.
        missing = ingest(database_url, "--format", "panoptes-csv", tmp_path / "absent.csv")
        assert missing.returncode == 2
        assert "--project-id" in missing.stderr and "absent.csv" not in missing.stderr

        # Recognised from its header: refused before a row of any file is loaded.
        events = write_ndjson(tmp_path / "events.ndjson", [classification(1)])
        detected = ingest(database_url, events, EXAMPLE)
        assert detected.returncode == 2
        assert "--project-id" in detected.stderr and EXAMPLE.name in detected.stderr
        assert raw_counts(database) == (0, 0)


# The real exports as they come back from the tools people open them with: R 4.2.2
# (read.csv, then write.csv: quoted text, NA for a missing value) and pandas 3.1.1 (read_csv,
# then to_csv: an empty cell, or NaN with na_rep="NaN", and user ids written as floats, 1325316.0,
# because the column holds missing values), gzip-compressed.
REWRITTEN = {
    EXAMPLE: ["r", "pandas", "pandas-nan"],
    CAT_PROJECT: ["r", "pandas"],
}


class TestRewrittenExports:
    @pytest.mark.parametrize(
        ("export", "tool"),
        [(export, tool) for export, tools in REWRITTEN.items() for tool in tools],
        ids=lambda value: value.stem if isinstance(value, Path) else value,
    )
    async def test_load_as_the_original_does_anonymous_rows_included(
        self, database_url, database, client, export, tool
    ):
        rewritten = export.with_name(f"{export.stem}.{tool}.csv.gz")
        project = EXPORTS[export]
        result = ingest(database_url, "--project-id", str(project), rewritten)
        assert result.returncode == 0, result.stdout + result.stderr

        expected = export_totals(export)  # read from the original, by the test's own parser
        classified = sum(expected["day"].values())
        assert f"inserted {classified:,}, duplicates 0, updated 0, ignored 0, rejected 0" in (
            result.stdout
        )
        per_user: Counter[int] = Counter()
        per_user_ms: Counter[int] = Counter()
        for (user, _day), (count, milliseconds) in stored.rollup(
            database, "classification_user_daily"
        ).items():
            per_user[user] += count
            per_user_ms[user] += milliseconds
        assert per_user == expected["user"] and per_user_ms == expected["user_ms"]
        anonymous = classified - sum(expected["user"].values())
        assert anonymous > 0
        rows = stored.classifications(database)
        assert sum(1 for row in rows.values() if row.user_id is None) == anonymous
        assert await classifications(client, project_id=str(project)) == {"total_count": classified}
        for workflow, count in expected["workflow"].items():
            assert await classifications(client, workflow_id=str(workflow)) == {
                "total_count": count
            }


MISSING = ["", "NA", "NaN", "null", "None", "nan", "NULL"]


class TestMissingCells:
    """Every cell where a value may be missing reads the ways real files write "no value"."""

    @pytest.mark.parametrize("missing", MISSING)
    def test_in_the_original_tables(self, database_url, database, tmp_path, missing):
        events = tmp_path / "classification_events.csv"
        events.write_text(
            EVENTS_HEADER + f"1,2023-05-17 18:49:09.123,{missing},2023-05-17 18:49:00,"
            f"2023-05-17 18:49:09.123,1,2,{missing},{missing},{missing},2023-05-17 18:49:10,"
            "2023-05-17 18:49:10\n"
        )
        comments = tmp_path / "comment_events.csv"
        comments.write_text(
            "comment_id,event_time,comment_updated_at,project_id,user_id,created_at,updated_at\n"
            f"5,2023-05-17 18:49:09,{missing},{missing},{missing},2023-05-17 18:49:10,"
            "2023-05-17 18:49:10\n"
        )
        result = ingest(database_url, events, comments)
        assert result.returncode == 0, result.stdout + result.stderr
        [row] = stored.classifications(database).values()
        assert (row.user_id, row.user_group_ids, row.classification_updated_at) == (
            None,
            None,
            None,
        )
        assert row.session_time == pytest.approx(9.123)  # computed, as for an empty cell
        assert stored.rollup(database, "classification_user_daily") == {}
        assert stored.rollup(database, "comment_daily") == {(date(2023, 5, 17),): (1,)}
        assert stored.rollup(database, "comment_user_daily") == {}

    @pytest.mark.parametrize("missing", ["NA", "NaN", "None"])
    def test_where_a_value_is_required_it_is_a_rejection_naming_the_column(
        self, database_url, tmp_path, missing
    ):
        lines = EXAMPLE.read_text().splitlines(keepends=True)
        header, row = lines[0], lines[1]
        columns = header.strip().split(",")
        fields = next(csv.reader([row]))
        rows = []
        for column in ("classification_id", "created_at", "workflow_id"):
            broken = list(fields)
            broken[columns.index(column)] = missing
            buffer = io.StringIO()
            csv.writer(buffer).writerow(broken)
            rows.append(buffer.getvalue())
        export = tmp_path / "export.csv"
        export.write_text(header + "".join(rows))
        rejects = tmp_path / "rejects.ndjson"
        result = ingest(database_url, "--project-id", "1", "--rejects", rejects, export)
        assert result.returncode == 1
        reasons = [entry["reason"] for entry in read_rejects(rejects)]
        assert reasons == ["missing classification_id", "missing created_at", "missing workflow_id"]

    def test_a_metadata_cell_without_a_value_is_no_metadata(self, database_url, database, tmp_path):
        lines = EXAMPLE.read_text().splitlines(keepends=True)
        header, row = lines[0], lines[1]
        columns = header.strip().split(",")
        fields = next(csv.reader([row]))
        fields[columns.index("metadata")] = "NA"
        buffer = io.StringIO()
        csv.writer(buffer).writerow(fields)
        export = tmp_path / "export.csv"
        export.write_text(header + buffer.getvalue())
        result = ingest(database_url, "--project-id", "1", export)
        assert result.returncode == 0, result.stdout
        [stored_row] = stored.classifications(database).values()
        assert (stored_row.session_time, stored_row.started_at) == (0.0, None)


class TestNdjson:
    def events(self) -> list[dict[str, Any]]:
        """Groups, anonymous volunteers, repeats, an update and an event of another type."""
        return [
            fixture_event("kinesis-classification-event.json"),
            fixture_event("kinesis-comment-event.json"),
            classification(1, user=7, groups=[3, 3, 4]),
            classification(2, user=None, groups=[3]),
            classification(3, created_at="2023-09-19T23:59:59.999Z", project=2, workflow=20),
            classification(1, user=7, groups=[3, 3, 4]),  # a repeat
            classification(
                3,
                created_at="2023-09-19T23:59:59.999Z",
                updated_at="2023-09-20T00:00:00.000Z",
                project=5,
                workflow=50,
                user=8,
                groups=[9],
            ),
            comment(11, project_id=None),
            {"source": "panoptes", "type": "subject", "data": {}},
        ]

    async def test_both_shapes_load_like_post_kinesis(self, database_url, database, tmp_path):
        events = self.events()
        one_per_line = write_ndjson(tmp_path / "events.ndjson", events[:5])
        bodies = write_ndjson(
            tmp_path / "bodies.ndjson", [{"payload": events[5:7]}, {"payload": events[7:]}]
        )
        result = ingest(database_url, one_per_line, bodies)
        assert result.returncode == 0, result.stderr
        assert "total: inserted 6, duplicates 1, updated 1, ignored 1, rejected 0" in result.stdout

        expected = expected_classification_rollups(events)
        for name in CLASSIFICATION_ROLLUPS:
            assert stored.rollup(database, name) == expected.get(name, {}), name
        # Withdrawn when classification 3 moved to project 5: no empty row is left behind.
        assert not [
            key for key in stored.rollup(database, "classification_project_daily") if key[0] == 2
        ]
        comments = stored.rollup(database, "comment_daily")
        assert sum(count for (count,) in comments.values()) == 2
        assert run_eras(database_url, "verify", "--no-progress").returncode == 0

    async def test_post_kinesis_counts_bulk_loaded_events_as_repeats(
        self, database_url, database, client, tmp_path
    ):
        events = self.events()
        result = ingest(database_url, write_ndjson(tmp_path / "events.ndjson", events))
        assert result.returncode == 0, result.stderr
        rollups = stored.all_rollups(database)

        summary = await post_events(client, events)
        assert summary["inserted"] == 0 and summary["updated"] == 0
        assert stored.all_rollups(database) == rollups

    async def test_a_later_load_updates_what_an_earlier_one_stored(
        self, database_url, database, tmp_path
    ):
        before = [classification(n, user=n % 3 or None, groups=[1]) for n in range(1, 6)]
        after = [
            classification(n, updated_at="2023-10-01T00:00:00.000Z", project=2, user=9, groups=[2])
            for n in (2, 4)
        ]
        assert ingest(database_url, write_ndjson(tmp_path / "1.ndjson", before)).returncode == 0
        result = ingest(database_url, write_ndjson(tmp_path / "2.ndjson", after))
        assert "inserted 0, duplicates 0, updated 2" in result.stdout

        expected = expected_classification_rollups(before + after)
        for name in CLASSIFICATION_ROLLUPS:
            assert stored.rollup(database, name) == expected.get(name, {}), name
        assert run_eras(database_url, "verify", "--no-progress").returncode == 0


class TestCompressedInputs:
    async def test_gzip_loads_like_the_plain_file(self, database_url, client, tmp_path):
        packed = tmp_path / "export.csv.gz"
        with EXAMPLE.open("rb") as plain, gzip.open(packed, "wb") as out:
            shutil.copyfileobj(plain, out)
        result = ingest(database_url, "--project-id", "1001", packed)
        assert result.returncode == 0, result.stderr
        assert "(panoptes-csv): inserted 163" in result.stdout
        assert await classifications(client, project_id="1001") == {"total_count": 163}

    async def test_zip_loads_every_member(self, database_url, client, tmp_path):
        archive = tmp_path / "history.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
            out.write(EXAMPLE, "exports/example.csv")
            out.writestr("stream.ndjson", orjson.dumps(classification(1, project=7)) + b"\n")
        result = ingest(database_url, "--project-id", "1001", archive)
        assert result.returncode == 0, result.stderr
        assert f"{archive}:exports/example.csv (panoptes-csv): inserted 163" in result.stdout
        assert f"{archive}:stream.ndjson (ndjson): inserted 1" in result.stdout
        assert await classifications(client) == {"total_count": 164}


class TestRejectedRows:
    async def test_bad_rows_are_set_aside_and_the_rest_loaded(self, database_url, client, tmp_path):
        lines = EXAMPLE.read_text().splitlines(keepends=True)
        header, rows = lines[0], lines[1:]
        bad_id = rows[4].replace(rows[4].split(",", 1)[0], "abc", 1)
        # A quoted field spanning two lines: line numbers count lines, not records.
        multi_line = rows[5].replace("Phenology and Demography", "Phenology\nand Demography", 1)
        bad_time = rows[6].replace(" UTC,", " UTC?,", 1).replace("2016-", "20XX-", 1)
        export = tmp_path / "export.csv"
        export.write_text(
            header + "".join(rows[:4]) + bad_id + multi_line + bad_time + "".join(rows[7:])
        )
        rejects = tmp_path / "rejects.ndjson"

        result = ingest(database_url, "--project-id", "1001", "--rejects", rejects, export)
        assert result.returncode == 1, result.stderr
        assert "inserted 161" in result.stdout and "rejected 2" in result.stdout
        assert f"rejected rows written to {rejects}" in result.stdout
        first, second = (json.loads(line) for line in rejects.read_text().splitlines())
        assert (first["line"], first["reason"]) == (
            6,
            "classification_id is not a numeric id: 'abc'",
        )
        assert first["file"] == str(export) and first["row"]["classification_id"] == "abc"
        assert second["line"] == 9 and second["reason"].startswith("created_at is not an ISO 8601")
        assert await classifications(client, project_id="1001") == {"total_count": 161}

    def test_ndjson_rejects_name_the_line_and_the_event(self, database_url, database, tmp_path):
        bad = classification(2)
        bad["data"]["id"] = "two"
        path = tmp_path / "events.ndjson"
        path.write_bytes(
            orjson.dumps(classification(1)) + b"\n{not json\n\n"
            + orjson.dumps({"payload": [classification(3), bad]}) + b"\n"
        )  # fmt: skip
        result = ingest(database_url, "--rejects", tmp_path / "rejects.ndjson", path)
        assert result.returncode == 1
        assert "inserted 2" in result.stdout and "rejected 2" in result.stdout
        rejected = [
            json.loads(line) for line in (tmp_path / "rejects.ndjson").read_text().splitlines()
        ]
        assert rejected[0]["line"] == 2 and rejected[0]["reason"].startswith("not valid JSON")
        assert rejected[0]["row"] == "{not json"
        assert (rejected[1]["line"], rejected[1]["event"]) == (4, 2)
        assert rejected[1]["reason"] == "data.id is not a numeric id: 'two'"
        assert raw_counts(database) == (2, 0)

    def test_a_file_of_no_known_format_is_fatal(self, database_url, tmp_path):
        path = tmp_path / "notes.txt"
        path.write_text("dear diary\n")
        result = ingest(database_url, path)
        assert result.returncode == 2
        assert "notes.txt: not ndjson, a Panoptes export or a table" in result.stderr
        missing = ingest(database_url, tmp_path / "nowhere.ndjson")
        assert missing.returncode == 2 and "cannot read" in missing.stderr
        mismatch = ingest(database_url, "--format", "ndjson", EXAMPLE)
        assert mismatch.returncode == 2
        assert f"{EXAMPLE} holds panoptes-csv, not ndjson" in mismatch.stderr


class TestSchema:
    def test_an_empty_database_is_migrated_first(self, empty_database_url, tmp_path):
        path = tmp_path / "events.ndjson"
        path.write_bytes(orjson.dumps(classification(1, user=7)) + b"\n")
        refused = run_eras(
            empty_database_url,
            "ingest",
            "--no-progress",
            str(path),
            environment={"ERAS_AUTO_MIGRATE": "false"},
        )
        assert refused.returncode == 2
        assert "run `eras migrate`" in refused.stderr

        loaded = ingest(empty_database_url, path)
        assert loaded.returncode == 0, loaded.stderr
        database = Database(empty_database_url)
        try:
            assert current_revision(database) == head_revision()
            assert raw_counts(database) == (1, 0)
        finally:
            database.dispose()


QUERIES = (
    {},
    {"period": "day"},
    {"project_id": "1", "period": "week"},
    {"project_id": "1,2", "start_date": "2023-09-19"},
    {"workflow_id": "10", "period": "month"},
    {"workflow_id": "10,20", "period": "year", "end_date": "2023-09-18"},
)
COMMENT_QUERIES = ({}, {"project_id": "1"}, {"user_id": "100", "period": "day"})


class TestMigrationFromTheOriginal:
    def events(self) -> list[dict[str, Any]]:
        events = [fixture_event("kinesis-classification-event.json")]
        for n in range(1, 40):
            events.append(
                classification(
                    n,
                    created_at=f"2023-09-{18 + n % 5}T{n % 24:02d}:00:00.{n:03d}Z",
                    project=1 + n % 2,
                    workflow=10 * (1 + n % 3),
                    user=None if n % 7 == 0 else 100 + n % 4,
                    groups=[[], [1], [1, 2], None][n % 4],
                    finished_at=f"2023-09-18T12:{n % 60:02d}:00.{n * 7 % 1000:03d}Z",
                )
            )
        # Classification 5 re-published later, moved to another project, user and group.
        events.append(
            classification(
                5,
                created_at="2023-09-18T05:00:00.005Z",
                updated_at="2023-09-30T00:00:00.000Z",
                project=2,
                workflow=20,
                user=103,
                groups=[2],
            )
        )
        events += [
            comment(n, project_id=[None, 1, 2][n % 3], user_id=100 + n % 2) for n in range(1, 12)
        ]
        return events

    async def test_a_dump_loads_into_an_empty_database_with_the_same_answers(
        self, database_url, database, client, tmp_path
    ):
        await post_events(client, self.events())
        dump = dump_original_tables(database, tmp_path)

        with another_database(database_url, tmp_path) as target_url:
            result = ingest(target_url, "--format", "eras-csv", *dump)
            assert result.returncode == 0, result.stderr
            assert "(eras-csv classification_events): inserted 40" in result.stdout
            assert "(eras-csv comment_events): inserted 11" in result.stdout
            verified = run_eras(target_url, "verify", "--no-progress")
            assert verified.returncode == 0, verified.stdout
            assert "all 38 rollups match" in verified.stdout

            target = Database(target_url)
            try:
                assert stored.all_rollups(target) == stored.all_rollups(database)
            finally:
                target.dispose()
            async with client_for(make_settings(target_url)) as migrated:
                for params in QUERIES:
                    assert await classifications(migrated, **params) == await classifications(
                        client, **params
                    ), params
                for params in COMMENT_QUERIES:
                    original = await client.get("/comments", params=params)
                    assert (
                        await migrated.get("/comments", params=params)
                    ).json() == original.json()

            again = ingest(target_url, *dump)
            assert again.returncode == 0 and "total: inserted 0" in again.stdout

    async def test_group_rows_are_the_membership(self, database_url, database, client, tmp_path):
        # The original kept group rows that user_group_ids does not list; they still count.
        await post_events(client, [classification(1, user=100, groups=[1])])
        events_csv, comments_csv, groups_csv = dump_original_tables(database, tmp_path)
        with groups_csv.open() as dumped:
            header, row = dumped.read().splitlines()
        extra = row.replace(",1,", ",99,", 1)
        groups_csv.write_text(f"{header}\n{row}\n{extra}\n{row}\n")

        with another_database(database_url, tmp_path) as target_url:
            result = ingest(target_url, groups_csv, events_csv, comments_csv)
            assert result.returncode == 0, result.stderr
            assert (
                "(eras-csv classification_user_groups): inserted 2, duplicates 1" in result.stdout
            )
            target = Database(target_url)
            try:
                groups = {key[0] for key in stored.rollup(target, "group_daily")}
                assert groups == {1, 99}
                assert stored.group_rows(target) == {(1, 1), (1, 99)}
            finally:
                target.dispose()
            assert run_eras(target_url, "verify", "--no-progress").returncode == 0


@pytest.mark.parametrize("session_time", ["", "42.0005"])
def test_a_dumped_session_time_is_kept_as_it_is(database_url, database, tmp_path, session_time):
    dump = tmp_path / "classification_events.csv"
    dump.write_text(
        "classification_id,event_time,classification_updated_at,started_at,finished_at,"
        "project_id,workflow_id,user_id,user_group_ids,session_time,created_at,updated_at\n"
        "1,2023-05-17 18:49:09.123,2023-05-17 18:49:09.123,2023-05-17 18:49:00,"
        f'2023-05-17 18:49:09.123,1,2,3,"{{4,5}}",{session_time},2023-05-17 18:49:10,'
        "2023-05-17 18:49:10\n"
    )
    result = ingest(database_url, dump)
    assert result.returncode == 0, result.stderr
    [row] = stored.classifications(database).values()
    assert row.session_time == (float(session_time) if session_time else 9.123)
    assert row.user_group_ids == [4, 5]
    [(count, milliseconds)] = stored.rollup(database, "classification_user_daily").values()
    assert (count, milliseconds) == (1, round(row.session_time * 1000))
    # Group membership comes from the classification_user_groups table only.
    assert stored.rollup(database, "group_daily") == {}


GROUPS_HEADER = (
    "classification_id,event_time,user_group_id,session_time,project_id,user_id,workflow_id,"
    "created_at,updated_at\n"
)
EVENTS_HEADER = (
    "classification_id,event_time,classification_updated_at,started_at,finished_at,"
    "project_id,workflow_id,user_id,user_group_ids,session_time,created_at,updated_at\n"
)


class TestStreamAfterMigration:
    """The stream keeps rollups equal to a rebuild even over rows migrated from the original."""

    async def test_republished_classification_replaces_migrated_group_rows(
        self, database_url, database, client, tmp_path
    ):
        # The original's group row disagrees with its classification: other project, workflow
        # and session time. Its group rollups follow the group row.
        groups_csv = tmp_path / "classification_user_groups.csv"
        groups_csv.write_text(
            GROUPS_HEADER + "1,2023-05-17 18:49:09.123,7,5.0,999,3,888,"
            "2023-05-17 18:49:10,2023-05-17 18:49:10\n"
        )
        events_csv = tmp_path / "classification_events.csv"
        events_csv.write_text(
            EVENTS_HEADER + "1,2023-05-17 18:49:09.123,2023-05-17 18:49:09.123,,,1,2,3,,9.0,"
            "2023-05-17 18:49:10,2023-05-17 18:49:10\n"
        )
        assert ingest(database_url, groups_csv, events_csv).returncode == 0
        day = date(2023, 5, 17)
        assert stored.rollup(database, "group_project_daily") == {(7, 999, day): (1, 5000)}

        republished = classification(
            1,
            created_at="2023-05-17T18:49:09.123Z",
            updated_at="2023-05-18T00:00:00.000Z",
            user=3,
            project=1,
            workflow=2,
            groups=[7, 8],
        )
        assert (await post_events(client, [republished]))["updated"] == 1
        assert stored.rollup(database, "group_project_daily") == {
            (7, 1, day): (1, 10_000),
            (8, 1, day): (1, 10_000),
        }
        verify = run_eras(database_url, "verify", "--no-progress")
        assert verify.returncode == 0, verify.stdout

    async def test_group_rows_loaded_before_their_classification_count_once(
        self, database_url, database, client, tmp_path
    ):
        groups_csv = tmp_path / "classification_user_groups.csv"
        groups_csv.write_text(
            GROUPS_HEADER + "1,2023-09-18 12:00:00,7,10.0,1,100,10,"
            "2023-09-18 12:00:01,2023-09-18 12:00:01\n"
        )
        assert ingest(database_url, groups_csv).returncode == 0
        # The stream then delivers the classification itself, with one more group.
        await post_events(client, [classification(1, groups=[7, 8])])
        day = date(2023, 9, 18)
        assert stored.rollup(database, "group_daily") == {
            (7, day): (1, 10_000),
            (8, day): (1, 10_000),
        }
        verify = run_eras(database_url, "verify", "--no-progress")
        assert verify.returncode == 0, verify.stdout


# --- ndjson parsed in several processes ------------------------------------------------------


NOT_JSON = b"{not json"
BAD_ID_REASON = "data.id is not a numeric id: 'bad'"


NOT_JSON_REASON = "not valid JSON"  # then the decoder's own words, which vary by version


def without_decoder_words(rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rejects with the reason of a line that is not JSON cut to ``NOT_JSON_REASON``."""
    return [
        {**entry, "reason": NOT_JSON_REASON}
        if entry["reason"].startswith(f"{NOT_JSON_REASON}: ")
        else entry
        for entry in rejects
    ]


@dataclass
class Mixed:
    """What :func:`mixed_ndjson` wrote, line by line: the oracle of a load of it."""

    path: Path
    events: list[dict[str, Any]] = field(default_factory=list)  # to store, in file order
    ignored: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)  # as the rejects file has them


def mixed_ndjson(path: Path, lines: int) -> Mixed:
    """ndjson with every kind of line and line end, repeats and updates far apart: several
    parser blocks, and many batches at a small --batch-size. Line ``n + 1`` of the file holds
    item ``n``, whatever its line end."""
    mixed = Mixed(path)
    bad = classification(1)
    bad["data"]["id"] = "bad"
    out = []
    for n in range(lines):
        number = n + 1
        if n % 101 == 0:
            line = NOT_JSON
            mixed.rejects.append(
                {"line": number, "reason": NOT_JSON_REASON, "row": NOT_JSON.decode()}
            )
        elif n % 103 == 0:
            line = b"   "  # a blank line: no item at all
        elif n % 107 == 0:
            payload = [classification(5_000 + n), bad, comment(n)]
            line = orjson.dumps({"payload": payload})
            mixed.events += [payload[0], payload[2]]
            mixed.rejects.append({"line": number, "event": 2, "reason": BAD_ID_REASON, "row": bad})
        elif n % 109 == 0:
            line = orjson.dumps({"source": "panoptes", "type": "subject", "data": {}})
            mixed.ignored += 1
        elif n % 97 == 0:
            event = comment(n % 400, project_id=n % 3 or None)
            line = orjson.dumps(event)
            mixed.events.append(event)
        else:
            # Each id comes back every 1,500 lines with a later updated_at (or none: its
            # created_at, earlier than any of the others).
            round_ = n // 1_500
            event = classification(
                n % 1_500 + 1,
                updated_at=None if round_ == 2 else f"2023-10-01T00:00:{round_:02d}.000Z",
                project=1 + (n + round_) % 4,
                workflow=10 + n % 5,
                user=n % 7 or None,
                groups=[1 + n % 3] if n % 2 else None,
            )
            line = orjson.dumps(event)
            mixed.events.append(event)
        end = b"\r\n" if n % 13 == 0 else b"\r" if n % 211 == 0 else b"\n"
        out.append(line + end)
    path.write_bytes(b"".join(out))
    for entry in mixed.rejects:
        entry["file"] = str(path)  # as given on the command line
    return mixed


def expected_counts(events: list[dict[str, Any]], *, ignored: int, rejected: int) -> dict[str, int]:
    """The summary of loading ``events`` in order into an empty database: a classification
    is new, updated (a later updated_at than the stored one) or a duplicate; a comment is new
    or a duplicate (the first copy stays)."""
    stored_at: dict[tuple[str, str], str] = {}
    comments: set[tuple[int, str]] = set()
    counts = Counter[str]()
    for event in events:
        data = event["data"]
        if event["type"] == "comment":
            key = (data["id"], data["created_at"])
            counts["duplicates" if key in comments else "inserted"] += 1
            comments.add(key)
            continue
        key = (data["id"], data["created_at"])
        if key not in stored_at:
            counts["inserted"] += 1
        elif data["updated_at"] > stored_at[key]:
            counts["updated"] += 1
        else:
            counts["duplicates"] += 1
            continue
        stored_at[key] = data["updated_at"]
    counts["ignored"], counts["rejected"] = ignored, rejected
    order = ["inserted", "duplicates", "updated", "ignored", "rejected"]
    return {name: counts[name] for name in order}


def read_rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestParallelParsing:
    def test_parser_processes_load_what_the_file_holds(self, database_url, database, tmp_path):
        mixed = mixed_ndjson(tmp_path / "mixed.ndjson", 7_000)
        path = mixed.path
        assert path.stat().st_size > 3 * BLOCK_SIZE  # several blocks for the parsers
        # Batches of 250 records: a classification comes back 1,500 lines later, always in a
        # later batch, so each copy counts as the next event of a stream would.
        result = ingest(
            database_url, "--batch-size", "250", "--rejects", tmp_path / "parallel.ndjson", path
        )
        assert result.returncode == 1, result.stderr

        # What the test wrote on each line says what is rejected, where and why...
        rejected = read_rejects(tmp_path / "parallel.ndjson")
        assert without_decoder_words(rejected) == mixed.rejects
        # ... and what is counted and stored.
        counts = expected_counts(mixed.events, ignored=mixed.ignored, rejected=len(mixed.rejects))
        assert all(counts.values()), counts  # every outcome occurs
        summary = _summary(counts)
        assert f"total: {summary}" in result.stdout
        classifications = [event for event in mixed.events if event["type"] == "classification"]
        comments = [event for event in mixed.events if event["type"] == "comment"]
        assert raw_counts(database) == (
            len({(e["data"]["id"], e["data"]["created_at"]) for e in classifications}),
            len({(e["data"]["id"], e["data"]["created_at"]) for e in comments}),
        )
        expected = {
            **expected_classification_rollups(classifications),
            **expected_comment_rollups(comments),
        }
        for name in stored.ROLLUP_TABLES:
            assert stored.rollup(database, name) == expected.get(name, {}), name
        assert run_eras(database_url, "verify", "--no-progress").returncode == 0

        # One process cutting the text into many small blocks stores the same.
        with another_database(database_url, tmp_path) as other_url:
            other = Database(other_url)
            try:
                options = LoadOptions(
                    batch_size=250,
                    rejects_path=tmp_path / "serial.ndjson",
                    jobs=1,
                    block_size=4_096,
                )
                with LoadProgress(enabled=False) as progress:
                    report = load(other, open_inputs([path], options), options, progress)
                assert _summary(report.total.as_dict()) == summary
                assert (
                    without_decoder_words(read_rejects(tmp_path / "serial.ndjson")) == mixed.rejects
                )
                assert stored.all_rollups(other) == stored.all_rollups(database)
            finally:
                other.dispose()

        again = ingest(database_url, "--rejects", tmp_path / "again.ndjson", path)
        assert "inserted 0" in again.stdout and "updated 0" in again.stdout

    @pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
    def test_ctrl_c_stops_the_parser_processes(self, database_url, database, tmp_path):
        path = mixed_ndjson(tmp_path / "mixed.ndjson", 60_000).path
        rejects = tmp_path / "r.ndjson"
        # The load cannot finish before the interrupt: nothing can be stored until the test
        # lets go of the database, after sending it.
        with writes_blocked(database_url):
            process = subprocess.Popen(
                # As from a terminal: a shell without job control starts background commands
                # with SIGINT ignored, and the load would inherit that from the test runner.
                [
                    sys.executable,
                    "-c",
                    _WITH_DEFAULT_SIGINT,
                    str(ERAS),
                    "ingest",
                    "--no-progress",
                    "--rejects",
                    str(rejects),
                    str(path),
                ],
                # Not migrating: the schema is current, and a migration would wait for the lock.
                env=child_environment(ERAS_DATABASE_URL=database_url, ERAS_AUTO_MIGRATE="false"),
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
                parsers: list[int] = []
                deadline = time.monotonic() + 60
                # A known point of the load: the parsers run, and blocks they parsed came back
                # (their rejects are in the rejects file).
                while process.poll() is None and time.monotonic() < deadline:
                    parsers = parsers or [int(pid) for pid in children.read_text().split()]
                    if parsers and rejects.exists() and rejects.stat().st_size:
                        break
                    time.sleep(0.01)
                assert parsers, "no parser process started"
                assert rejects.exists() and rejects.stat().st_size, "no parsed block came back"
                assert process.poll() is None, "the load ended with the database locked"
                assert raw_counts(database) == (0, 0)  # nothing is stored yet
                process.send_signal(signal.SIGINT)
            except BaseException:
                process.kill()
                process.wait()
                raise
        _, stderr = process.communicate(timeout=60)
        assert process.returncode != 0, stderr.decode()
        # Only the loading process reports the interrupt; its parsers are gone with it.
        assert stderr.count(b"KeyboardInterrupt") == 1, stderr.decode()
        for pid in parsers:
            assert not Path(f"/proc/{pid}").exists()
        # Whatever was stored before the interrupt is stored whole.
        assert run_eras(database_url, "verify", "--no-progress").returncode == 0


@contextmanager
def writes_blocked(database_url: str) -> Iterator[None]:
    """While open, nothing can be stored: the test holds SQLite's write lock, or a lock on
    PostgreSQL's classification_events that every insert into it waits for."""
    if database_url.startswith("sqlite"):
        lock = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            yield
        finally:
            lock.close()
        return
    engine = create_engine(driver_url(database_url))
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(text("LOCK TABLE classification_events IN EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {value:,}" for name, value in counts.items())
