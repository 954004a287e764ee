"""Render a PNG of each dashboard page into docs/, on the ``eras demo`` sample.

    .venv/bin/python scripts/screenshots.py

Run by hand when the pages change (CI does not): it starts a demo server as
``bench/dashboard.py`` does and photographs each page in Chromium once its numbers are shown.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import CHROMIUM, demo_server  # noqa: E402


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as directory,
        demo_server(Path(directory)) as server,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        for name, (path, token) in server.pages().items():
            context = browser.new_context(viewport={"width": 1200, "height": 1500})
            if token:
                context.add_init_script(f"sessionStorage.setItem('eras.token', {token!r})")
            page = context.new_page()
            page.goto(server.url + path)
            page.wait_for_selector("body[data-state=ready]", timeout=60_000)
            # Token fields are shown empty in the pictures.
            page.evaluate("document.querySelectorAll('#token').forEach((i) => (i.value = ''))")
            target = ROOT / "docs" / f"dashboard-{name}.png"
            page.screenshot(path=str(target))
            print(target.relative_to(ROOT))
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
