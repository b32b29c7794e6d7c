"""patient_links: the pages a patient's link opens; feedback_page, an emailed survey's one question (public HTTP).

Wired by shared/wiring/patient_links.py: the signed token in the query is verified, GET shows the question,
POST records the score (docs/feedback.md).
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.wiring import patient_links as wiring


@functions_framework.http
def feedback_page(request: Any) -> Any:
    return wiring.feedback_page(request)
