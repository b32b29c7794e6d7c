"""patient_links: the links patients follow from a message (public HTTP): booking_restore, a booking nudge's
restore link; feedback_page, an emailed survey's one question.

Wired by shared/wiring/patient_links.py. booking_restore: the signed token in the path is verified, the click
counted on the session's recovery record, and the patient redirected to the clinic's booking page
(docs/booking-recovery.md). feedback_page: the signed token in the query is verified, GET shows the question,
POST records the score (docs/feedback.md).
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.wiring import patient_links as wiring


@functions_framework.http
def booking_restore(request: Any) -> Any:
    return wiring.booking_restore(request)


@functions_framework.http
def feedback_page(request: Any) -> Any:
    return wiring.feedback_page(request)
