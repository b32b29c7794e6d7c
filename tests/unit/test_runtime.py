"""The local stack serves the functions on the Python Cloud Functions runs them on (local/runtime.py): the
deployed runtime's venv when it is built, the development venv otherwise or when asked, and a Python of
the deployed version is found (or its absence said: a failure under CI, a skip elsewhere)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from deploy.registry import RUNTIME
from local import runtime
from local.components import functions_framework_command

pytestmark = pytest.mark.dev_python  # run by make test on .venv's Python too (see the Makefile)

HERE = ".".join(map(str, sys.version_info[:2]))


def make_venv(path: Path, version: str) -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}\ninclude-system-site-packages = false\n")
    runner = path / "bin" / "functions-framework"
    runner.write_text("#!/bin/sh\n")
    return runner


def fake_python(path: Path, prints: str, status: int = 0) -> Path:
    """An executable that answers the version probe as a Python of that version would (or fails, as a shim)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {prints}\nexit {status}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def deployed_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    venv = tmp_path / ".venv-312"
    monkeypatch.setattr(runtime, "VENV", venv)
    return venv


def test_the_runtime_version_and_venv_come_from_the_registry():
    assert (runtime.VERSION, Path(runtime.VENV).name) == ("3.12", ".venv-312") and RUNTIME == "python312"


def test_the_functions_run_on_the_deployed_runtime_once_its_venv_is_built(deployed_venv: Path):
    runner = make_venv(deployed_venv, "3.12.1")
    served = runtime.functions_python({})
    assert (served.runner, served.version) == (runner, "3.12.1")
    command = functions_framework_command(Path("main.py"), "handle", "http", "127.0.0.1", 9101)
    assert command[0] == str(runner)


def test_without_that_venv_the_development_venv_serves_them_and_says_how_to_build_it(deployed_venv: Path):
    served = runtime.functions_python({})
    assert served.runner == Path(sys.executable).parent / "functions-framework"
    assert "make venv-runtime" in str(served)
    command = functions_framework_command(Path("main.py"), "handle", "http", "127.0.0.1", 9101)
    assert command[0] == str(served.runner)


def test_a_venv_of_another_version_under_that_name_is_not_the_deployed_runtime(deployed_venv: Path):
    make_venv(deployed_venv, "3.11.7")
    assert runtime.functions_python({}).runner == Path(sys.executable).parent / "functions-framework"


def test_the_development_venv_can_be_asked_for_by_its_version(deployed_venv: Path):
    if HERE == runtime.VERSION:
        pytest.skip("this interpreter is the deployed runtime's version")
    make_venv(deployed_venv, "3.12.1")
    assert (
        runtime.functions_python({runtime.SELECT: HERE}).runner == Path(sys.executable).parent / "functions-framework"
    )


@pytest.mark.parametrize("wanted", ["3.12", "2.7"])
def test_a_version_that_cannot_serve_them_is_refused_by_name(deployed_venv: Path, wanted: str):
    if wanted == HERE:
        pytest.skip("this interpreter is that version")
    with pytest.raises(SystemExit, match=f"{runtime.SELECT}={wanted}"):
        runtime.functions_python({runtime.SELECT: wanted})


def test_the_newest_pyenv_python_of_the_version_is_found_past_a_shim_that_does_not_run(tmp_path: Path):
    shims = tmp_path / "shims"
    fake_python(shims / "python3.12", "pyenv: python3.12: command not found", status=127)
    versions = tmp_path / "pyenv" / "versions"
    fake_python(versions / "3.12.1" / "bin" / "python3.12", "3.12")
    newest = fake_python(versions / "3.12.10" / "bin" / "python3.12", "3.12")
    fake_python(versions / "3.13.0" / "bin" / "python3.12", "3.13")
    assert runtime.interpreter({"PATH": str(shims), "PYENV_ROOT": str(tmp_path / "pyenv")}) == str(newest)


def test_a_named_python_of_another_version_is_not_taken(tmp_path: Path):
    other = fake_python(tmp_path / "python", "3.11")
    assert runtime.interpreter({runtime.BUILDER: str(other), "PATH": ""}) is None


@pytest.mark.parametrize(("ci", "status", "verdict"), [("true", 1, "FAILED"), ("", 0, "skipped")])
def test_without_that_python_the_venv_fails_under_ci_and_is_skipped_elsewhere(
    deployed_venv: Path, capsys: pytest.CaptureFixture[str], ci: str, status: int, verdict: str
):
    environ = {"CI": ci, "PATH": "", "PYENV_ROOT": str(deployed_venv.parent / "no-pyenv")}
    assert runtime.build_venv(environ) == status
    assert runtime.run(["-c", "pass"], environ) == status
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(f"{verdict}: no Python 3.12" in line for line in lines)
    assert not deployed_venv.exists()
