"""How a clinic-day too large for one invocation is cut into shards of a bounded number of appointments.

Pure: from the start instants of the day's appointments, window by window, to each shard's windows. The
day's windows are walked in order, hour by hour (UTC) of appointment start: whole hours are packed into
a shard until the next hour would take it past `target` appointments. So a shard holds at most `target`
appointments, or one hour's worth when a single hour holds more (a clinic-day is never cut inside an
hour), and the cut points sit on the hour: a booking added between a split and its redelivery moves a
cut only when it tips an hour over the packing threshold. Every instant of every window is in exactly
one shard, so every appointment is planned by exactly one shard.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from shared.reminders.units import Window

HOUR = timedelta(hours=1)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def cut(windows: Sequence[Window], starts: Sequence[Sequence[datetime]], target: int) -> list[tuple[Window, ...]]:
    """Each shard's windows: `starts[i]` are the appointment starts found in `windows[i]`."""
    shards: list[list[Window]] = []
    current: list[Window] = []
    size = 0
    for window, found in zip(windows, starts, strict=True):
        per_hour = Counter(_hour(moment) for moment in found)
        piece_start = window.start
        hour = _hour(window.start)
        while hour < window.end:
            count = per_hour.get(hour, 0)
            if count and size and size + count > target:
                # Close the shard before this hour: [piece_start, hour) of this window goes with it.
                if piece_start < hour:
                    current.append(Window(window.kind, piece_start, hour))
                shards.append(current)
                current, size, piece_start = [], 0, max(hour, window.start)
            size += count
            hour += HOUR
        current.append(Window(window.kind, piece_start, window.end))
    if current:
        shards.append(current)
    return [tuple(shard) for shard in shards]


def plan_id(shards: Sequence[Sequence[Window]]) -> str:
    """A split's id: the same cut always gets the same id (and so the same shard task names)."""
    text = json.dumps([[window.to_json() for window in shard] for shard in shards], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
