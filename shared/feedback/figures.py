"""The feedback's section of the clinic report (shared.reports.journeys, docs/feedback.md): the surveys a
clinic sent in the period and what came of them, read from `feedback` with one bounded query (`clinic_id ==`
and `asked_at` in the period, the figures' fields only).

Keys (stable, the report doc's fields under journeys.feedback): surveys_sent, responses, response_rate
(responses / surveys_sent, None when none was sent), average_score (of the first scores, None without
any), low_scores, review_links_sent. A survey counts in the period it was sent, whenever it was answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.contract.models import SCORES
from shared.feedback.scores import Scores
from shared.platform.clock import system_clock

if TYPE_CHECKING:
    from shared.platform.store import Store
    from shared.reports.journeys import JourneyFigures
    from shared.reports.periods import ReportPeriod

KEY = "feedback"
MAX_SURVEYS = 20_000  # a clinic's surveys in one report period, far above a clinic's visits in a week


def report_figures(store: Store, clinic_id: str, period: ReportPeriod) -> JourneyFigures:
    from shared.reports.journeys import Figure, JourneyFigures  # the report imports this module: not at its top

    docs = Scores(store, system_clock).period(clinic_id, period.start, period.end, MAX_SURVEYS)
    scores = [s for doc in docs if isinstance(s := doc.get("score"), int) and s in SCORES]
    sent = len(docs)
    return JourneyFigures(
        key=KEY,
        title="Feedback",
        figures=(
            Figure("surveys_sent", "Surveys sent", sent),
            Figure("responses", "Responses", len(scores)),
            Figure("response_rate", "Response rate", len(scores) / sent if sent else None, percent=True),
            Figure("average_score", "Average score (1-5)", round(sum(scores) / len(scores), 2) if scores else None),
            Figure("low_scores", "Low scores", sum(1 for doc in docs if doc.get("low") is True)),
            Figure("review_links_sent", "Review links sent", sum(1 for doc in docs if doc.get("review_sent_at"))),
        ),
    )
