"""The pre-commit hooks (.pre-commit-config.yaml) run exactly what `make lint` runs, with .venv's tools."""

from __future__ import annotations

import re

from local.config import REPO_ROOT


def lint_commands() -> list[str]:
    """The commands of the Makefile's lint recipe, with $(PY) spelt out."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None, "the Makefile has no lint target"
    return [line.strip().replace("$(PY)", ".venv/bin/python") for line in recipe.group(1).splitlines()]


def hook_entries() -> list[str]:
    config = (REPO_ROOT / ".pre-commit-config.yaml").read_text()
    return re.findall(r"^\s+entry:\s*(.+?)\s*$", config, re.M)


def test_every_lint_command_is_a_hook_and_every_hook_a_lint_command() -> None:
    assert lint_commands() == hook_entries()
    assert len(hook_entries()) == 3


def test_the_hooks_use_the_projects_venv_and_every_file() -> None:
    config = (REPO_ROOT / ".pre-commit-config.yaml").read_text()
    assert re.findall(r"^\s+- repo:\s*(\S+)", config, re.M) == ["local"]
    assert config.count("language: system") == config.count("pass_filenames: false") == 3
