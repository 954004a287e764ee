"""How long each dashboard page takes to show its numbers, on the ``eras demo`` sample.

    .venv/bin/python -m bench.dashboard             # on a fresh demo database, in a temporary one
    .venv/bin/python -m bench.dashboard --runs 10
    .venv/bin/python -m bench.dashboard --events 2000000   # a benchmark-sized set, six years to now

Starts ``eras serve`` on a SQLite file filled by ``eras demo`` (or, with ``--events``, by
``eras ingest`` of that many generated events of the six years up to now), with a stand-in
Panoptes (the test suite's fake, trusting a key made here) so the token pages can be shown
too, and opens each page in Chromium (``/usr/bin/chromium``) through Playwright. A page's
figure is the time from the start of navigation until the page has drawn its numbers
(``data-ready-ms``, set by the page itself), the median of ``--runs`` loads with a warm
cache. Then the dashboard's own data routes are timed over HTTP, as the server's answer time
seen by a client on the same host.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import httpx
from playwright.sync_api import sync_playwright

from eras.services.demo import DEMO_EVENTS
from eras.services.sample import Generator, group_id, project_id, user_id
from tests import tokens
from tests.environment import child_environment
from tests.fake_panoptes import FakePanoptes
from tests.test_serve import free_port

ERAS: Final = Path(sys.executable).with_name("eras")
CHROMIUM: Final = "/usr/bin/chromium"
ADMIN: Final = 1
LARGE_SPAN: Final = timedelta(days=6 * 365)


@dataclass(frozen=True)
class DemoServer:
    url: str
    volunteer_token: str
    admin_token: str
    group_id: int
    project_id: int

    def pages(self) -> dict[str, tuple[str, str | None]]:
        """Each page's address and the token it is shown with."""
        return {
            "overview": ("/dashboard/", None),
            "project": (f"/dashboard/project?project_id={self.project_id}", None),
            "group": (f"/dashboard/group?group_id={self.group_id}", None),
            "volunteer": ("/dashboard/volunteer", self.volunteer_token),
            "operator": ("/dashboard/operator", self.admin_token),
        }


@contextmanager
def demo_server(directory: Path, events: int = DEMO_EVENTS) -> Iterator[DemoServer]:
    """``eras serve`` on a demo database, with a stand-in Panoptes."""
    fake = FakePanoptes().start()
    busiest_group = group_id(1)
    fake.state.add_group(busiest_group, "public_show_all")
    volunteer = user_id(1)  # the busiest volunteer of the sample
    volunteer_token = tokens.token(volunteer)
    admin_token = tokens.token(ADMIN, admin=True)
    environment = child_environment(
        ERAS_DATABASE_URL=f"sqlite:///{directory / 'eras.db'}",
        ERAS_ENV="development",
        ERAS_PANOPTES_URL=fake.url,
        ERAS_PANOPTES_PUBLIC_KEY=tokens.key_pair().public_pem,
        ERAS_PANOPTES_CLIENT_ID=fake.state.client_id,
        ERAS_PANOPTES_CLIENT_SECRET=fake.state.client_secret,
    )
    if events == DEMO_EVENTS:
        subprocess.run([str(ERAS), "demo"], env=environment, check=True)
    else:
        # The same generator, written to a file and loaded the way history is loaded.
        now = datetime.now(UTC).replace(tzinfo=None)
        path = directory / "events.ndjson"
        with path.open("wb") as output:
            for line in Generator(events, 1, start=now - LARGE_SPAN, span=LARGE_SPAN).lines():
                output.write(line + b"\n")
        subprocess.run(
            [str(ERAS), "ingest", "--no-progress", str(path)], env=environment, check=True
        )
        path.unlink()
    port = free_port()
    process = subprocess.Popen(
        [str(ERAS), "serve", "--port", str(port), "--log-level", "warning"], env=environment
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        yield DemoServer(url, volunteer_token, admin_token, busiest_group, project_id(1))
    finally:
        process.terminate()
        process.wait(timeout=15)
        fake.stop()


def page_timings(server: DemoServer, runs: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        for name, (path, token) in server.pages().items():
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            if token:
                context.add_init_script(f"sessionStorage.setItem('eras.token', {token!r})")
            page = context.new_page()
            found = []
            for _ in range(runs + 1):  # the first load fills the cache and is not counted
                page.goto(server.url + path)
                page.wait_for_selector("body[data-state=ready]", timeout=60_000)
                found.append(float(page.evaluate("document.body.dataset.readyMs")))
            timings[name] = found[1:]
            context.close()
        browser.close()
    return timings


def route_timings(server: DemoServer, runs: int) -> dict[str, list[float]]:
    routes = {
        "busiest_projects": "/dashboard/data/busiest_projects?days=7&limit=10",
        "project_workflows": f"/dashboard/data/project_workflows?project_id={server.project_id}",
        "operator": "/dashboard/data/operator",
    }
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    timings: dict[str, list[float]] = {}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        for name, path in routes.items():
            http.get(path).raise_for_status()
            found = []
            for _ in range(max(runs, 20)):
                began = time.perf_counter()
                http.get(path).raise_for_status()
                found.append((time.perf_counter() - began) * 1000)
            timings[name] = found
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=DEMO_EVENTS)
    arguments = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as directory,
        demo_server(Path(directory), arguments.events) as server,
    ):
        print(f"page: median ms from navigation to numbers shown ({arguments.runs} warm loads)")
        for name, found in page_timings(server, arguments.runs).items():
            print(f"  {name:<10} {statistics.median(found):7.0f}   (min {min(found):.0f})")
        print("data route: median ms per request over HTTP")
        for name, found in route_timings(server, arguments.runs).items():
            print(f"  {name:<18} {statistics.median(found):6.2f}")


if __name__ == "__main__":
    main()
