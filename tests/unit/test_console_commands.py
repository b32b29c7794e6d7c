"""The commands a new user types first: `make help` lists every target, `python -m ops` says in one line
what is missing, and `python -m local.sandbox.console` says where each console page is."""

from __future__ import annotations

import re
import subprocess
import sys

from local.config import REPO_ROOT
from tests.spare_ports import free_port


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_make_help_lists_every_target() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):(?!=)", makefile, re.M))
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split())  # type: ignore[union-attr]
    helped = set(re.findall(r'^\t@echo "make ([a-z-]+)', makefile, re.M))

    assert {"demo", "demo-quick", "console", "test-browser", "up", "down", "test"} <= targets
    assert targets == phony == helped


def test_ops_without_the_environment_says_so_in_one_line() -> None:
    result = _run([sys.executable, "-m", "ops", "list"], {"PATH": "/usr/bin:/bin", "HOME": "/tmp"})

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("ops: GOOGLE_CLOUD_PROJECT is not set")


def test_ops_with_the_stack_down_fails_within_seconds_naming_the_emulator() -> None:
    port = free_port()  # nothing listens there
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "GOOGLE_CLOUD_PROJECT": "medspa-local",
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{port}",
        "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{port}",
    }
    result = _run([sys.executable, "-m", "ops", "list"], env, timeout=20)  # it must not sit in retries

    assert result.returncode == 2
    assert f"the Firestore emulator at 127.0.0.1:{port} does not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_console_says_where_each_page_is() -> None:
    result = _run(
        [sys.executable, "-m", "local.sandbox.console"], {"PATH": "/usr/bin:/bin", "MEDSPA_PORT_BASE": "9100"}
    )

    assert result.returncode == 0
    for path in ("/conversations", "/operations", "/faults", "/reports"):
        assert f"http://127.0.0.1:9104{path}" in result.stdout
