"""A campaign's wording: merge fields checked at create time, the STOP line, GSM-7 and segment counts, cost."""

from __future__ import annotations

import pytest

from shared.campaigns import wording
from shared.campaigns.wording import STOP_LINE, TemplateError, check_template, estimate_cost_cents, render, segments


def test_the_three_merge_fields_are_filled_and_the_stop_line_ends_every_message():
    text = render("Hi {first_name}, {clinic_name}: {link}", {"first_name": "Ana", "clinic_name": "Glow", "link": "u"})
    assert text == f"Hi Ana, Glow: u\n{STOP_LINE}"


@pytest.mark.parametrize("template", ["Hi {name}", "Hi {0}", "Hi {}", "Hi {first_name.upper}", "Hi {patient[0]}"])
def test_an_unknown_merge_field_is_refused_when_the_campaign_is_created(template):
    with pytest.raises(TemplateError, match="unknown merge field"):
        check_template(template, has_link=True)


@pytest.mark.parametrize("template", ["Hi {first_name!r}", "Hi {first_name:>10}", "50% off {", "a } b"])
def test_a_format_or_a_stray_brace_is_refused(template):
    with pytest.raises(TemplateError):
        check_template(template, has_link=True)


def test_a_link_field_needs_a_link_and_literal_braces_are_allowed():
    with pytest.raises(TemplateError, match="no link"):
        check_template("See {link}", has_link=False)
    assert check_template("{{VIP}} {first_name} {first_name}", has_link=False) == ("first_name",)


def test_gsm7_holds_the_basic_set_and_the_extension_but_not_an_emoji_or_a_curly_quote():
    assert wording.is_gsm7("Hola Señor, 10€ off [today] ~ @home ¿Qué?")
    assert not wording.is_gsm7("¿sí?")  # í is not in the basic set (é is)
    assert not wording.is_gsm7("Glow ✨")
    assert not wording.is_gsm7("It’s on")  # the typographic apostrophe is UCS-2


@pytest.mark.parametrize(
    ("text", "encoding", "count"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # 160 septets
        ("€" * 81, "GSM-7", 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),  # 306 septets, but the escape pair is never split
        ("ж" * 70, "UCS-2", 1),
        ("ж" * 71, "UCS-2", 2),
        ("ж" * 134, "UCS-2", 2),
        ("ж" * 135, "UCS-2", 3),
        ("ж" * 66 + "😀", "UCS-2", 1),  # 68 code units: one segment
        ("ж" * 66 + "😀" + "ж" * 4, "UCS-2", 2),  # 72 units; the surrogate pair is not split
        ("", "GSM-7", 0),
    ],
)
def test_segments_follow_gsm_03_38(text, encoding, count):
    found = segments(text)
    assert (found.encoding, found.count) == (encoding, count)


def test_a_surrogate_pair_at_a_boundary_starts_the_next_segment():
    assert segments("ж" * 66 + "😀" * 2).count == 1  # 70 units: a single segment
    assert segments("ж" * 66 + "😀" + "ж" * 66).count == 3  # 134 units, but the pair moves to the second part


def test_the_cost_estimate_is_segments_times_recipients_times_the_price_rounded_up_to_a_cent():
    assert estimate_cost_cents(2, 1000, 0.79) == 1580
    assert estimate_cost_cents(1, 3, 0.333) == 1
    assert estimate_cost_cents(3, 0, 1.0) == 0
