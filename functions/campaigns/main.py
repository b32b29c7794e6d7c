"""campaigns: the tracked link of a campaign message (campaign_click, public HTTP).

Wired by shared/wiring/campaigns.py: the signed token in the path is verified, the click counted in
campaign_clicks, and the patient redirected to the campaign's link (docs/campaigns.md).
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.wiring import campaigns as wiring


@functions_framework.http
def campaign_click(request: Any) -> Any:
    return wiring.campaign_click(request)
