"""Every relative link in README.md and docs/ names a file that exists and, with `#anchor`, a heading in it
(GitHub's anchors: lower case, punctuation dropped, spaces as hyphens), no doc points outside the repo at
the team's handbook, and the README's "Measured" table only repeats figures docs/performance.md holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchor(heading: str) -> str:
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(h) for h in HEADING.findall(FENCE.sub("", path.read_text()))}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc: Path) -> None:
    text = FENCE.sub("", doc.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, fragment = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(target)
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(target)
    assert broken == [], f"{doc.name}: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_doc_points_outside_the_repo_or_at_the_handbook(doc: Path) -> None:
    text = doc.read_text()
    outside = [
        t
        for t in LINK.findall(text)
        if not re.match(r"^[a-z]+:", t) and REPO not in (doc.parent / t.partition("#")[0]).resolve().parents
    ]
    assert outside == [] and not re.search(r"DESIGN\.md|CONVENTIONS\.md|DESIGN §", text)


def test_the_readmes_measured_headlines_are_figures_and_commands_of_docs_performance() -> None:
    # The README keeps a short table; docs/performance.md holds every figure with its command and what it
    # leaves out. A headline that is not there (a figure changed in one place only) fails here.
    readme = (REPO / "README.md").read_text()
    measured = readme[readme.index("## Measured") :].split("\n## ", 1)[0]
    performance = (REPO / "docs" / "performance.md").read_text()
    figures = set(re.findall(r"\d[\d,]*(?:\.\d+)?", measured))
    commands = set(re.findall(r"`([^`]*bench[^`]*)`", measured))
    assert len(figures) > 20 and commands
    assert sorted(figure for figure in figures if figure not in performance) == []
    assert sorted(command for command in commands if command not in performance) == []
    assert len(measured.split()) < 400  # a headline table and the link, not the whole account
