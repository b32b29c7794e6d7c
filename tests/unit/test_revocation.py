"""The revocation verdict over the corpus, and its bounds."""

from __future__ import annotations

import pytest

from shared.consent.revocation import MAX_CHARS, Verdict, verdict
from tests.unit.revocation_corpus import CORPUS


@pytest.mark.parametrize(("text", "expected"), CORPUS, ids=[f"{i}:{text[:30]}" for i, (text, _) in enumerate(CORPUS)])
def test_corpus(text, expected):
    assert verdict(text) == expected


def test_the_corpus_is_large_and_covers_every_verdict_in_both_languages():
    assert len(CORPUS) >= 100
    assert {expected for _, expected in CORPUS} == set(Verdict)
    assert len({text for text, _ in CORPUS}) == len(CORPUS)  # no case twice
    assert any("más" in text for text, _ in CORPUS) and any("🛑" in text for text, _ in CORPUS)


def test_only_the_first_max_chars_are_read():
    assert verdict("hello " * (MAX_CHARS // 6 + 1) + "stop texting me") == Verdict.NONE
    assert verdict("stop texting me. " + "x" * 100_000) == Verdict.REVOKE


def test_a_long_text_of_near_misses_is_answered():
    # Every sentence almost a phrase: the checks stay a fixed number of substring tests per sentence.
    assert verdict("no me " * 300) == Verdict.NONE
    assert verdict("stop, " * 300) == Verdict.REVOKE
