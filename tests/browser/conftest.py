"""The quick demo on the test stack, and a real browser (Debian's chromium driven by Playwright) on the
console it leaves behind. Screenshots go to <state dir>/artifacts/console/ (CI keeps the state dir).

Without chromium or the playwright package the browser tests skip, saying which is missing (CI installs
both: .ci/run installs chromium, requirements-dev.txt pins playwright). Playwright never downloads a
browser here: it drives /usr/bin/chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.config import REPO_ROOT, StackConfig

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_TIMEOUT_SECONDS = 420


@pytest.fixture(scope="session")
def quick_demo(stack: StackConfig) -> subprocess.CompletedProcess[str]:
    """`python -m local.demo --quick` on the test stack, once: its output, and the world it leaves."""
    result = subprocess.run(
        [sys.executable, "-m", "local.demo", "--quick"],
        cwd=REPO_ROOT,
        env={**os.environ, **stack.function_env()},
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
        check=False,
    )
    artifacts(stack).joinpath("demo-quick.txt").write_text(result.stdout + result.stderr)
    return result


def artifacts(stack: StackConfig) -> Path:
    folder = stack.state_dir / "artifacts" / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> str | None:
    return shutil.which("chromium") or next(
        (path for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(path)), None
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (make venv installs requirements-dev.txt)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, stack: StackConfig, quick_demo: subprocess.CompletedProcess[str]) -> Iterator[Any]:
    assert quick_demo.returncode == 0, quick_demo.stdout[-3000:] + quick_demo.stderr[-3000:]
    context = browser.new_context(viewport={"width": 1366, "height": 860}, base_url=stack.sandbox_url)
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], errors  # no script error on any page
