"""Cutting a large clinic-day into shards: every instant of every window in exactly one shard, at most the
target number of appointments in each (or one hour's worth, never cut), cuts on the hour, same cut → same id."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.reminders.shards import cut, plan_id
from shared.reminders.units import FOLLOWUPS, REMINDERS, Window

UTC = timezone.utc
BASE = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def windows_and_starts(
    offsets: list[list[int]], spans: list[tuple[int, int]]
) -> tuple[list[Window], list[list[datetime]]]:
    windows: list[Window] = []
    starts: list[list[datetime]] = []
    at = BASE
    for (gap, length), found in zip(spans, offsets, strict=False):
        start = at + timedelta(minutes=gap)
        end = start + timedelta(minutes=length)
        windows.append(Window(REMINDERS if len(windows) % 2 == 0 else FOLLOWUPS, start, end))
        starts.append(sorted(start + timedelta(minutes=m % length) for m in found))
        at = end
    return windows, starts


@settings(max_examples=200, deadline=None)
@given(
    spans=st.lists(st.tuples(st.integers(0, 300), st.integers(1, 3000)), min_size=1, max_size=4),
    offsets=st.lists(st.lists(st.integers(0, 10_000), max_size=300), min_size=4, max_size=4),
    target=st.integers(1, 120),
)
def test_every_window_is_covered_exactly_once_and_shards_hold_at_most_the_target_or_one_hour(spans, offsets, target):
    windows, starts = windows_and_starts(offsets, spans)
    shards = cut(windows, starts, target)
    pieces = [piece for shard in shards for piece in shard]
    for window in windows:  # the pieces of each window tile it, in order, without gap or overlap
        mine = [p for p in pieces if window.start <= p.start < window.end]
        assert mine[0].start == window.start and mine[-1].end == window.end
        assert all(a.end == b.start for a, b in zip(mine, mine[1:], strict=False))
        assert all(p.kind == window.kind and p.start < p.end for p in mine)
    everything = [moment for found in starts for moment in found]
    per_shard = [sum(1 for m in everything if any(p.start <= m < p.end for p in shard)) for shard in shards]
    assert sum(per_shard) == len(everything)  # each appointment in exactly one shard
    for shard, size in zip(shards, per_shard, strict=True):
        hours = {m.replace(minute=0) for m in everything if any(p.start <= m < p.end for p in shard)}
        assert size <= target or len(hours) == 1
    inner_cuts = [p.start for shard in shards[1:] for p in shard[:1] if p.start not in {w.start for w in windows}]
    assert all(moment.minute == 0 and moment.second == 0 for moment in inner_cuts)


def test_the_same_cut_has_the_same_id_and_another_cut_another():
    windows = [Window(REMINDERS, BASE, BASE + timedelta(hours=10))]
    starts = [[BASE + timedelta(minutes=6 * i) for i in range(100)]]
    assert plan_id(cut(windows, starts, 25)) == plan_id(cut(windows, starts, 25)) != plan_id(cut(windows, starts, 30))
    assert len(cut(windows, starts, 25)) == 5 and len(cut(windows, starts, 1000)) == 1
