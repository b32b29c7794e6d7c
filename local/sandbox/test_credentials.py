"""Twilio's test credentials as Twilio answers them (https://www.twilio.com/docs/iam/test-credentials).

A request authenticated with the account's test SID and token is validated like a live one, but nothing is
charged, delivered or called back: only creating a message is allowed (any other resource: 403, error 20008);
the From number must be the magic +15005550006 (other magic From numbers give their errors, any other number
21606); magic To numbers give chosen errors (+15005550001 → 21211 invalid number, …); any other To is
validated normally. An accepted test message stays `queued`: test sends get no status callbacks.
"""

from __future__ import annotations

VALID_FROM = "+15005550006"  # passes every check
FROM_ERRORS = {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}
OTHER_FROM_ERROR = 21606  # not owned by the (test) account, or not SMS-capable
TO_ERRORS = {
    "+15005550001": 21211,  # invalid number
    "+15005550002": 21612,  # cannot route to this number
    "+15005550003": 21408,  # no international permission
    "+15005550004": 21610,  # blocked (replied STOP)
    "+15005550009": 21614,  # not a mobile number
}
FORBIDDEN = 20008  # any other resource with test credentials


def refusal(to: str, sender: str, validation: int | None) -> int | None:
    """The error code a test-credentials send earns (None: accepted); `validation` is the live validation's."""
    if to in TO_ERRORS:
        return TO_ERRORS[to]
    if validation is not None:
        return validation
    if sender == VALID_FROM:
        return None
    return FROM_ERRORS.get(sender, OTHER_FROM_ERROR)
