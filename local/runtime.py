"""The Python that serves the functions locally: the one Cloud Functions runs them on, where this machine has it.

deploy.sh deploys every function on `deploy.registry.RUNTIME` (python312). `make venv-runtime` builds
.venv-312 from requirements-dev.txt with a Python of that version (stamped by the file's hash, as
`make venv` stamps .venv); `make test-runtime` runs the unit tests on it, and the local stack serves
every function with its functions-framework, so each integration test exercises the deployed runtime.
Without .venv-312 the functions run on the development venv's Python, and `up` says so.

    MEDSPA_FUNCTIONS_PYTHON=3.11      serve the functions from the development venv (the version it runs)
    RUNTIME_PYTHON=/path/python3.12   the Python to build .venv-312 with (default: python3.12 on PATH, pyenv's)
    python -m local.runtime venv      create or refresh .venv-312; without such a Python, skip saying why
                                      (fail under CI=true)
    python -m local.runtime run ARGS  `python ARGS` on .venv-312 (skipped, or failed under CI, without it)
    python -m local.runtime interpreter   the Python it is built with, or why there is none (needs no venv)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deploy.registry import RUNTIME

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO_ROOT / "requirements-dev.txt"
_DIGITS = RUNTIME.removeprefix("python")  # "312"
VERSION = f"{_DIGITS[0]}.{_DIGITS[1:]}"
VENV = REPO_ROOT / f".venv-{_DIGITS}"
STAMP_NAME = ".requirements-dev.sha256"
SELECT = "MEDSPA_FUNCTIONS_PYTHON"
BUILDER = "RUNTIME_PYTHON"


@dataclass(frozen=True)
class FunctionsPython:
    """A venv's functions-framework, the Python version it runs on, and where it comes from."""

    version: str
    runner: Path
    origin: str

    def __str__(self) -> str:
        return f"functions on Python {self.version} ({self.origin})"


def venv_version(venv: Path) -> str:
    """The Python version a venv was made with ("3.12.1"), from its pyvenv.cfg; "" when it is not a venv."""
    try:
        lines = (venv / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return ""
    settings = dict(line.partition("=")[::2] for line in lines)
    return {key.strip(): value.strip() for key, value in settings.items()}.get("version", "")


def is_runtime(version: str) -> bool:
    return version == VERSION or version.startswith(VERSION + ".")


def functions_python(environ: Mapping[str, str] = os.environ) -> FunctionsPython:
    """The deployed runtime's venv when it is built, else the development venv; MEDSPA_FUNCTIONS_PYTHON picks."""
    dev_venv, dev_version = Path(sys.prefix), ".".join(map(str, sys.version_info[:2]))
    dev = FunctionsPython(
        ".".join(map(str, sys.version_info[:3])),
        Path(sys.executable).parent / "functions-framework",
        f"{dev_venv.name}, the development venv",
    )
    built = VENV / "bin" / "functions-framework"
    deployed = FunctionsPython(venv_version(VENV), built, f"{VENV.name}, as deployed: {RUNTIME}")
    ready = built.exists() and is_runtime(deployed.version)
    wanted = environ.get(SELECT, "").strip()
    if not wanted:
        if ready:
            return deployed
        return FunctionsPython(dev.version, dev.runner, f"{dev.origin}; {VENV.name} is not built: make venv-runtime")
    if wanted == VERSION and ready:
        return deployed
    if wanted == dev_version:
        return dev
    raise SystemExit(
        f"{SELECT}={wanted}: the functions can run on {dev_version} ({dev_venv.name})"
        + (f" or {VERSION} ({VENV.name})" if ready else f"; {VERSION} needs {VENV.name} (make venv-runtime)")
    )


def _reports(python: str) -> str:
    """The X.Y version `python` runs as, "" when it does not run or lacks venv (a pyenv shim for another version)."""
    probe = "import sys, venv, ensurepip; print(*sys.version_info[:2], sep='.')"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _pyenv_pythons(environ: Mapping[str, str]) -> list[str]:
    root = Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")

    def patch(path: Path) -> int:
        tail = path.parent.parent.name.removeprefix(VERSION + ".")
        return int(tail) if tail.isdigit() else -1

    found = (root / "versions").glob(f"{VERSION}.*/bin/python{VERSION}")
    return [str(path) for path in sorted(found, key=patch, reverse=True)]


def interpreter(environ: Mapping[str, str] = os.environ) -> str | None:
    """A Python of the deployed version: $RUNTIME_PYTHON, else python3.12 on PATH, else pyenv's newest 3.12."""
    named = environ.get(BUILDER, "").strip()
    on_path = shutil.which(f"python{VERSION}", path=environ.get("PATH")) or ""
    candidates = [named] if named else [on_path, *_pyenv_pythons(environ)]
    return next((python for python in candidates if python and _reports(python) == VERSION), None)


def _missing(what: str, environ: Mapping[str, str]) -> int:
    """Say why there is no deployed runtime here: exit 1 under CI=true, else skip (0)."""
    place = f"{BUILDER}={environ[BUILDER]}" if environ.get(BUILDER) else f"python{VERSION} on PATH or under pyenv"
    reason = (
        f"no Python {VERSION} (Cloud Functions runs {RUNTIME}): none as {place}, and neither Debian bookworm's "
        f"packages (3.11 only) nor PyPI provide one; pyenv install {VERSION}, or set {BUILDER}=/path/to/python{VERSION}"
    )
    ci = environ.get("CI") == "true"
    print(f"{what}: {'FAILED' if ci else 'skipped'}: {reason}", file=sys.stderr, flush=True)
    return 1 if ci else 0


def _runs(python: Path) -> bool:
    return subprocess.run([python, "-c", ""], capture_output=True, check=False).returncode == 0


def build_venv(environ: Mapping[str, str] = os.environ) -> int:
    """Create or refresh .venv-312 from requirements-dev.txt; kept while its stamp holds the file's hash."""
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    python = VENV / "bin" / "python"
    usable = is_runtime(venv_version(VENV)) and python.exists() and _runs(python)
    stamp = VENV / STAMP_NAME
    if usable and stamp.exists() and stamp.read_text().strip() == want:
        return 0
    builder = interpreter(environ)
    if builder is None:
        return _missing("make venv-runtime", environ)
    print(f"make venv-runtime: installing {REQUIREMENTS.name} into {VENV.name} ({builder})", flush=True)
    if not usable:
        subprocess.run([builder, "-m", "venv", "--clear", VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", REQUIREMENTS], check=True)
    stamp.write_text(want + "\n")
    return 0


def run(args: list[str], environ: Mapping[str, str] = os.environ) -> int:
    """`python ARGS` on the deployed runtime's venv, replacing this process."""
    python = VENV / "bin" / "python"
    if not (python.exists() and is_runtime(venv_version(VENV))):
        return _missing(f"on {RUNTIME}", environ)
    os.execv(python, [str(python), *args])  # noqa: S606 - the venv's own interpreter, arguments from make


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["run"]:  # everything after it is the venv's Python's (argparse would read its -m)
        return run(args[1:])
    parser = argparse.ArgumentParser(prog="python -m local.runtime", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("venv", help=f"create or refresh {VENV.name} from {REQUIREMENTS.name}")
    commands.add_parser("interpreter", help=f"the path of a Python {VERSION} here (or say why none)")
    commands.add_parser("functions", help="say which Python the local stack serves the functions with")
    commands.add_parser("run", help=f"run ARGS: python ARGS on {VENV.name}")
    command = parser.parse_args(args).command
    if command == "venv":
        return build_venv()
    if command == "interpreter":
        found = interpreter()
        if found is None:
            return _missing(f"Python {VERSION}", os.environ)
        print(found)
        return 0
    print(functions_python())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
