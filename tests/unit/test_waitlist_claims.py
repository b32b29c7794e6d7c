"""Claims and claim links on the in-memory store: one winner, honest answers for everyone else."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.platform.errors import ConfigError
from shared.waitlist import tokens
from shared.waitlist.bookings import booked_appointment_id
from shared.waitlist.claim_link import ClaimLinks
from tests.fakes import MemoryStore
from tests.waitlist_cases import two_overlapping_offers
from tests.waitlist_support import NOW, TOKEN_KEY, Scene


@pytest.fixture
def scene() -> Scene:
    return Scene(MemoryStore())


def open_with(scene: Scene, count: int, **fields):
    entries = [scene.entry(scene.patient()) for _ in range(count)]
    appointment = scene.cancelled(**fields)
    scene.open(appointment)
    return scene.offer_of(appointment), entries


def test_the_winner_gets_the_booked_slot_linked_to_offer_and_entry(scene):
    offer, (entry,) = open_with(scene, 1, requires_prep=True, prep_instructions="Arrive early.", price_cents=500)
    result = scene.claims().claim(offer.id, entry, channel="sms")
    assert result.outcome == "won" and not result.replay
    booked = scene.doc(f"appointments/{booked_appointment_id(offer.id)}")
    assert booked["status"] == "booked" and booked["start"] == offer.start and booked["end"] == offer.end
    assert booked["patient_id"] == scene.doc(f"waitlist/{entry}")["patient_id"]
    assert (booked["slot_offer_id"], booked["waitlist_entry_id"], booked["source"]) == (offer.id, entry, "waitlist")
    assert (booked["prep_instructions"], booked["price_cents"], booked["provider_id"]) == ("Arrive early.", 500, "dr-a")
    assert scene.doc(f"slot_offers/{offer.id}")["claim_channel"] == "sms"


def test_a_second_claimer_hears_taken_and_a_replay_hears_the_first_answer(scene):
    offer, (first, second) = open_with(scene, 2)
    claims = scene.claims()
    assert claims.claim(offer.id, first, channel="sms").outcome == "won"
    assert claims.claim(offer.id, second, channel="sms").outcome == "taken"
    again = claims.claim(offer.id, first, channel="sms")
    assert (again.outcome, again.replay) == ("won", True)
    assert claims.claim(offer.id, second, channel="sms").replay is True


def test_a_claim_after_the_window_is_expired_and_recorded(scene):
    offer, (entry,) = open_with(scene, 1)
    scene.clock.advance(minutes=31)
    assert scene.claims().claim(offer.id, entry, channel="sms").outcome == "expired"
    assert scene.doc(f"slot_offers/{offer.id}")["status"] == "open"
    assert scene.doc(f"slot_offers/{offer.id}/answers/{entry}")["outcome"] == "expired"


def test_a_patient_busy_at_that_time_is_refused_and_keeps_their_place(scene):
    offer, (entry,) = open_with(scene, 1)
    patient = scene.doc(f"waitlist/{entry}")["patient_id"]
    scene.appointment(patient, start=offer.start + timedelta(minutes=15))  # booked meanwhile
    assert scene.claims().claim(offer.id, entry, channel="sms").outcome == "conflict"
    assert scene.doc(f"slot_offers/{offer.id}")["status"] == "open"


def test_nothing_to_claim_writes_nothing(scene):
    offer, (entry,) = open_with(scene, 1)
    before = len(scene.store.docs("appointments"))
    assert scene.claims().claim("offer-" + "1" * 40, entry, channel="sms").outcome == "no_offer"
    assert scene.claims().claim(offer.id, "wl-missing", channel="sms").outcome == "no_offer"
    assert len(scene.store.docs("appointments")) == before and scene.store.docs(f"slot_offers/{offer.id}/answers") == {}


# ------------------------------------------------------------------------------------------- tokens


def test_a_token_round_trips_and_names_ids_only():
    token = tokens.sign(TOKEN_KEY, "offer-1", "wl-1", NOW + timedelta(minutes=30))
    claim = tokens.verify(TOKEN_KEY, token, NOW)
    assert (claim.offer_id, claim.entry_id) == ("offer-1", "wl-1") and claim.expires_at == NOW + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("mangle", "code"),
    [
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "forged_token"),
        (lambda t: t.replace("v1.", "v2.", 1), "malformed_token"),
        (
            lambda t: tokens.sign(b"another-key-of-16-bytes", "offer-1", "wl-1", NOW + timedelta(hours=1)),
            "forged_token",
        ),
        (lambda t: "", "malformed_token"),
        (lambda t: "x" * 5000, "malformed_token"),
        (lambda t: "v1.é.x", "malformed_token"),
        (lambda t: "a.b", "malformed_token"),
    ],
    ids=["tampered", "version", "other_key", "empty", "huge", "non_ascii", "two_parts"],
)
def test_bad_tokens_are_refused_with_a_code(mangle, code):
    token = tokens.sign(TOKEN_KEY, "offer-1", "wl-1", NOW + timedelta(hours=1))
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.verify(TOKEN_KEY, mangle(token), NOW)
    assert refused.value.code == code


def test_an_expired_token_or_one_naming_bad_ids_is_refused():
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.verify(TOKEN_KEY, tokens.sign(TOKEN_KEY, "offer-1", "wl-1", NOW), NOW)
    assert refused.value.code == "expired_token"
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.verify(TOKEN_KEY, tokens.sign(TOKEN_KEY, "a/b", "wl-1", NOW + timedelta(hours=1)), NOW)
    assert refused.value.code == "malformed_token"
    assert pytest.raises(tokens.TokenRefused, tokens.verify, TOKEN_KEY, None, NOW)


def test_a_short_key_is_a_configuration_error():
    with pytest.raises(ConfigError):
        tokens.sign(b"short", "offer-1", "wl-1", NOW)


# ---------------------------------------------------------------------------------------- claim link


def links(scene: Scene) -> ClaimLinks:
    return ClaimLinks(store=scene.store, clock=scene.clock, claims=scene.claims(), token_key=TOKEN_KEY)


def token_for(offer, entry: str, expires=None) -> str:
    return tokens.sign(TOKEN_KEY, offer.id, entry, expires or NOW + timedelta(minutes=30))


def test_opening_the_link_shows_the_offer_and_writes_nothing(scene):
    offer, (entry,) = open_with(scene, 1)
    before = {name: scene.store.docs(name) for name in ("slot_offers", "waitlist", "appointments")}
    page, title = links(scene).show(token_for(offer, entry))
    assert (page.status, page.outcome, title) == (200, "offer", "Glow Aesthetics") and page.token
    assert "HydraFacial" not in page.html(title) and 'method="post"' in page.html(title)
    assert {name: scene.store.docs(name) for name in before} == before


def test_posting_the_link_claims_then_the_same_link_is_refused(scene):
    offer, (entry, other) = open_with(scene, 2)
    service = links(scene)
    page, _ = service.claim(token_for(offer, entry))
    assert (page.status, page.outcome) == (200, "won") and "booked" in page.message
    answers = scene.store.docs(f"slot_offers/{offer.id}/answers")
    reused, _ = service.claim(token_for(offer, entry))
    assert (reused.status, reused.outcome) == (409, "reused")
    assert scene.store.docs(f"slot_offers/{offer.id}/answers") == answers
    taken, _ = service.claim(token_for(offer, other))
    assert (taken.status, taken.outcome) == (200, "taken")
    shown, _ = service.show(token_for(offer, other))
    assert shown.outcome == "taken" and shown.token is None


@pytest.mark.parametrize(
    ("token", "status", "outcome"),
    [("forged.token.here", 403, "malformed_token"), (None, 403, "malformed_token")],
)
def test_a_bad_link_is_refused_before_anything_is_read(scene, token, status, outcome):
    page, _ = links(scene).claim(token)
    assert (page.status, page.outcome) == (status, outcome)


def test_an_expired_link_is_refused_and_writes_nothing(scene):
    offer, (entry,) = open_with(scene, 1)
    stale = token_for(offer, entry, expires=NOW + timedelta(minutes=30))
    scene.clock.advance(minutes=31)
    page, _ = links(scene).claim(stale)
    assert (page.status, page.outcome) == (410, "expired_token")
    assert scene.store.docs(f"slot_offers/{offer.id}/answers") == {}
    assert scene.doc(f"waitlist/{entry}")["status"] == "offered"


def test_a_link_for_an_offer_that_is_gone_says_so(scene):
    page, _ = links(scene).show(tokens.sign(TOKEN_KEY, "offer-" + "2" * 40, "wl-x", NOW + timedelta(hours=1)))
    assert (page.status, page.outcome) == (404, "no_offer")
    claimed, _ = links(scene).claim(tokens.sign(TOKEN_KEY, "offer-" + "2" * 40, "wl-x", NOW + timedelta(hours=1)))
    assert claimed.outcome == "no_offer"


def test_two_claims_of_one_patient_interleaved_make_one_booking(scene):
    """The rival claim wins between this claim's checks and its look for the patient's other offers:
    this one then finds no other offer to hold and must still fail, on its own entry's version, which the
    rival's hold changed (a write that changes nothing keeps Firestore's update time, and the clock did
    not move, so the hold must change the document)."""
    patient, ((first_offer, first_entry), (second_offer, second_entry)) = two_overlapping_offers(scene)
    claims = scene.claims()
    rival: list[str] = []  # the rival claim's outcome, once it ran
    offered_to = claims.entries.offered_to

    def the_rival_wins_first(patient_ids):
        if not rival:
            rival.append(scene.claims().claim(second_offer, second_entry, channel="link").outcome)
        return offered_to(patient_ids)

    claims.entries.offered_to = the_rival_wins_first
    first = claims.claim(first_offer, first_entry, channel="link").outcome
    assert (rival, first) == (["won"], "conflict")
    booked = [doc for doc in scene.store.docs("appointments").values() if doc.get("patient_id") == patient]
    assert [doc["slot_offer_id"] for doc in booked] == [second_offer]
