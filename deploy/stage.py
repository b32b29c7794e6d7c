"""Stage one function's source exactly as deploy.sh uploads it: functions/<folder>/ plus shared/.

The staged folder holds main.py, the folder's requirements.txt and modules, and a vendored copy of the
repo's `shared` package (dest/shared/...), so `from shared.x import y` resolves the same way locally
(functions-framework run from the staged folder) and on Cloud Functions.

    python -m deploy.stage <folder> <dest>
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

FUNCTIONS_DIR = REPO_ROOT / "functions"
SHARED_DIR = REPO_ROOT / "shared"
MARKER = ".staged"  # written into every staged folder; only such folders are ever replaced
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache")


class StageError(RuntimeError):
    """The function folder cannot be staged (missing, or it would shadow `shared`)."""


def stage(function_folder: str, dest: Path) -> Path:
    """Copy functions/<function_folder>/ and shared/ into dest (replacing it); return dest."""
    source = FUNCTIONS_DIR / function_folder
    if not (source / "main.py").is_file():
        raise StageError(f"{source}/main.py does not exist")
    if (source / "shared").exists():
        raise StageError(f"{source}/shared would shadow the repo's shared/ package; rename it")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        if not (dest / MARKER).is_file():  # never rmtree a folder this function did not create
            raise StageError(f"refusing to replace {dest}: not empty and not a staged folder (no {MARKER})")
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=_IGNORE, dirs_exist_ok=True)
    shutil.copytree(SHARED_DIR, dest / "shared", ignore=_IGNORE)
    (dest / MARKER).write_text(f"functions/{function_folder} + shared/\n")
    return dest


def fingerprint(function_folder: str) -> str:
    """A hash of everything stage() would copy: a running function with another fingerprint is stale."""
    return source_fingerprint(FUNCTIONS_DIR / function_folder, SHARED_DIR)


def source_fingerprint(*roots: Path) -> str:
    """A hash of the files under `roots` (folders or single files), names and contents."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stage", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the function folder under functions/")
    parser.add_argument("dest", type=Path, help="the staged source folder to (re)create")
    args = parser.parse_args(argv)
    try:
        staged = stage(args.folder, args.dest)
    except StageError as exc:
        print(f"stage: {exc}", file=sys.stderr)
        return 1
    print(staged)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
