"""Plan: a day plan of broad activities, decomposed into hour windows, then 5–15-minute actions.

Plans are memory records too (kind "plan") and are recorded in the `plans` table with the
model call and retrieval they came from, so every action traces back to why it was chosen.
"""
from __future__ import annotations

import json
import re
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


_TIME = re.compile(r"\b(at|from|around|by)\s+(\d{1,2})(?::(\d\d))?\s*(am|pm)?", re.I)
_UNTIL = re.compile(r"\b(until|till|to)\b.*?(\d{1,2})(?::\d\d)?\s*(am|pm)?", re.I)
_PART_OF_DAY = {"morning": 9, "noon": 12, "afternoon": 14, "evening": 18, "night": 21}
_SKIP = re.compile(r"\b(wakes?|bed|sleeps?)\b", re.I)


def _hour(h: str, ampm: str | None) -> int:
    hour = int(h) % 24
    if ampm and ampm.lower() == "pm" and hour < 12:
        hour += 12
    return hour


def _place_in(text: str, names: dict[str, str], home: str, area: str) -> str | None:
    """The place a routine clause names: the last full name mentioned ("Moreno house
    kitchen" matches "Moreno house:kitchen"), else a room of the current area, else home."""
    low = text.lower()
    found = [(low.rfind(k), len(k), p) for k, p in names.items() if k in low]
    if found:
        return max(found)[2]
    for k, p in names.items():
        if p.startswith(area + ":") and re.search(rf"\b{re.escape(p.split(':')[-1].lower())}\b", low):
            return p
    return home if re.search(r"\bhome\b", low) else None


def routine_example(routine: str, name: str, home: str, places: list[str],
                    wake_hour: int, last_hour: int) -> str:
    """The day plan's example answer, made from the resident's own routine.

    Small models copy the example they are shown; copied from the routine, the plan is
    still the resident's own day (a generic example made every resident a teacher)."""
    first = name.split()[0]
    names = {p.lower().replace(":", " "): p for p in places}
    # place names can hold "and" or commas: protect them from the clause split
    ordered = sorted(places, key=len, reverse=True)
    text = routine
    for n, p in enumerate(ordered):
        text = re.sub(re.escape(p.replace(":", " ")), f"\x00{n}\x00", text, flags=re.I)
    items: list[dict[str, Any]] = []
    place, nxt = home, None
    for clause in re.split(r"[.;]\s*|,\s*|\s+and\s+|\s+then\s+", text):
        clause = re.sub("\x00(\\d+)\x00", lambda m: ordered[int(m.group(1))].replace(":", " "),
                        clause.strip())
        clause = re.sub(rf"^(then\s+)?({re.escape(first)}|he|she|they)\s+", "", clause, flags=re.I)
        if len(clause) < 4 or _SKIP.search(clause):
            continue
        until = _UNTIL.search(clause)
        head = clause[:until.start()] if until else clause
        m = _TIME.search(head)
        hour = _hour(m.group(2), m.group(4)) if m else nxt
        if hour is None:
            hour = next((h for w, h in _PART_OF_DAY.items() if w in clause.lower()), None)
        if hour is None:
            hour = items[-1]["start_hour"] + 1 if items else wake_hour
        nxt = _hour(until.group(2), until.group(3)) if until else None
        place = _place_in(head, names, home, place.split(":")[0]) or place
        words = re.sub(r"[^A-Za-z ,'-]", " ", _TIME.sub("", head))
        words = re.sub(r"\s+", " ", words).strip(" ,'-")[:60].strip()
        if len(words) < 3 or not wake_hour <= hour <= last_hour or \
                (items and hour <= items[-1]["start_hour"]):
            continue
        items.append({"activity": words, "place": place, "start_hour": hour})
    if len(items) < 3:  # a routine too short to copy: a plain day at home
        items = [{"activity": "have breakfast", "place": home, "start_hour": wake_hour},
                 {"activity": "go about the day's work", "place": home,
                  "start_hour": min(wake_hour + 2, last_hour)},
                 {"activity": "have dinner and rest", "place": home, "start_hour": last_hour}]
    return json.dumps({"activities": items})


async def plan_day(agent: "GenerativeAgent") -> None:
    """At wake-up: 3–8 broad activities from identity, routine, yesterday and memories;
    the example answer is made from the routine (`routine_example`)."""
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
            "example": routine_example(agent.resident.routine, agent.name, agent.home, places,
                                       wake.hour, last_hour),
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
