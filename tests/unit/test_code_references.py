"""Every file path (`shared/platform/store.py`, `docs/deploy.md`, `tests/fakes.py`), dotted module name
(`shared.platform.store`, `local.stack.up`, `tests/fakes.FixedClock`) and cited doc section
(`docs/deploy.md, "Fan-out sizes"`) that a comment or docstring of the code names exists: a path as a file or
folder of the repo, a dotted name as a module or an attribute of one (a function, a class, a constant, a name
it imports, a class's method), a section as a heading of that doc that starts with the quoted words.
test_docs_links.py does the same for the Markdown.

The code is read, never imported: a module's names are what its source defines or imports at top level. A
one-letter part is a placeholder (`from shared.x import y`); a name .gitignore lists is a file each developer
makes (`deploy.env`)."""

from __future__ import annotations

import ast
import functools
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = ("shared", "functions", "local", "ops", "bench", "deploy")
TOP = ("shared", "functions", "local", "ops", "bench", "deploy", "docs", "tests")
# A path starts at one of the repo's top folders, not inside a longer one (.local/, ../shared/).
PATH = re.compile(rf"(?<![\w./~$-])((?:{'|'.join(TOP)})/[\w./-]*)")
DOTTED = re.compile(rf"(?<![\w./~$-])((?:{'|'.join((*CODE_DIRS, 'tests'))})(?:\.[A-Za-z_]\w*)+)")
SECTION = re.compile(r"((?:docs/[\w-]+|README)\.md),?\s+\(?\"([^\"]+)\"")
HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.MULTILINE)
ROOT_FILES = {path.name for path in REPO.iterdir() if path.is_file()}
IGNORED = {line.strip() for line in (REPO / ".gitignore").read_text().splitlines() if re.fullmatch(r"[\w.-]+", line)}
# Stale today in folders that others are reshaping (shared/, functions/); each leaves this list when it is
# fixed (the test fails while a listed one is no longer found).
PENDING: set[tuple[str, str]] = set()


def sources() -> list[Path]:
    return sorted(
        path for folder in CODE_DIRS for path in (REPO / folder).rglob("*.py") if "__pycache__" not in path.parts
    )


def prose(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring in a Python file."""
    source = path.read_text()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    yield body[0].lineno, body[0].value.value


def path_exists(text: str) -> bool:
    """A file or folder; or a module path then its attributes (`bench/grpc_fakes.Latency`)."""
    text = text.rstrip("./-")
    return (REPO / text).exists() or ("." in text.rsplit("/", 1)[-1] and dotted_exists(text.replace("/", ".")))


def section_exists(doc: str, section: str) -> bool:
    path = REPO / doc
    return path.is_file() and any(heading.startswith(section) for heading in HEADING.findall(path.read_text()))


def _defined(item: ast.stmt) -> list[str]:
    """The names one statement of a class body defines."""
    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [item.name]
    targets = item.targets if isinstance(item, ast.Assign) else [item.target] if isinstance(item, ast.AnnAssign) else []
    return [target.id for target in targets if isinstance(target, ast.Name)]


@functools.cache
def names_of(module: Path) -> dict[str, set[str] | None]:
    """The names `module` defines or imports at top level; a class's value is the names of its body."""
    found: dict[str, set[str] | None] = {}
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.ClassDef):
            found[node.name] = {name for item in node.body for name in _defined(item)}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = None
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        found[name.id] = None
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                found[(alias.asname or alias.name).split(".")[0]] = None
        elif isinstance(node, ast.If | ast.Try):  # TYPE_CHECKING imports, optional imports
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    for alias in inner.names:
                        found[(alias.asname or alias.name).split(".")[0]] = None
    return found


def module_file(parts: list[str]) -> Path | None:
    base = REPO.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return base if base.is_dir() else None  # a namespace package


def dotted_exists(text: str) -> bool:
    """A module, or a module then attributes it defines (a class's own names one level down)."""
    if text in ROOT_FILES or text in IGNORED:  # deploy.sh, deploy.env.example; deploy.env
        return True
    parts = text.split(".")
    if any(len(part) == 1 for part in parts[1:]):
        return True
    for split in range(len(parts), 0, -1):
        module = module_file(parts[:split])
        if module is None:
            continue
        rest = parts[split:]
        if not rest:
            return True
        if module.is_dir():
            return False
        names = names_of(module)
        if rest[0] not in names:
            return False
        members = names[rest[0]]
        return len(rest) == 1 or members is None or rest[1] in members
    return False


def stale(path: Path) -> list[tuple[str, str]]:
    """(file, reference) of every reference in `path`'s comments and docstrings that names nothing."""
    where = str(path.relative_to(REPO))
    found = []
    for _, text in prose(path):
        found += [(where, match) for match in PATH.findall(text) if not path_exists(match)]
        found += [(where, match) for match in DOTTED.findall(text) if not dotted_exists(match)]
        for doc, section in SECTION.findall(" ".join(text.split())):
            if not section_exists(doc, section):
                found.append((where, f'{doc}, "{section}"'))
    return found


@pytest.mark.parametrize("folder", CODE_DIRS)
def test_every_path_module_and_section_a_comment_names_exists(folder: str) -> None:
    found = {entry for path in sources() if path.relative_to(REPO).parts[0] == folder for entry in stale(path)}
    pending = {entry for entry in PENDING if entry[0].startswith(f"{folder}/")}
    assert sorted(found - pending) == []
    assert sorted(pending - found) == [], "fixed: take these out of PENDING"
