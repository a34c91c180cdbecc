"""Plan: a day plan of broad activities, decomposed into hour windows, then 5–15-minute actions.

Plans are memory records too (kind "plan") and are recorded in the `plans` table with the
model call and retrieval they came from, so every action traces back to why it was chosen.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.agent import GenerativeAgent


@dataclass
class Activity:
    start: datetime
    end: datetime
    description: str
    place: str
    level: str  # "day" | "hour" | "action"
    plan_id: int | None = None

    def covers(self, t: datetime) -> bool:
        return self.start <= t < self.end

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)


def hhmm(t: datetime) -> str:
    return t.strftime("%H:%M")


def blocks_from_activities(
    items: list[dict], day: datetime, wake: datetime, sleep: datetime
) -> list[Activity]:
    """Turn the model's (start_hour, activity, place) list into contiguous blocks that tile
    [wake, sleep) with no gaps or overlaps: sorted by hour, clipped, the first one starting
    at wake and each running until the next begins."""
    starts: list[tuple[datetime, str, str]] = []
    for it in sorted(items, key=lambda i: int(i["start_hour"])):
        t = day.replace(hour=int(it["start_hour"]), minute=0, second=0, microsecond=0)
        t = min(max(t, wake), sleep)
        if starts and t <= starts[-1][0]:
            continue  # two activities in one hour: keep the first
        starts.append((t, str(it["activity"]).strip(), str(it["place"])))
    if not starts:
        return []
    first_t, desc, place = starts[0]
    starts[0] = (wake, desc, place)
    blocks = []
    for i, (t, desc, place) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else sleep
        if end > t:
            blocks.append(Activity(t, end, desc, place, "day"))
    return blocks


def actions_from_items(items: list[dict], start: datetime, end: datetime) -> list[Activity]:
    """5–15-minute actions tiling [start, end): cut at the window's end, the last one
    stretched to reach it."""
    actions: list[Activity] = []
    t = start
    for it in items:
        if t >= end:
            break
        step_end = min(t + timedelta(minutes=int(it["minutes"])), end)
        actions.append(Activity(t, step_end, str(it["action"]).strip(), str(it["place"]), "action"))
        t = step_end
    if actions and actions[-1].end < end:
        actions[-1].end = end
    return actions


def routine_day(agent: "GenerativeAgent", wake: datetime, sleep: datetime) -> list[Activity]:
    """The plan used when planning is ablated or the model's plan is unusable (recorded
    as a fallback): follow the routine at home."""
    return [Activity(wake, sleep, f"following {agent.first_name}'s usual routine", agent.home, "day")]


async def plan_day(agent: "GenerativeAgent") -> None:
    """At wake-up: 5–8 broad activities from identity, routine, yesterday and memories."""
    m = agent.model
    now = m.now
    wake, sleep = agent.wake_time(now), agent.sleep_time(now)
    if not m.config.enabled("planning"):
        agent.day_plan = routine_day(agent, now, sleep)
        return
    await agent.flush_pending()
    hits, rid = agent.retrieve(f"{agent.name}'s plans for today", k=m.config.k_plan, purpose="plan")
    places = m.world.destinations()
    last_hour = max(wake.hour, sleep.hour - 1)
    res = await agent.ask(
        "plan_day",
        {
            "identity": agent.identity(),
            "name": agent.name,
            "date": now.strftime("%A %d %B %Y"),
            "wake": hhmm(wake),
            "sleep": hhmm(sleep),
            "routine": agent.resident.routine,
            "yesterday": agent.yesterday or "nothing remembered.",
            "places": ", ".join(places),
            "wake_hour": wake.hour,
            "last_hour": last_hour,
        },
        hits=hits,
        enums={"places": places},
        fallback={"activities": []},
    )
    blocks = blocks_from_activities(res.value["activities"], now, max(now, wake), sleep)
    if not blocks:
        blocks = routine_day(agent, max(now, wake), sleep)
    agent.day_plan = blocks
    text = "; ".join(f"{hhmm(b.start)} {b.description} at {b.place}" for b in blocks)
    mem = agent.remember(
        f"{agent.name}'s plan for {now.strftime('%A %d %B')}: {text}", "plan"
    )
    for b in blocks:
        b.plan_id = agent.record_plan(b, parent=None, memory_id=mem.id, call=res.response, retrieval=rid)


def _area(world: Any, place: str) -> str:
    p = world.places[place]
    while p.parent is not None:
        p = world.places[p.parent]
    return p.name


def hour_places(agent: "GenerativeAgent", block: Activity) -> list[str]:
    """Where an hour of a day block may happen: the block's place and the rest of its
    area, home and its rooms, where the agent is, and the places of today's other blocks —
    not every place in town (a 60-place town would cost ~500 prompt tokens a call)."""
    world = agent.model.world
    valid = set(world.destinations())
    out: list[str] = []

    def add(p: str | None) -> None:
        if p and p in valid and p not in out:
            out.append(p)

    add(block.place)
    for area in (_area(world, block.place), _area(world, agent.home)):
        add(area)
        for child in world.children(area):
            add(child)
    add(world.destination_at(*agent.pos_xy))
    for b in agent.day_plan:
        add(b.place)
    return out


async def next_actions(agent: "GenerativeAgent") -> None:
    """Decompose the next window (up to an hour) of the current day block into actions."""
    m = agent.model
    now = m.now
    block = agent.current_block(now)
    if block is None:
        agent.actions = []
        return
    end = min(now + timedelta(minutes=60), block.end)
    minutes = int((end - now).total_seconds() // 60)
    if minutes < 10 or not m.config.enabled("planning") or block.description.startswith("following"):
        agent.actions = [Activity(now, end, block.description, block.place, "action")]
        for a in agent.actions:
            a.plan_id = agent.record_plan(a, parent=block.plan_id)
        return
    places = hour_places(agent, block)
    context = f"{agent.name} just: {agent.last_note}" if agent.last_note else ""
    res = await agent.ask(
        "plan_hour",
        {
            "identity": agent.identity(),
            "name": agent.name,
            "time": hhmm(now),
            "block_start": hhmm(block.start),
            "block_end": hhmm(block.end),
            "activity": block.description,
            "block_place": block.place,
            "context": context,
            "places": ", ".join(places),
            "window_start": hhmm(now),
            "window_end": hhmm(end),
            "minutes": minutes,
        },
        enums={"places": places},
        fallback={"actions": [{"minutes": 15, "action": block.description, "place": block.place}]},
    )
    hour = Activity(now, end, block.description, block.place, "hour")
    hour.plan_id = agent.record_plan(hour, parent=block.plan_id, call=res.response)
    agent.actions = actions_from_items(res.value["actions"], now, end)
    for a in agent.actions:
        a.plan_id = agent.record_plan(a, parent=hour.plan_id, call=res.response)
