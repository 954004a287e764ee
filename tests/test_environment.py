"""The suite runs the same whatever the environment it was started in: the service's settings
left in a shell (``ERAS_*``, ``PROMETHEUS_MULTIPROC_DIR``) never reach a test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eras.config import Settings
from tests.conftest import POSTGRES_SERVER_URL, client_for, make_settings
from tests.environment import child_environment, is_setting
from tests.factories import basic_auth, classification

ROOT = Path(__file__).resolve().parent.parent
# Each would change what a test sees: every POST /kinesis refused as too large, every app
# failing to start on a key that is not one, /metrics behind a token, and metrics written to a
# directory that does not exist.
STRAY = {
    "ERAS_MAX_BODY_BYTES": "10",
    "ERAS_PANOPTES_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----",
    "ERAS_METRICS_TOKEN": "stray-token",
    "PROMETHEUS_MULTIPROC_DIR": "/nonexistent",
}


def test_which_variables_are_settings() -> None:
    assert is_setting("ERAS_MAX_BODY_BYTES") and is_setting("PROMETHEUS_MULTIPROC_DIR")
    assert not is_setting("ERAS_TEST_POSTGRES_URL") and not is_setting("ERASMUS")
    assert child_environment(ERAS_DATABASE_URL="x") == {
        "PATH": "/usr/bin:/bin",
        "ERAS_DATABASE_URL": "x",
    }


async def test_the_app_sees_only_what_the_test_configures(database_url: str) -> None:
    assert [name for name in os.environ if is_setting(name)] == []
    settings = make_settings(database_url)
    defaults = Settings.model_fields
    assert settings.max_body_bytes == defaults["max_body_bytes"].default
    assert settings.panoptes_public_key is None
    assert settings.metrics_token is None
    async with client_for(settings) as http:
        posted = await http.post(
            "/kinesis", json={"payload": [classification(1)]}, headers=basic_auth()
        )
        assert posted.status_code == 200, posted.text
        assert posted.json()["inserted"] == 1
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert "eras_http_request_duration_seconds" in metrics.text


def test_stray_settings_in_the_starting_environment_change_nothing() -> None:
    """The suite started with every stray setting set: the tests above, and a module that
    builds an app when it is imported, pass as they do without them."""
    environment = child_environment(**STRAY, ERAS_TEST_POSTGRES_URL=POSTGRES_SERVER_URL)
    selected = [
        "tests/test_environment.py::test_the_app_sees_only_what_the_test_configures",
        "tests/test_fuzz.py::test_openapi_declares_the_status_of_a_database_outage",
    ]
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selected],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output
    assert "4 passed" in finished.stdout, output  # each of the two on both databases
