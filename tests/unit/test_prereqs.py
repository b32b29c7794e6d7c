"""local/prereqs.sh, what `make prereqs` and .ci/run install: it names the Debian packages a machine lacks
(`--check` installs nothing), the official emulators' Java where gcloud has them, the stand-ins' otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "local" / "prereqs.sh"


def check(tmp_path: Path, *extra_path: Path) -> subprocess.CompletedProcess[str]:
    """`prereqs.sh --check` on a PATH holding only the few tools the script itself runs."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("dirname", "readlink"):
        (tools / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    path = os.pathsep.join(map(str, (*extra_path, tools)))
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(
        [bash, str(SCRIPT), "--check"], env={"PATH": path}, capture_output=True, text=True, timeout=60, check=False
    )


def missing(result: subprocess.CompletedProcess[str]) -> list[str]:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("missing: ")]
    return line.removeprefix("missing: ").split(" (")[0].split()


def test_an_empty_machine_is_told_every_package_and_the_stand_ins_needs(tmp_path: Path):
    result = check(tmp_path)
    assert result.returncode == 1 and "the stack will use the stand-ins" in result.stdout
    needed = missing(result)
    for package in ("make", "curl", "ca-certificates", "shellcheck", "chromium", "python3", "python3-venv", "nodejs"):
        assert package in needed
    assert "default-jre-headless" not in needed


def test_with_gcloud_s_emulators_only_their_java_is_added(tmp_path: Path):
    sdk = tmp_path / "google-cloud-sdk"
    for emulator in ("cloud-firestore-emulator", "pubsub-emulator"):
        (sdk / "platform" / emulator).mkdir(parents=True)
    (sdk / "bin").mkdir()
    (sdk / "bin" / "gcloud").write_text("#!/bin/sh\n")
    (sdk / "bin" / "gcloud").chmod(0o755)
    needed = missing(check(tmp_path, sdk / "bin"))
    assert "default-jre-headless" in needed and "nodejs" not in needed and "npm" not in needed


@pytest.mark.parametrize("script", ["local/prereqs.sh", ".ci/run"])
def test_the_install_scripts_are_shellcheck_clean(script: str):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck is not installed (make prereqs)")
        pytest.skip("shellcheck is not installed (make prereqs)")
    result = subprocess.run([shellcheck, script], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_without_root_or_sudo_it_stops_with_one_line_naming_the_packages(tmp_path: Path):
    """Not --check: an install it cannot make fails at once, saying what to install, before any apt-get."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("dirname", "readlink"):
        (tools / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    (tools / "id").write_text("#!/bin/sh\necho 1000\n")  # a user, not root; no sudo on this PATH
    (tools / "id").chmod(0o755)
    bash = shutil.which("bash") or "/bin/bash"
    result = subprocess.run(
        [bash, str(SCRIPT)], env={"PATH": str(tools)}, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("prereqs: cannot install ") and "not root and no sudo" in line and "chromium" in line
