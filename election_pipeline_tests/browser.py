"""What the browser tests (the Dagster UI's and the triage page's) share: the Chromium they
launch through Playwright, its arguments, and why they cannot run on this machine.

Chromium is Debian's (``apt-get install chromium``); another binary can be named with
``ELECTION_TEST_CHROMIUM``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("ELECTION_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_missing() -> str | None:
    """Why no browser test can run here (Playwright or Chromium missing), or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[dev]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (install it with: apt-get install chromium)"
    return None


def skip_module_without_browser(what: str) -> None:
    """Skip the calling test module, with a printed reason, when no browser can run, except
    in CI (``CI`` set), where a missing browser must fail the tests instead."""
    missing = browser_missing()
    if missing and not os.environ.get("CI"):
        print(f"\nSKIPPING the browser tests of {what}: {missing}")
        pytest.skip(missing, allow_module_level=True)
